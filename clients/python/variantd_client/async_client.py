"""The asyncio client: every task's requests pipelined on one connection, each answer matched to its request by id.

A call writes its request line and waits for the answer with its id; the connection's protocol reads answers as
they come and hands each to the call waiting for it. A call that times out or is cancelled stops waiting, and the
answer, when it comes, is dropped: the connection stays usable (the blocking client must throw its connection away
instead, since it reads answers in order). Records are appended to the same buffer as the blocking client's and
sent by a task on the loop.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .answers import Assignment, Json, PromptVersion, Rendering, Scalar
from .operations import Operations, Outcome, Outcomes
from .protocol import (
    NO_MEMBERS,
    Failure,
    answer_id,
    assign_bodies,
    assign_body,
    decode,
    error_code,
    error_message,
    line,
    render_request,
    render_prompt_body,
    request_bodies,
    version_body,
)
from .records import SEND_TIMEOUT

_running_loop = asyncio.get_running_loop

MAX_WRITE_BUFFER = 1 << 20
"""Bytes written but not yet taken by the daemon beyond which it is taken to be stuck: calls fail with ``timeout``
and the connection is closed, instead of buffering without bound."""


class _Waiting:
    """The answers one exchange waits for (its ids are consecutive), resolved when all have come."""

    __slots__ = ("future", "first", "answers", "missing")

    def __init__(self, future: "asyncio.Future[List[bytes]]", first: int, count: int) -> None:
        self.future = future
        self.first = first
        self.answers: List[Optional[bytes]] = [None] * count
        self.missing = count


def _made(body: bytes) -> bytes:
    """A request body made before :meth:`AsyncVariantClient._ask` is called (``render``'s, which says more)."""
    return body


class _Wire(asyncio.Protocol):
    """One connection: writes request lines, and hands each answer line to the exchange waiting for its id."""

    def __init__(self, on_answers: Optional[Callable[[List[bytes]], None]] = None) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = b""
        self.waiting: Dict[int, Union[_Waiting, "asyncio.Future[bytes]"]] = {}
        """What waits for each id: an exchange of several requests, or one request's future."""
        self.lost: Optional[Failure] = None
        self.on_answers = on_answers
        self.deadlines: List[Tuple[float, int, "asyncio.Future[object]"]] = []
        """The futures waited for on this connection, by deadline (done ones are dropped as they come up)."""
        self.timer: Optional[asyncio.TimerHandle] = None
        self.timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.lost = Failure("closed", f"the daemon closed the connection{f': {exc}' if exc else ''}")
        for waiting in set(self.waiting.values()):
            future = waiting.future if waiting.__class__ is _Waiting else waiting
            if not future.done():
                future.set_exception(self.lost)
        self.waiting.clear()
        self.deadlines.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data, self.buffer = self.buffer + data, b""
        raw, newline, rest = data.partition(b"\n")
        if newline and not rest and self.on_answers is None:
            # One whole answer, the usual case: partition finds its end with memchr, where split scans byte by byte
            # and makes a list (1,800 instructions for an assign answer).
            self._answer(raw)
            return
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        if self.on_answers is not None:
            self.on_answers(lines)
            return
        for raw in lines:
            self._answer(raw)

    def _answer(self, raw: bytes) -> None:
        request_id = answer_id(raw)
        if request_id is None:
            try:
                answer = decode(raw)
                request_id = answer.get("id")
                if request_id is None:
                    # A line the daemon could not read: answers come in order, so it is the oldest one's.
                    failure = Failure(error_code(answer), error_message(answer))
                    self._fail_oldest(failure)
                    return
            except Failure as failure:
                self._fail_oldest(failure)
                return
        waiting = self.waiting.pop(request_id, None)  # type: ignore[arg-type]
        if waiting is None:
            return  # its caller timed out or was cancelled
        if waiting.__class__ is not _Waiting:  # one request's own future (AsyncVariantClient._send_one)
            if not waiting.done():
                waiting.set_result(raw)
            return
        waiting.answers[request_id - waiting.first] = raw  # type: ignore[operator]
        waiting.missing -= 1
        if waiting.missing == 0 and not waiting.future.done():
            waiting.future.set_result(waiting.answers)  # type: ignore[arg-type]

    def _fail_oldest(self, failure: Failure) -> None:
        for request_id, waiting in self.waiting.items():
            del self.waiting[request_id]
            future = waiting.future if waiting.__class__ is _Waiting else waiting
            if not future.done():
                future.set_exception(failure)
            return

    def expire_at(self, loop: asyncio.AbstractEventLoop, deadline: float, request_id: int, future: "asyncio.Future[object]") -> None:
        """Fails ``future`` with ``timeout`` at ``deadline`` unless it is done by then. The connection's deadlines are
        kept in a heap watched by one timer, armed for the earliest: a timer per request cost a handle, a push onto
        the loop's heap (comparing handles in Python) and a cancellation each. ``request_id`` (unique on the
        connection) orders equal deadlines, so futures are never compared."""
        deadlines = self.deadlines
        heapq.heappush(deadlines, (deadline, request_id, future))
        if self.timer is None:
            self._arm(loop, deadline)
        elif deadline < self.timer_at:
            self.timer.cancel()
            self._arm(loop, deadline)
        elif len(deadlines) > 2 * len(self.waiting) + 64:
            # Answered requests wait in the heap until their deadline comes up; with a long timeout they would pile
            # up, so they are dropped once they outnumber the waiting ones (at most once per as many requests).
            deadlines[:] = [entry for entry in deadlines if not entry[2].done()]
            heapq.heapify(deadlines)

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self.timer = loop.call_at(deadline, self._expire, loop)
        self.timer_at = deadline

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: fails the futures whose deadline has come, drops the done ones in front, and is armed again for
        the next deadline."""
        self.timer = None
        deadlines = self.deadlines
        due = max(loop.time(), self.timer_at)  # a loop runs a timer up to its clock's resolution early
        while deadlines and (deadlines[0][0] <= due or deadlines[0][2].done()):
            future = heapq.heappop(deadlines)[2]
            if not future.done():
                future.set_exception(Failure("timeout", "waiting for the answer"))
        if deadlines:
            self._arm(loop, deadlines[0][0])

    def forget(self, waiting: _Waiting) -> None:
        """Stops waiting for an exchange's answers (timed out or cancelled); they are dropped when they come."""
        for request_id in range(waiting.first, waiting.first + len(waiting.answers)):
            self.waiting.pop(request_id, None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AsyncVariantClient(Operations):
    """:class:`VariantClient` for asyncio: the same calls as coroutines (``await client.assign(...)``), the same
    fallback and deadline rules, and one connection that carries every task's requests at once.

    It may be made outside a running loop (at import time, say); it connects on its first call, on the loop
    running then. ``record`` is a plain method: it appends to a buffer and returns at once; a task on the loop
    sends the buffer every ``flush_interval``. ``await client.close()`` (or ``async with``) sends what is left.
    Nothing but cancellation (the caller's own) escapes ``assign``, ``prompt``, ``template``, ``render`` and
    ``render_prompt``; the operator calls raise :class:`VariantdError` as the blocking client's do.
    """

    def _start(self) -> None:
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._wire: Optional[_Wire] = None
        self._connecting: Optional["asyncio.Future[_Wire]"] = None
        self._next_id = 1
        self._sender: Optional["asyncio.Task[None]"] = None
        self._wake: Optional[asyncio.Event] = None
        self._progress: Optional[asyncio.Event] = None

    # ------------------------------------------------------------------------------------------ request path

    async def assign(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]] = None) -> Assignment:
        """The variant ``unit`` gets in ``experiment``; the fallback's control if the daemon cannot say."""
        return self._assigned(experiment, await self._ask(assign_body, experiment, unit, attributes))

    async def prompt(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]] = None) -> Assignment:
        """Like ``assign``, with the assigned prompt version's ``template`` and ``variables`` filled in (templates
        cached per config version)."""
        assignment, complete = self._prompt_assigned(experiment, await self._ask(assign_body, experiment, unit, attributes))
        if complete:
            return assignment
        return self._prompted(assignment, await self._ask(version_body, assignment.prompt, assignment.prompt_version))

    async def template(self, prompt: str, version: Optional[int] = None) -> Optional[PromptVersion]:
        """A prompt version's template (the latest without ``version``), from the daemon, else the fallback's,
        else None."""
        return self._template(prompt, version, await self._ask(version_body, prompt, version))

    async def assign_many(self, requests: Sequence[Tuple[str, str, Optional[Mapping[str, Scalar]]]]) -> List[Assignment]:
        """Many ``(experiment, unit, attributes)`` assignments in one write; each answer falls back on its own."""
        return self._assigned_many(requests, await self._ask_all(assign_bodies, requests))

    async def render(
        self,
        experiment: str,
        unit: str,
        variables: Optional[Mapping[str, Scalar]] = None,
        attributes: Optional[Mapping[str, Scalar]] = None,
    ) -> Rendering:
        """The prompt version ``unit`` gets, rendered by the daemon (see :meth:`VariantClient.render`)."""
        try:
            body, repeated = render_request(experiment, unit, variables, attributes)
        except Exception as problem:  # noqa: BLE001 - a request that cannot be made ends in the call's fallback
            return self._rendered(experiment, variables, Failure("client_error", repr(problem)))
        return self._rendered(experiment, variables, await self._ask(_made, body), repeated)

    async def render_prompt(self, prompt: str, variables: Optional[Mapping[str, Scalar]] = None, version: Optional[int] = None) -> Rendering:
        """A prompt version rendered by the daemon without an experiment (see :meth:`VariantClient.render_prompt`)."""
        return self._rendered_prompt(prompt, variables, version, await self._ask(render_prompt_body, prompt, variables, version))

    def _buffered(self) -> None:
        # The sender task starts on the running loop with the first record.
        if self._sender is None or self._sender.done():
            self._start_sender()

    async def flush(self, timeout: float = 1.0) -> bool:
        """Waits up to ``timeout`` seconds until every buffered record was sent (or dropped); True if so."""
        if self._records.pending:
            self._buffered()
        deadline = time.monotonic() + timeout
        while self._records.pending:
            if self._wake is None or self._progress is None:
                return False
            self._progress.clear()
            self._wake.set()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except asyncio.TimeoutError:
                return not self._records.pending
        return True

    async def close(self, timeout: float = 1.0) -> None:
        """Sends what is buffered (waiting up to ``timeout``), stops the sender and closes the connection."""
        await self.flush(timeout)
        self._records.close()
        if self._sender is not None:
            if self._wake is not None:
                self._wake.set()  # the sender sees the closed buffer at once and ends
            self._sender.cancel()
            try:
                await self._sender
            except asyncio.CancelledError:
                pass
            self._sender = None
        if self._wire is not None:
            self._wire.close()
            self._wire = None

    async def __aenter__(self) -> "AsyncVariantClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ operator calls (these raise)

    async def request(self, fields: Mapping[str, Json], timeout: Optional[float] = None) -> Dict[str, Json]:
        """Sends any request and returns the answer object; raises :class:`VariantdError`."""
        return self._operator_answer(await self._ask_all(request_bodies, [fields], admin_timeout=timeout or self.admin_timeout))

    async def events(self, limit: Optional[int] = None) -> List[Dict[str, Json]]:
        return list((await self.request(self._events_request(limit)))["events"])

    async def stats(self, experiment: str, minimum_detectable_effect: Optional[float] = None) -> Dict[str, Json]:
        return await self.request(self._stats_request(experiment, minimum_detectable_effect))

    async def health(self) -> Dict[str, Json]:
        return await self.request({"op": "health"})

    async def disable(self, experiment: str, variant: str, reason: Optional[str] = None) -> Dict[str, Json]:
        return await self.request(self._disable_request(experiment, variant, reason))

    async def enable(self, experiment: str, variant: str) -> Dict[str, Json]:
        return await self.request({"op": "enable", "experiment": experiment, "variant": variant})

    # ------------------------------------------------------------------------------------------ the transport

    async def _ask(self, body: Callable[..., bytes], *args: Json) -> Outcome:
        """Sends the request ``body(*args)`` makes and returns its answer line, or the failure; raises nothing
        but the caller's own cancellation. On a live connection of a client that has had no failure since its last
        answer, the request waits on a future of its own (:meth:`_send_one`), with no coroutine, list or
        ``_Waiting`` made for it; anything else goes the general way (:meth:`_attempts`), a failure on the live
        connection included, so the connection, retry and back-off rules are written once."""
        try:
            request = body(*args)
            loop = _running_loop()
            wire = self._wire
            if wire is None or wire.lost is not None or self._loop is not loop or self._down_until or self._fallback_log.outage:
                return (await self._exchange([request], self.timeout, False))[0]
            deadline = loop.time() + self.timeout
            try:
                return await self._send_one(loop, wire, request, deadline)
            except Failure as failure:
                if not self._try_again(failure, False, 0, loop.time() < deadline):
                    raise
            return (await self._attempts(loop, [request], deadline, 1))[0]
        except Failure as failure:
            return failure
        except Exception as problem:  # noqa: BLE001 - a bug here must still end in the call's fallback
            return Failure("client_error", repr(problem))

    async def _ask_all(self, bodies: Callable[..., List[bytes]], *args: Json, admin_timeout: Optional[float] = None) -> Outcomes:
        """Sends the requests ``bodies(*args)`` makes in one write and returns their answer lines, or the failure.
        With ``admin_timeout`` it is an operator call: that timeout, and no back-off."""
        try:
            return await self._exchange(bodies(*args), admin_timeout or self.timeout, admin_timeout is not None)
        except Failure as failure:
            return failure
        except Exception as problem:  # noqa: BLE001
            return Failure("client_error", repr(problem))

    async def _exchange(self, bodies: List[bytes], timeout: float, admin: bool) -> List[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._refuse_while_down(admin)
        return await self._attempts(loop, bodies, deadline, 0)

    async def _attempts(self, loop: asyncio.AbstractEventLoop, bodies: List[bytes], deadline: float, attempt: int) -> List[bytes]:
        """The exchange from try ``attempt`` (0 or 1) on: connecting when there is no live connection, and once more
        on a new one when the daemon closed a kept one."""
        while attempt < 2:
            fresh = self._wire is None or self._wire.lost is not None
            try:
                answers = await self._send(loop, await self._connection(loop, deadline), bodies, deadline)
                self._exchanged()
                return answers
            except Failure as failure:
                if not self._try_again(failure, fresh, attempt, loop.time() < deadline):
                    raise
            attempt += 1
        raise Failure("closed", "the daemon closed the connection")

    async def _send_one(self, loop: asyncio.AbstractEventLoop, wire: _Wire, body: bytes, deadline: float) -> bytes:
        """:meth:`_send` for one request: its answer line, waited for until ``deadline`` on a future of its own; on a
        timeout or cancellation the answer is forgotten and the connection stays."""
        request_id = self._next_id
        self._next_id = request_id + 1
        future = loop.create_future()
        waiting = wire.waiting
        waiting[request_id] = future
        transport = wire.transport
        # line(), written out: a call fewer per request (a body is never the member-less one here but for request({})).
        transport.write(b'{"id":%d,%s' % (request_id, body) if body is not NO_MEMBERS else line(request_id, body))  # type: ignore[union-attr]
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:  # type: ignore[union-attr]
            waiting.pop(request_id, None)
            transport.abort()  # type: ignore[union-attr]
            raise Failure("timeout", "the daemon does not read its requests")
        wire.expire_at(loop, deadline, request_id, future)
        try:
            return await future
        except BaseException:
            waiting.pop(request_id, None)
            raise

    async def _send(self, loop: asyncio.AbstractEventLoop, wire: _Wire, bodies: List[bytes], deadline: float) -> List[bytes]:
        """Writes the requests and waits for their answers until ``deadline``; on a timeout or cancellation the
        answers are forgotten and the connection stays."""
        assert wire.transport is not None
        first = self._next_id
        self._next_id += len(bodies)
        waiting = _Waiting(loop.create_future(), first, len(bodies))
        for offset in range(len(bodies)):
            wire.waiting[first + offset] = waiting
        if len(bodies) == 1:
            wire.transport.write(line(first, bodies[0]))
        else:
            wire.transport.write(b"".join(line(first + i, body) for i, body in enumerate(bodies)))
        if wire.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            wire.forget(waiting)
            wire.transport.abort()
            raise Failure("timeout", "the daemon does not read its requests")
        wire.expire_at(loop, deadline, first, waiting.future)
        try:
            return await waiting.future
        finally:
            if waiting.missing:
                wire.forget(waiting)

    async def _connection(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Wire:
        """The connection, opened if there is none; callers arriving while it opens wait for the same one."""
        self._bind(loop)
        wire = self._wire
        if wire is not None and wire.lost is None:
            return wire
        if self._connecting is None:
            self._connecting = loop.create_task(self._connect(loop))
            self._connecting.add_done_callback(_retrieve)  # every waiter may have timed out
        try:
            return await asyncio.wait_for(asyncio.shield(self._connecting), max(deadline - loop.time(), 0))
        except asyncio.TimeoutError:
            raise Failure("timeout", f"connecting to {self.socket_path}") from None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Wire:
        try:
            _, wire = await loop.create_unix_connection(_Wire, self.socket_path)
        except OSError as error:
            raise Failure("unreachable", f"{self.socket_path}: {error.strerror or error}") from None
        finally:
            self._connecting = None
        self._wire = wire
        self.connections += 1
        return wire

    # ------------------------------------------------------------------------------------------ records

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ties the client to the loop running now: on first use, or after its old loop ended (another
        ``asyncio.run``), whose connection and sender are of no use on this one."""
        if self._loop is not loop:
            self._loop, self._wire, self._connecting, self._sender = loop, None, None, None

    def _start_sender(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop: the records wait for the next record or flush made on one
        self._bind(loop)
        if self._sender is not None and not self._sender.done():
            return
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._sender = loop.create_task(self._send_records(), name="variantd-records")

    async def _send_records(self) -> None:
        """Every ``flush_interval`` (or when ``flush`` wakes it), sends what is buffered on a connection of its
        own; refusals are counted as they are answered. After a failure it drops what it takes for
        ``retry_after``."""
        assert self._wake is not None and self._progress is not None
        loop = asyncio.get_running_loop()
        wire: Optional[_Wire] = None
        down_until = 0.0
        # Ends when the buffer is closed, not only when cancelled: on Python < 3.12 `asyncio.wait_for` can swallow a
        # cancellation that arrives as its inner wait completes (gh-86296), and `close()` would then wait forever.
        while not self._records.closed:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            taken = self._records.take(0) or []
            written = 0
            try:
                if taken:
                    if time.monotonic() < down_until:
                        raise Failure("unreachable", "the daemon was unreachable moments ago")
                    if wire is None or wire.lost is not None:
                        wire = await self._record_connection(loop)
                    assert wire.transport is not None
                    for payload, count in self._records.batches(taken):
                        wire.transport.write(payload)
                        written += count
                        self._records.wrote(count)
                    if wire.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                        raise Failure("timeout", "the daemon does not read the records")
            except Exception as error:  # noqa: BLE001 - the daemon is down or went away: drop and count
                if wire is not None:
                    wire.close()
                    wire = None
                down_until = time.monotonic() + self.retry_after
                self._records.lost(len(taken) - written, error if isinstance(error, Failure) else Failure("client_error", repr(error)))
            finally:
                self._records.done()
                self._progress.set()

    async def _record_connection(self, loop: asyncio.AbstractEventLoop) -> _Wire:
        try:
            _, wire = await asyncio.wait_for(
                loop.create_unix_connection(lambda: _Wire(self._records.answered), self.socket_path), SEND_TIMEOUT / 2
            )
        except asyncio.TimeoutError:
            raise Failure("timeout", f"connecting to {self.socket_path}") from None
        except OSError as error:
            raise Failure("unreachable", f"{self.socket_path}: {error.strerror or error}") from None
        return wire


def _retrieve(task: "asyncio.Task[_Wire]") -> None:
    if not task.cancelled():
        task.exception()

