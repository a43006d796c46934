"""Send Blender's console chatter to a log file instead of the terminal.

Blender (bpy) prints from C straight to file descriptor 1: "Saved: ...",
glTF import progress, Cycles warnings. That buries the progress bar, but it
is also the first thing to read when a render fails, so it is appended to a
log file (``<out>/logs/blender-<pid>.log``) rather than thrown away.

``redirect_fd1`` covers one call (an import, a render). ``console_to``
covers a whole in-process render session (``synthgen render --local``):
bpy's import, scene set-up and Cycles' device probing print warnings on
both descriptors (``cycles | WARNING HIPEW initialization failed``), so
there fd 1 and fd 2 both go to the log, and the progress bar gets a stream
on the terminal's own stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, TextIO


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


@contextlib.contextmanager
def console_to(path: str | None) -> Iterator[TextIO]:
    """Send everything written to fds 1 and 2 (C and Python) to ``path``; yield a stream on the terminal's stderr.

    Both descriptors are restored on the way out, before an exception propagates, so errors and the
    summary reach the terminal. ``path`` None: nothing is redirected and the stream is ``sys.stderr``."""
    if path is None:
        yield sys.stderr
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                         errors="replace")
    try:
        with open(path, "ab") as log:
            for fd in saved:
                os.dup2(log.fileno(), fd)
        yield terminal
    finally:
        for stream in (sys.stdout, sys.stderr, terminal):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        terminal.close()
