"""Records: a bounded buffer that ``record`` appends to without waiting, and the thread that sends it.

The buffer is shared by both clients; the blocking client's sender is the thread here, the asyncio client's a task
on its loop (``async_client``). Both send ``batch`` lines with ``"ack":false`` on a connection of their own, so
recording never waits for a request in flight nor the other way round.
"""

from __future__ import annotations

import threading
import time
from typing import List, Optional, Tuple

from .logs import CauseLog
from .protocol import Failure, batch_lines, rejections
from .transport import Connection

SEND_TIMEOUT = 1.0
"""Seconds a batch line may take to write, and the record connection to open (half of it)."""


class RecordBuffer:
    """Encoded records waiting to be sent, at most ``capacity``, with what became of the others. Thread-safe."""

    def __init__(self, capacity: int, max_line_bytes: int) -> None:
        self.capacity = capacity
        self.max_line_bytes = max_line_bytes
        self.condition = threading.Condition()
        self.records: List[str] = []
        self.sending = 0
        self.closed = False
        self.sent = 0
        """Records written to the daemon."""
        self.dropped = 0
        """Records dropped: the buffer was full, the daemon was down, or a record could not be encoded."""
        self.rejected = 0
        """Records the daemon refused (unknown variant, invalid metric, ...), reported on the record connection."""
        self._next_batch = 0
        self._drops = CauseLog("client.records_dropped", "variantd_client: records dropped (%s): %s")
        self._refusals = CauseLog("client.records_refused", "variantd refused a record (%s): %s")

    def add(self, encoded: str) -> bool:
        """Appends a record; False (and counted as dropped) when the buffer is full or closed."""
        with self.condition:
            if not self.closed and len(self.records) < self.capacity:
                self.records.append(encoded)
                return True
            self.dropped += 1
            cause = "closed" if self.closed else "buffer_full"
        self._drops.failed(cause, "the client is closed" if self.closed else f"{self.capacity} records wait to be sent; the daemon is slow or down, or records come faster than every flush sends them")
        return False

    def unencodable(self, problem: Exception) -> None:
        with self.condition:
            self.dropped += 1
        self._drops.failed("unencodable", f"a record JSON cannot hold: {problem}")

    @property
    def pending(self) -> int:
        """Records buffered or being sent."""
        with self.condition:
            return len(self.records) + self.sending

    def take(self, wait: float) -> Optional[List[str]]:
        """What is buffered, waiting up to ``wait`` seconds for something (a ``flush`` wakes it); None once
        closed and empty."""
        with self.condition:
            if not self.records and not self.closed:
                self.condition.wait(wait)
            if self.closed and not self.records:
                return None
            taken, self.records = self.records, []
            self.sending = len(taken)
            return taken

    def batches(self, taken: List[str]) -> List[Tuple[bytes, int]]:
        lines = batch_lines(taken, self._next_batch, self.max_line_bytes)
        self._next_batch += len(lines)
        return lines

    def wrote(self, count: int) -> None:
        with self.condition:
            self.sent += count

    def lost(self, count: int, failure: Failure) -> None:
        """``count`` taken records could not be sent."""
        with self.condition:
            self.dropped += count
        if count:
            self._drops.failed(failure.code, f"{count} records not sent: {failure.message}")

    def answered(self, lines: List[bytes]) -> None:
        """Counts (and logs) the refusals in answers read on the record connection."""
        for raw in lines:
            count, refusals = rejections(raw)
            with self.condition:
                self.rejected += count
            for code, message in refusals:
                self._refusals.failed(code, message)

    def done(self) -> None:
        """The records taken are sent or dropped."""
        with self.condition:
            self.sending = 0
            self.condition.notify_all()

    def wait_sent(self, timeout: float) -> bool:
        """Wakes the sender and waits up to ``timeout`` seconds until every buffered record was sent (or
        dropped); True if so."""
        deadline = time.monotonic() + timeout
        with self.condition:
            self.condition.notify_all()
            while self.records or self.sending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.condition.wait(remaining)
            return True

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()


class RecordSender(threading.Thread):
    """The blocking client's sender: every ``flush_interval`` (or on ``flush``), sends what is buffered and counts
    the entries the daemon reports as refused. After a failure it drops what it takes for ``retry_after``."""

    def __init__(self, buffer: RecordBuffer, socket_path: str, flush_interval: float, retry_after: float) -> None:
        super().__init__(name="variantd-records", daemon=True)
        self.buffer = buffer
        self.socket_path = socket_path
        self.flush_interval = flush_interval
        self.retry_after = retry_after

    def run(self) -> None:
        connection: Optional[Connection] = None
        down_until = 0.0
        while True:
            taken = self.buffer.take(self.flush_interval)
            if taken is None:
                break
            written = 0
            try:
                if taken:
                    if time.monotonic() < down_until:
                        raise Failure("unreachable", "the daemon was unreachable moments ago")
                    if connection is None:
                        connection = Connection(self.socket_path, time.monotonic() + SEND_TIMEOUT / 2)
                    for payload, count in self.buffer.batches(taken):
                        connection.send(payload, time.monotonic() + SEND_TIMEOUT)
                        written += count
                        self.buffer.wrote(count)
                if connection is not None:
                    connection = self._collect(connection)
            except Exception as error:  # noqa: BLE001 - the daemon is down or went away: drop and count
                if connection is not None:
                    connection.close()
                    connection = None
                down_until = time.monotonic() + self.retry_after
                failure = error if isinstance(error, Failure) else Failure("client_error", repr(error))
                self.buffer.lost(len(taken) - written, failure)
            finally:
                self.buffer.done()
        if connection is not None:
            self._collect(connection, wait=0.05)
            connection.close()

    def _collect(self, connection: Connection, wait: float = 0.0) -> Optional[Connection]:
        """Reads the answers that arrived (only refusals are answered); None if the daemon closed the connection."""
        lines, still_open = connection.available(wait)
        self.buffer.answered(lines)
        if still_open:
            return connection
        connection.close()
        return None
