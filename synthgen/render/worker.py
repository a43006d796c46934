"""The Blender child process of :mod:`synthgen.render_process`: render groups sent over a pipe.

Run as ``python -m synthgen.render.worker --in-fd R --out-fd W --parent-pid P``.
Its stdout and stderr are the Blender log; requests and replies travel only
over the two pipes, so Blender's console output can never corrupt them.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
import traceback

from synthgen.render_process import Channel


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the worker that started it dies (Linux); else rely on EOF / idle exit."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--in-fd", type=int, required=True)
    p.add_argument("--out-fd", type=int, required=True)
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--idle-exit-s", type=float, default=600.0)
    args = p.parse_args(argv)
    _die_with_parent(args.parent_pid)
    chan = Channel(args.in_fd, args.out_fd)
    _, cfg, threads, tmp_dir = chan.recv()
    try:
        from synthgen.render import scene

        renderer = scene.GroupRenderer(cfg, threads=threads, tmp_dir=tmp_dir, log_path=None)
    except Exception as e:
        chan.send(("start_error", f"{type(e).__name__}: {e}".splitlines()[0]))
        traceback.print_exc()
        return 1
    chan.send(("ready", {"device": renderer.device, "software": scene.software_versions(), "pid": os.getpid()}))
    while True:
        try:
            msg = chan.recv(args.idle_exit_s)
        except (TimeoutError, EOFError):
            return 0  # no work for a while, or the worker is gone
        if msg[0] == "exit":
            return 0
        row = msg[1]
        cpu = time.process_time()  # all of Blender's threads
        try:
            renders, timings = renderer.render_group(row)
        except Exception as e:  # the group fails, Blender lives on
            traceback.print_exc()
            chan.send(("error", f"{type(e).__name__}: {e}".strip().splitlines()[0][:500], traceback.format_exc()[-4000:]))
            continue
        finally:
            sys.stdout.flush()
        chan.send(("ok", renders, {"setup_s": timings.setup_s, "render_s": list(timings.render_s),
                                   "cpu_s": time.process_time() - cpu}))


if __name__ == "__main__":
    sys.exit(main())
