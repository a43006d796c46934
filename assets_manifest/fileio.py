"""Permissions of files published by an atomic rename.

``tempfile.mkstemp`` creates its file with mode 0600, whatever the umask, so
a file written to a temp name and renamed into place would stay unreadable
to other users and to other nodes' service accounts on a shared filesystem.
:func:`publish_mode` gives such a file the mode ``open()`` would have given
it: ``0666 & ~umask`` (0644 under the usual umask 022).
"""

from __future__ import annotations

import os


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def publish_mode(path_or_fd: str | int) -> None:
    """chmod a temp file to 0666 & ~umask, the mode of a normally created file."""
    mode = 0o666 & ~current_umask()
    if isinstance(path_or_fd, int):
        os.fchmod(path_or_fd, mode)
    else:
        os.chmod(path_or_fd, mode)
