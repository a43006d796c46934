"""Send Blender's console chatter to a log file instead of the terminal.

Blender (bpy) prints from C straight to file descriptor 1: "Saved: ...",
glTF import progress, Cycles warnings. That buries the progress bar, but it
is also the first thing to read when a render fails, so it is appended to a
log file (``<out>/logs/blender-<pid>.log``) rather than thrown away.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def redirect_fd1(path: str | None) -> Iterator[None]:
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
