"""Blender in a child process: per-group timeout, crash isolation, recycling.

A farm worker never imports bpy itself. It drives one long-lived Blender
process (``python -m synthgen.render.worker``) over a pipe, one group per
request, so that:

* a group that runs past ``render.timeout_s`` is stopped for sure: the child
  is SIGKILLed and a fresh one started for the next group. A Python alarm in
  the same process would not do: Cycles renders inside one C call that holds
  the interpreter, so a signal handler only runs once the render returns;
* a Blender crash (segfault, OOM kill) costs the group, not the worker: the
  group is tried once more in a fresh Blender, then recorded as failed;
* Blender is recycled after ``recycle_groups`` groups or once its RSS passes
  ``max_rss_bytes`` (long bpy loops leak), without restarting the Ray worker
  or losing its place in the task queue.

``BlenderProcess.render_group`` has the same shape as the in-process
``GroupRenderer.render_group``, so ``runner.render_shard`` takes either.
The child dies with its parent (PR_SET_PDEATHSIG on Linux, and it exits on
EOF or after ``idle_exit_s`` without work), so a killed worker leaves no
Blender behind.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

_HEADER = struct.Struct("<Q")


class GroupFailed(RuntimeError):
    """A group that could not be rendered; ``args[0]`` is the failure line ("Type: message")."""

    def __init__(self, text: str, remote_traceback: str = ""):
        super().__init__(text)
        self.remote_traceback = remote_traceback


class BlenderDied(RuntimeError):
    pass


class BlenderStartError(RuntimeError):
    """Blender could not start or set up the scene: a configuration problem, not a group failure."""

    exit_code = 1  # runtime failure (assets_manifest.cli_errors)


class Channel:
    """Length-prefixed pickles over a pair of pipe file descriptors, with read deadlines."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.write_fd, view):]

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; TimeoutError when none arrives in time, EOFError when the peer is gone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        (n,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        return pickle.loads(self._read(n, deadline))

    def _read(self, n: int, deadline: float | None) -> bytes:
        chunks, got = [], 0
        while got < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                    raise TimeoutError
            chunk = os.read(self.read_fd, min(n - got, 1 << 22))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass
class Timings:
    setup_s: float = 0.0
    render_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU seconds of the Blender process (all threads) for the group


@dataclass
class ProcessStats:
    starts: int = 0
    groups: int = 0
    recycled_groups: int = 0  # restarts because recycle_groups was reached
    recycled_rss: int = 0  # restarts because RSS passed the cap
    timeouts: int = 0
    crashes: int = 0
    peak_rss_bytes: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class BlenderProcess:
    """One Blender child process rendering groups on request; restarted as needed."""

    def __init__(self, render_cfg: dict[str, Any], *, threads: int = 0, log_path: str | None = None,
                 timeout_s: float | None = None, recycle_groups: int = 0, max_rss_bytes: int = 0,
                 env: dict[str, str] | None = None, start_timeout_s: float = 300.0, idle_exit_s: float = 600.0,
                 crash_retries: int = 1):
        self.cfg = render_cfg
        self.threads = threads
        self.log_path = log_path
        self.timeout_s = timeout_s if timeout_s is not None else render_cfg.get("timeout_s", 900)
        self.recycle_groups = recycle_groups
        self.max_rss_bytes = max_rss_bytes
        self.env = env or {}
        self.start_timeout_s = start_timeout_s
        self.idle_exit_s = idle_exit_s
        self.crash_retries = crash_retries
        self.tmp_dir = tempfile.mkdtemp(prefix="synthgen-blender-")
        self.proc: subprocess.Popen | None = None
        self.chan: Channel | None = None
        self.groups_in_process = 0
        self.device = "?"
        self._software: dict[str, str] = {}
        self.pid = 0
        self.stats = ProcessStats()

    # -- process life cycle -------------------------------------------------
    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        cmd = [sys.executable, "-m", "synthgen.render.worker", "--in-fd", str(to_child_r),
               "--out-fd", str(from_child_w), "--parent-pid", str(os.getpid()),
               "--idle-exit-s", str(self.idle_exit_s)]
        if self.log_path:
            os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
            if log is not subprocess.DEVNULL:
                log.close()
        self.chan = Channel(from_child_r, to_child_w)
        self.stats.starts += 1
        self.groups_in_process = 0
        try:
            self.chan.send(("init", self.cfg, self.threads, self.tmp_dir))
            msg = self.chan.recv(self.start_timeout_s)
        except (TimeoutError, EOFError, BrokenPipeError) as e:
            code = self._kill()
            where = f"; see {self.log_path}" if self.log_path else ""
            raise BlenderStartError(f"Blender worker process did not start ({type(e).__name__}, exit {code}){where}")
        if msg[0] != "ready":
            self._kill()
            raise BlenderStartError(msg[1])
        info = msg[1]
        self.device, self._software, self.pid = info["device"], info["software"], info["pid"]

    @property
    def software(self) -> dict[str, str]:
        """Blender and synthgen versions, as the child reports them (starts it if need be)."""
        if not self._software:
            self._start()
        return self._software

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _kill(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.chan.close()
        self.proc, self.chan = None, None
        return code

    def close(self) -> None:
        """Ask Blender to exit; kill it if it does not within 10 s."""
        if self._alive():
            try:
                self.chan.send(("exit",))
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def rss_bytes(self) -> int:
        try:
            return psutil.Process(self.proc.pid).memory_info().rss if self._alive() else 0
        except psutil.Error:
            return 0

    # -- work -----------------------------------------------------------------
    def render_group(self, row: dict[str, Any]):
        """(GroupRenders, Timings) for one plan row; GroupFailed if it cannot be rendered."""
        for attempt in range(self.crash_retries + 1):
            try:
                result = self._render_once(row)
                break
            except BlenderDied as e:
                self.stats.crashes += 1
                if attempt == self.crash_retries:
                    raise GroupFailed(f"BlenderCrash: {e}") from None
        self.stats.groups += 1
        self.groups_in_process += 1
        rss = self.rss_bytes()
        self.stats.peak_rss_bytes = max(self.stats.peak_rss_bytes, rss)
        if self.recycle_groups and self.groups_in_process >= self.recycle_groups:
            self.stats.recycled_groups += 1
            self.close()
        elif self.max_rss_bytes and rss > self.max_rss_bytes:
            self.stats.recycled_rss += 1
            self.close()
        return result

    def _render_once(self, row: dict[str, Any]):
        if not self._alive():
            if self.proc is not None:
                self._kill()  # died while idle (idle exit, OOM): not this group's fault
            self._start()
        try:
            self.chan.send(("group", row))
            msg = self.chan.recv(self.timeout_s)
        except TimeoutError:
            self.stats.timeouts += 1
            self._kill()
            raise GroupFailed(f"TimeoutError: group took longer than render.timeout_s = {self.timeout_s:g} s; "
                              "Blender was killed") from None
        except (EOFError, BrokenPipeError):
            code = self._kill()
            sig = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
            raise BlenderDied(f"Blender process died ({sig}) while rendering group {row['key']}") from None
        if msg[0] == "error":
            raise GroupFailed(msg[1], msg[2])
        _, renders, timings = msg
        return renders, Timings(**timings)

    def __del__(self):
        try:
            self._kill()
        except Exception:
            pass
