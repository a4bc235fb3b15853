"""A real redis-server process on 127.0.0.1 for the tests: start, stop (an outage), start again."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from kyo_otel.receiver import free_port


def free_cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 <= 65535:
            try:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """Runs Debian's ``redis-server`` binary (``make test`` installs it) without persistence."""

    def __init__(self, port: int | None = None, cluster: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs Debian's redis-server")
        self.binary = binary
        self.port = port or (free_cluster_port() if cluster else free_port())
        self.dir = tempfile.mkdtemp(prefix="kyo-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.cluster = cluster  # a one-node Redis Cluster holding every slot

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "yes", "--loglevel", "warning"]
            + (["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] if self.cluster else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self._assign_slots() if self.cluster else self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _assign_slots(self) -> RedisServer:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"CLUSTER ADDSLOTSRANGE 0 16383\r\n")
            reply = sock.recv(64)
            if not reply.startswith((b"+OK", b"-ERR Slot")):  # already assigned after a restart
                raise RuntimeError(f"redis-server on port {self.port} refused the cluster slots: {reply!r}")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                sock.sendall(b"CLUSTER INFO\r\n")
                if b"cluster_state:ok" in sock.recv(4096):
                    return self
                time.sleep(0.05)
        raise RuntimeError(f"the one-node cluster on port {self.port} did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
