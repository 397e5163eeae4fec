"""Logging that a request path can afford: a failure is logged once per cause, not once per request."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Optional, Tuple

logger = logging.getLogger("variantd_client")
"""The shims' logger. A fallback and a dropped or refused record are logged at warning, a fallback file that cannot
be read at error, the end of an outage at info; each record carries ``variantd_event`` and ``variantd_cause``."""


class CauseLog:
    """Logs an expected failure the first time each cause is seen, then at most once per ``interval`` for that
    cause, with how often it happened since.

    ``event`` names what failed (``client.fallback``, ``client.records_dropped``, ``client.records_refused``);
    ``message`` is a constant format taking the cause and a detail. A failure marked ``outage`` (the daemon could not
    be reached, timed out or closed the connection) opens an outage that ``recovered`` closes with one info line
    (``recovery``, taking the number of failures), also at most once per ``interval``. Thread-safe; ``recovered``
    costs one attribute read while nothing failed, so it sits on the request path.
    """

    def __init__(
        self, event: str, message: str, recovery: str = "", interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.event = event
        self.message = message
        self.recovery = recovery
        self.interval = interval
        self.clock = clock
        self.outage = False
        self._lock = threading.Lock()
        self._causes: Dict[str, Tuple[float, int]] = {}  # cause -> (when last logged, times since)
        self._failures = 0
        self._recovery_logged: Optional[float] = None

    def failed(self, cause: str, detail: str = "", count: int = 1, outage: bool = False) -> None:
        now = self.clock()
        with self._lock:
            self._failures += count
            self.outage = self.outage or outage
            logged, since = self._causes.get(cause, (None, 0))
            if logged is not None and now - logged < self.interval:
                self._causes[cause] = (logged, since + count)
                return
            self._causes[cause] = (now, 0)
        extra = {"variantd_event": self.event, "variantd_cause": cause}
        if logged is None or since == 0:
            logger.warning(self.message, cause, detail, extra=extra)
        else:
            logger.warning(self.message + " (%d times since this was last logged)", cause, detail, since + count, extra=extra)

    def recovered(self) -> None:
        if not self.outage:
            return
        now = self.clock()
        with self._lock:
            if not self.outage:
                return
            self.outage = False
            if self._recovery_logged is not None and now - self._recovery_logged < self.interval:
                return
            self._recovery_logged = now
            failures, self._failures = self._failures, 0
        if self.recovery:
            logger.info(self.recovery, failures, extra={"variantd_event": self.event, "variantd_cause": "recovered"})
