"""A real variantd in a child process, for the tests and the benchmark."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional


class Daemon:
    """A running variantd on ``directory/variantd.sock``, started with ``config`` (None: a path with no file, so
    the daemon answers ``no_config``), ready once it accepts a connection; ``stop()`` sends SIGTERM and waits (the
    daemon then writes state.json)."""

    def __init__(self, binary: Path, directory: Path, config: Optional[Path], log_level: str = "debug") -> None:
        self.directory = directory
        self.socket_path = str(directory / "variantd.sock")
        self.state_dir = directory / "state"
        self.log_path = directory / "variantd.log"
        config_path = config if config is not None else directory / "missing-config.json"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(binary), "--config", str(config_path), "--socket", self.socket_path,
             "--state-dir", str(self.state_dir), "--poll-interval", "0.1", "--log-level", log_level],
            stdout=subprocess.DEVNULL, stderr=self.log,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"variantd exited early:\n{self.logs()}")
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(self.socket_path)
                return
            except OSError:
                time.sleep(0.01)
            finally:
                probe.close()
        self.stop()
        raise RuntimeError(f"variantd did not listen on {self.socket_path}:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())
