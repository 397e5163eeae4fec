"""The blocking transport: one Unix-socket connection speaking newline-delimited JSON, with a deadline per call.

The socket stays in blocking mode and the deadline is the kernel's (``SO_SNDTIMEO``, ``SO_RCVTIMEO``), so an
exchange is one ``send`` and one ``recv``, as a plain socket's round trip is. A socket with a Python timeout
instead polls before each of them and switches the descriptor's mode whenever the timeout changes: three more
system calls per request, a sixth of the client's time per assign.
"""

from __future__ import annotations

import errno
import math
import socket
import struct
import time
from time import monotonic as _monotonic
from typing import List, Sequence, Tuple

from .protocol import Failure, answer_id, decode, error_code, error_message, line

_SLACK = 0.001
"""How much longer than what is left of the deadline a socket timeout already set may be (1 ms, at most 5% of
it): within that it stays, so a call on a kept connection sets none."""

_UNREACHABLE = (errno.ENOENT, errno.ECONNREFUSED, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOTSOCK)


class Connection:
    """One connection to the daemon. Not thread-safe: a client holds it under its lock, or in one thread."""

    def __init__(self, path: str, deadline: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(None)  # blocking whatever socket.setdefaulttimeout says; the kernel keeps the deadline
        self.buffer = b""
        self._armed = self._armed_low = -1.0  # the socket timeouts set, and the least time left they may serve
        try:
            self._arm(deadline)
            self.sock.connect(path)
        except BlockingIOError as error:  # SO_SNDTIMEO passed while the daemon's backlog was full
            self.sock.close()
            raise Failure("timeout", f"connecting to {path}") from error
        except OSError as error:
            self.sock.close()
            code = "unreachable" if error.errno in _UNREACHABLE else "closed"
            raise Failure(code, f"{path}: {error.strerror or error}") from error

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _arm(self, deadline: float) -> None:
        """Sets the socket's send and receive timeouts to what is left until ``deadline``, unless they are that
        already, give or take the slack."""
        remaining = deadline - time.monotonic()
        if self._armed_low <= remaining <= self._armed:
            return
        if remaining <= 0:
            raise Failure("timeout", "no time left")
        microseconds = math.ceil(remaining * 1_000_000)
        value = struct.pack("@ll", microseconds // 1_000_000, microseconds % 1_000_000)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        self._armed = microseconds / 1_000_000
        self._armed_low = self._armed - min(_SLACK, self._armed * 0.05)

    def send(self, data: bytes, deadline: float) -> None:
        self._arm(deadline)
        try:
            self.sock.sendall(data)
        except BlockingIOError as error:
            raise Failure("timeout", "sending") from error
        except OSError as error:
            raise Failure("closed", f"sending: {error}") from error

    def round_trip(self, request_id: int, body: bytes, deadline: float) -> bytes:
        """One request and its answer line: the hot path, one ``send`` and (nearly always) one ``recv``. ``body`` is
        one the shims make (never :func:`protocol.line`'s empty one): the line is ``{"id":N,`` and the body, and that
        prefix is the one the answer must start with."""
        if not self._armed_low <= deadline - _monotonic() <= self._armed:
            self._arm(deadline)
        head = b'{"id":%d,' % request_id
        try:
            self.sock.sendall(head + body)
        except BlockingIOError as error:
            raise Failure("timeout", "sending") from error
        except OSError as error:
            raise Failure("closed", f"sending: {error}") from error
        if not self.buffer:
            try:
                chunk = self.sock.recv(65536)  # as _recv, written out: a call fewer per request
            except BlockingIOError as error:
                raise Failure("timeout", "waiting for the answer") from error
            except OSError as error:
                raise Failure("closed", f"reading: {error}") from error
            if chunk.find(b"\n") == len(chunk) - 1 and chunk.startswith(head):  # one line (it ends there), ours
                return chunk[:-1]
            if not chunk:
                raise Failure("closed", "the daemon closed the connection")
            self.buffer = chunk
        return self._answers(request_id, 1, deadline)[0]

    def exchange(self, first_id: int, bodies: Sequence[bytes], deadline: float) -> List[bytes]:
        """Writes the requests (ids ``first_id``, ``first_id + 1``, ...) in one go and returns their answer lines,
        in order, read within ``deadline``."""
        self.send(b"".join(line(first_id + i, body) for i, body in enumerate(bodies)), deadline)
        return self._answers(first_id, len(bodies), deadline)

    def _answers(self, first_id: int, count: int, deadline: float) -> List[bytes]:
        """The answers to ``count`` requests from ``first_id`` on. Answers to earlier requests are skipped; an answer
        the daemon could not attribute (``"id":null``) is a :class:`Failure` with its code."""
        answers: List[bytes] = []
        expected = first_id
        while len(answers) < count:
            for raw in self._lines(deadline):
                if raw.startswith(b'{"id":%d,' % expected):
                    answers.append(raw)
                    expected += 1
                elif answer_id(raw) is None:
                    answer = decode(raw)
                    if answer.get("id") is None and answer.get("ok") is False:
                        raise Failure(error_code(answer), error_message(answer))
                    if answer.get("id") == expected:  # an id written another way (1.0): ours all the same
                        answers.append(raw)
                        expected += 1
                # else: an answer to an earlier request, given up on: skip it.
        return answers

    def _lines(self, deadline: float) -> List[bytes]:
        """The complete lines buffered, or the next ones to arrive before ``deadline`` (at least one)."""
        while True:
            if b"\n" in self.buffer:
                lines = self.buffer.split(b"\n")
                self.buffer = lines.pop()
                return lines
            self._arm(deadline)
            self.buffer += self._recv()

    def _recv(self) -> bytes:
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError as error:
            raise Failure("timeout", "waiting for the answer") from error
        except OSError as error:
            raise Failure("closed", f"reading: {error}") from error
        if not chunk:
            raise Failure("closed", "the daemon closed the connection")
        return chunk

    def available(self, wait: float = 0.0) -> Tuple[List[bytes], bool]:
        """The complete lines that arrive within ``wait`` seconds (none waited for if 0), and whether the
        connection is still open."""
        lines: List[bytes] = []
        deadline = time.monotonic() + wait
        while True:
            try:
                if deadline > time.monotonic():
                    self._arm(deadline)
                    chunk = self.sock.recv(65536)
                else:
                    chunk = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, Failure):
                return lines, True
            except OSError:
                return lines, False
            if not chunk:
                return lines, False
            parts = (self.buffer + chunk).split(b"\n")
            self.buffer = parts.pop()
            lines.extend(parts)
            if wait <= 0:
                continue
            if lines:
                return lines, True

