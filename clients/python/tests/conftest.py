"""Fixtures: the real variantd binary on a temporary socket, and misbehaving Unix-socket servers."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from daemon import Daemon

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

REPO = HERE.parent.parent.parent
EXAMPLE_CONFIG = REPO / "examples" / "variantd.json"
VECTORS = REPO / "protocol" / "test-vectors"


def daemon_binary() -> Path:
    """``$VARIANTD_BINARY``, else ``.build/debug/variantd`` in the repository (built by ``swift build``)."""
    configured = os.environ.get("VARIANTD_BINARY")
    binary = Path(configured) if configured else REPO / ".build" / "debug" / "variantd"
    if not binary.is_file():
        pytest.fail(f"no variantd binary at {binary}: run `swift build` first or set VARIANTD_BINARY")
    return binary


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temporary folder with a short path (a Unix socket path is limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="vd-") as path:
        yield Path(path)


@pytest.fixture
def start_daemon(short_dir: Path) -> Iterator[Callable[..., Daemon]]:
    started: List[Daemon] = []

    def start(config: Optional[Path] = EXAMPLE_CONFIG) -> Daemon:
        daemon = Daemon(daemon_binary(), short_dir, config)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


class LineServer:
    """A real Unix-socket server in a thread; ``answer(line)`` returns the reply (None: never answer)."""

    def __init__(self, path: str, answer: Callable[[bytes], Optional[bytes]]) -> None:
        self.path = path
        self.answer = answer
        self.received: List[bytes] = []
        self.connections = 0
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(16)
        self.stopping = threading.Event()
        self.held: List[socket.socket] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            self.held.append(connection)
            threading.Thread(target=self.talk, args=(connection,), daemon=True).start()

    def talk(self, connection: socket.socket) -> None:
        buffer = b""
        connection.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                chunk = connection.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.received.append(line)
                reply = self.answer(line)
                if reply is not None:
                    connection.sendall(reply)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for connection in self.held:
            connection.close()
        self.thread.join(1)


@pytest.fixture
def line_server(short_dir: Path) -> Iterator[Callable[[Callable[[bytes], Optional[bytes]]], LineServer]]:
    servers: List[LineServer] = []

    def start(answer: Callable[[bytes], Optional[bytes]]) -> LineServer:
        server = LineServer(str(short_dir / f"fake-{len(servers)}.sock"), answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
