"""The blocking client: one kept connection for requests under a lock, and a thread that sends records."""

from __future__ import annotations

import threading
from time import monotonic as _monotonic
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .answers import Assignment, Json, PromptVersion, Rendering, Scalar
from .operations import Operations, Outcome, Outcomes
from .protocol import Failure, assign_bodies, assign_body, render_prompt_body, render_request, request_bodies, version_body
from .records import RecordSender
from .transport import Connection


class VariantClient(Operations):
    """A connection to variantd that never raises into the request path.

    - ``socket_path``: the daemon's socket; default ``$VARIANTD_SOCKET``, else ``/run/variantd/variantd.sock``.
    - ``fallback``: a :class:`Fallback`, a mapping or a path to a JSON file (see :class:`Fallback`). A file that
      cannot be loaded is logged and the bare control served; the constructor does not raise for it.
    - ``timeout``: seconds one ``assign``/``prompt`` may take in all, connecting included (default 5 ms).
    - ``retry_after``: after the daemon could not be reached or timed out, seconds during which calls fall back
      at once instead of trying again (so a down daemon costs nothing per request).
    - ``record_buffer``: how many records may wait to be sent; more are dropped and counted.
    - ``flush_interval``: how often the background thread sends buffered records.
    - ``max_line_bytes``: the longest ``batch`` line sent (the daemon's default limit is 65536).

    Requests use one kept connection (reconnected when needed, and thrown away after a timeout so that a late
    answer is never read as the answer to the next request); records go out on a second connection owned by the
    background thread, so recording never waits for a request in flight or the other way round. The client is
    thread-safe. Fallbacks, dropped and refused records are logged on the ``variantd_client`` logger, once per
    cause (then at most once a minute).
    """

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._connection: Optional[Connection] = None
        self._next_id = 1
        self._sender = RecordSender(self._records, self.socket_path, self.flush_interval, self.retry_after)
        self._sender.start()

    # ------------------------------------------------------------------------------------------ request path

    def assign(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]] = None) -> Assignment:
        """The variant ``unit`` gets in ``experiment``; the fallback's control if the daemon cannot say."""
        try:
            outcome = self._ask_one(assign_body(experiment, unit, attributes))
        except Failure as failure:
            outcome = failure
        except Exception as problem:  # noqa: BLE001 - a bug here must still end in the call's fallback
            outcome = Failure("client_error", repr(problem))
        return self._assigned(experiment, outcome)

    def prompt(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]] = None) -> Assignment:
        """Like ``assign``, with the assigned prompt version's ``template`` and ``variables`` filled in.

        Templates are cached per config version, so after the first request for a version this costs one round
        trip. When the daemon cannot answer, the fallback's control and template are returned.
        """
        try:
            outcome = self._ask_one(assign_body(experiment, unit, attributes))
        except Failure as failure:
            outcome = failure
        except Exception as problem:  # noqa: BLE001
            outcome = Failure("client_error", repr(problem))
        assignment, complete = self._prompt_assigned(experiment, outcome)
        if complete:
            return assignment
        return self._prompted(assignment, self._ask(version_body, assignment.prompt, assignment.prompt_version))

    def template(self, prompt: str, version: Optional[int] = None) -> Optional[PromptVersion]:
        """A prompt version's template (the latest without ``version``), from the daemon, else the fallback's,
        else None."""
        return self._template(prompt, version, self._ask(version_body, prompt, version))

    def assign_many(self, requests: Sequence[Tuple[str, str, Optional[Mapping[str, Scalar]]]]) -> List[Assignment]:
        """Many ``(experiment, unit, attributes)`` assignments pipelined in one write and one read; each answer
        falls back on its own, all of them if the daemon cannot answer within the timeout."""
        return self._assigned_many(requests, self._ask_all(assign_bodies, requests))

    def render(
        self,
        experiment: str,
        unit: str,
        variables: Optional[Mapping[str, Scalar]] = None,
        attributes: Optional[Mapping[str, Scalar]] = None,
    ) -> Rendering:
        """The prompt version ``unit`` gets in ``experiment``, rendered with ``variables`` by the daemon and checked
        by the version's prompt rules, in one round trip; never raises (see :class:`Rendering` for refusals and the
        fallback)."""
        repeated = True
        try:
            body, repeated = render_request(experiment, unit, variables, attributes)
            outcome = self._ask_one(body)
        except Failure as failure:
            outcome = failure
        except Exception as problem:  # noqa: BLE001
            outcome = Failure("client_error", repr(problem))
        return self._rendered(experiment, variables, outcome, repeated)

    def render_prompt(self, prompt: str, variables: Optional[Mapping[str, Scalar]] = None, version: Optional[int] = None) -> Rendering:
        """A prompt version (the latest without ``version``) rendered by the daemon, without an experiment; the
        fallback's copy rendered here when the daemon cannot answer. Never raises."""
        return self._rendered_prompt(prompt, variables, version, self._ask(render_prompt_body, prompt, variables, version))

    def flush(self, timeout: float = 1.0) -> bool:
        """Waits up to ``timeout`` seconds until every buffered record was sent (or dropped); True if so."""
        return self._records.wait_sent(timeout)

    def close(self, timeout: float = 1.0) -> None:
        """Sends what is buffered (waiting up to ``timeout``), stops the sender and closes the connections."""
        self.flush(timeout)
        self._records.close()
        self._sender.join(timeout)
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> "VariantClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ operator calls (these raise)

    def request(self, fields: Mapping[str, Json], timeout: Optional[float] = None) -> Dict[str, Json]:
        """Sends any request and returns the answer object; raises :class:`VariantdError` on an error answer
        or when the daemon cannot be reached."""
        return self._operator_answer(self._ask_all(request_bodies, [fields], admin_timeout=timeout or self.admin_timeout))

    def events(self, limit: Optional[int] = None) -> List[Dict[str, Json]]:
        """The daemon's latest events (guardrail and operator decisions, config applied/rejected), oldest first."""
        return list(self.request(self._events_request(limit))["events"])

    def stats(self, experiment: str, minimum_detectable_effect: Optional[float] = None) -> Dict[str, Json]:
        """The experiment's statistics (PROTOCOL.md, ``stats``): per-variant summaries, each treatment against the
        control, the sample-ratio check, the sample size and a recommendation. Raises ``VariantdError``."""
        return self.request(self._stats_request(experiment, minimum_detectable_effect))

    def health(self) -> Dict[str, Json]:
        return self.request({"op": "health"})

    def disable(self, experiment: str, variant: str, reason: Optional[str] = None) -> Dict[str, Json]:
        return self.request(self._disable_request(experiment, variant, reason))

    def enable(self, experiment: str, variant: str) -> Dict[str, Json]:
        return self.request({"op": "enable", "experiment": experiment, "variant": variant})

    # ------------------------------------------------------------------------------------------ the transport

    def _ask(self, body: Callable[..., bytes], *args: Json) -> Outcome:
        """Sends the request ``body(*args)`` makes and returns its answer line, or the failure; never raises."""
        try:
            return self._exchange(body(*args), self.timeout, False)
        except Failure as failure:
            return failure
        except Exception as problem:  # noqa: BLE001 - a bug here must still end in the call's fallback
            return Failure("client_error", repr(problem))

    def _ask_all(self, bodies: Callable[..., List[bytes]], *args: Json, admin_timeout: Optional[float] = None) -> Outcomes:
        """Sends the requests ``bodies(*args)`` makes in one write and returns their answer lines, or the failure.
        With ``admin_timeout`` it is an operator call: that timeout, and no back-off."""
        try:
            return self._exchange(bodies(*args), admin_timeout or self.timeout, admin_timeout is not None)
        except Failure as failure:
            return failure
        except Exception as problem:  # noqa: BLE001
            return Failure("client_error", repr(problem))

    def _ask_one(self, body: bytes) -> bytes:
        """The answer line to one request (``assign``, ``prompt``, ``render``: their hot path, written out with no
        call it can do without); a :class:`Failure` is raised. On the kept connection of a client that has had no
        failure since its last answer, this is one ``round_trip``; anything else goes the general way
        (:meth:`_attempts`), a failure of the kept connection included, so the connection, retry and back-off
        rules are written once."""
        deadline = _monotonic() + self.timeout
        lock = self._lock
        lock.acquire()  # not `with`: its __enter__ and __exit__ lookups and calls cost twice as much
        try:
            connection = self._connection
            if connection is None or self._down_until or self._fallback_log.outage:
                if self._down_until:
                    self._refuse_while_down(False)
                first = self._next_id
                self._next_id = first + 1
                return self._attempts(body, first, deadline, 0)  # type: ignore[return-value]
            first = self._next_id
            self._next_id = first + 1
            try:
                return connection.round_trip(first, body, deadline)
            except Failure as failure:
                self._failed(failure, False, 0, deadline)
                return self._attempts(body, first, deadline, 1)  # type: ignore[return-value]
        finally:
            lock.release()

    def _exchange(self, bodies: Union[bytes, List[bytes]], timeout: float, admin: bool) -> Union[bytes, List[bytes]]:
        """Writes the requests in one go and reads their answers in order, within ``timeout`` seconds: a call's one
        body and its answer line, or a list of bodies and theirs."""
        deadline = _monotonic() + timeout
        with self._lock:
            if self._down_until:
                self._refuse_while_down(admin)
            first = self._next_id
            self._next_id += 1 if bodies.__class__ is bytes else len(bodies)
            return self._attempts(bodies, first, deadline, 0)

    def _attempts(self, bodies: Union[bytes, List[bytes]], first: int, deadline: float, attempt: int) -> Union[bytes, List[bytes]]:
        """The exchange of the requests from id ``first`` on, from try ``attempt`` (0 or 1) on, under the lock:
        connecting when there is no connection, and once more on a new one when the daemon closed a kept one."""
        one = bodies.__class__ is bytes
        while attempt < 2:
            connection = self._connection
            fresh = connection is None
            try:
                if connection is None:
                    connection = self._connection = Connection(self.socket_path, deadline)
                    self.connections += 1
                if one:
                    answers = connection.round_trip(first, bodies, deadline)  # type: ignore[arg-type]
                else:
                    answers = connection.exchange(first, bodies, deadline)  # type: ignore[arg-type]
                if self._down_until or self._fallback_log.outage:
                    self._exchanged()
                return answers
            except Failure as failure:
                self._failed(failure, fresh, attempt, deadline)
            attempt += 1
        raise Failure("closed", "the daemon closed the connection")

    def _failed(self, failure: Failure, fresh: bool, attempt: int, deadline: float) -> None:
        """After a failed try: the connection is thrown away, so that a late answer is never read as the next
        one's; ``failure`` is raised again unless the exchange is tried again (:meth:`_try_again`)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if not self._try_again(failure, fresh, attempt, _monotonic() < deadline):
            raise failure
