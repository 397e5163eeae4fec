"""What each call does, written once for both clients.

Each call is a generator: it yields the exchange it needs (request bodies, and whether it is an operator call) and
is sent the answer lines, or has the transport's :class:`Failure` thrown in; it returns the call's result, its
fallback included. The blocking client drives it with a socket, the asyncio client with its loop, so the fallback
and deadline rules are the same in both by construction.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Dict, Generator, List, Mapping, Optional, Sequence, Tuple, Union

from .answers import Assignment, Json, PromptVersion, Scalar, VariantdError
from .fallback import Fallback, client_fallback
from .logs import CauseLog
from .protocol import (
    AssignAnswers,
    Failure,
    assign_body,
    assignment_fields,
    decode,
    error_code,
    error_message,
    new_assignment,
    ok_answer,
    record_entry,
    refusal,
    render_body,
    rendering,
    request_body,
)
from .records import RecordBuffer
from .rendering import render_locally

DEFAULT_SOCKET = "/run/variantd/variantd.sock"

Exchange = Tuple[List[bytes], bool]
"""Request bodies to send in one write, and whether this is an operator call (``admin_timeout``, no back-off)."""
Call = Generator[Exchange, List[bytes], Json]

OUTAGES = ("unreachable", "timeout", "closed")
"""Failures after which calls fall back at once for ``retry_after``."""

_NOT_DECIDED = ("fallback", "no_config")
_METRICS = ("latency_ms", "error", "success", "cost_usd", "tokens")


class Operations:
    """The state and the calls both clients share: options, the fallback, the template cache, the record buffer,
    the counters and the logs. A subclass supplies the transport that drives the calls."""

    def __init__(
        self,
        socket_path: Optional[str] = None,
        *,
        fallback: Union[None, Fallback, str, os.PathLike, Mapping[str, Json]] = None,
        timeout: float = 0.005,
        retry_after: float = 0.25,
        record_buffer: int = 10_000,
        flush_interval: float = 0.05,
        max_line_bytes: int = 60_000,
        admin_timeout: float = 5.0,
    ) -> None:
        self.socket_path = socket_path or os.environ.get("VARIANTD_SOCKET") or DEFAULT_SOCKET
        self.fallback = client_fallback(fallback)
        self.timeout = timeout
        self.retry_after = retry_after
        self.admin_timeout = admin_timeout
        self.record_buffer = record_buffer
        self.flush_interval = flush_interval
        self.max_line_bytes = max_line_bytes
        self.fallbacks = 0
        """Answers served from the fallback."""
        self.connections = 0
        """Connections opened for requests (the first, then one after each the daemon closed or that failed)."""
        self._down_until = 0.0
        self._counter_lock = threading.Lock()
        self._templates: Dict[Tuple[str, str, int], PromptVersion] = {}
        self._answers = AssignAnswers()
        self._records = RecordBuffer(record_buffer, max_line_bytes)
        self._fallback_log = CauseLog(
            "client.fallback",
            "variantd_client: serving the fallback's control (%s: %s)",
            recovery="variantd_client: variantd answers again, after %d fallbacks",
        )
        self._start()

    def _start(self) -> None:
        """Sets up the subclass's transport and record sender (without connecting: that waits for a call)."""

    # ------------------------------------------------------------------------------------------ counters

    @property
    def sent(self) -> int:
        """Records written to the daemon."""
        return self._records.sent

    @property
    def dropped(self) -> int:
        """Records dropped: the buffer was full, the daemon was down, or a record could not be encoded."""
        return self._records.dropped

    @property
    def rejected(self) -> int:
        """Records the daemon refused (unknown variant, invalid metric, ...), reported on the record connection."""
        return self._records.rejected

    @property
    def pending(self) -> int:
        """Records buffered or being sent."""
        return self._records.pending

    # ------------------------------------------------------------------------------------------ records

    def record(
        self,
        experiment: Union[str, Assignment],
        variant: Optional[str] = None,
        *,
        unit: Optional[str] = None,
        attributes: Optional[Mapping[str, Scalar]] = None,
        shadow: bool = False,
        latency_ms: Optional[float] = None,
        error: Optional[bool] = None,
        success: Union[None, bool, float] = None,
        cost_usd: Optional[float] = None,
        tokens: Optional[int] = None,
        custom: Optional[Mapping[str, float]] = None,
    ) -> bool:
        """Buffers one record for the background sender; never blocks, never raises.

        Pass an :class:`Assignment` (its experiment and variant are used) or an experiment and a variant (or
        ``unit=`` and the assign's ``attributes``, so the daemon recomputes the variant). Records of a fallback
        or ``no_config`` assignment are not sent (they were not decided by the daemon) and return False, as does
        a record dropped because the buffer is full. Returns True when the record was buffered.
        """
        try:
            if isinstance(experiment, Assignment):
                if experiment.reason in _NOT_DECIDED or experiment.variant is None:
                    return False
                experiment, variant = experiment.experiment, experiment.variant
            measured = (latency_ms, error, success, cost_usd, tokens)
            metrics: Dict[str, Json] = {name: value for name, value in zip(_METRICS, measured) if value is not None}
            if custom:
                metrics["custom"] = dict(custom)
            encoded = record_entry(experiment, variant, unit, attributes, shadow, metrics)
        except Exception as problem:  # noqa: BLE001 - an unencodable record is dropped, not raised
            self._records.unencodable(problem)
            return False
        if not self._records.add(encoded):
            return False
        self._buffered()
        return True

    def _buffered(self) -> None:
        """A record was buffered (the asyncio client starts its sender then)."""

    # ------------------------------------------------------------------------------------------ the calls

    def _assign_call(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]]) -> Call:
        try:
            (raw,) = yield [assign_body(experiment, unit, attributes)], False
            return self._assignment(experiment, self._answers.fields(raw))
        except Failure as failure:
            return self._fall_back(experiment, failure)
        except Exception as problem:  # noqa: BLE001 - the contract: never raise into the request path
            return self._fall_back(experiment, Failure("client_error", repr(problem)))

    def _prompt_call(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]]) -> Call:
        assignment = yield from self._assign_call(experiment, unit, attributes)
        if assignment.reason in _NOT_DECIDED or assignment.prompt is None or assignment.prompt_version is None:
            return assignment
        key = (assignment.config_version or "", assignment.prompt, assignment.prompt_version)
        version = self._templates.get(key)
        if version is None:
            version = yield from self._version_call(assignment.prompt, assignment.prompt_version, assignment.config_version)
            if version is None:
                return self._fall_back(experiment, Failure("prompt_unavailable", f"no template for {assignment.prompt} version {assignment.prompt_version}"))
        fields = dict(assignment.__dict__, template=version.template, variables=version.variables, messages=version.messages)
        return new_assignment(fields)

    def _version_call(self, prompt: str, version: int, config_version: Optional[str]) -> Call:
        """A prompt version from the daemon, kept when it belongs to ``config_version``; None if the daemon cannot
        give it."""
        try:
            (raw,) = yield [request_body({"op": "prompt", "prompt": prompt, "version": version})], False
            found = PromptVersion.from_answer(ok_answer(raw))
        except Exception:  # noqa: BLE001
            return None
        if found.config_version == config_version:
            if len(self._templates) > 1024:
                self._templates.clear()
            self._templates[(config_version or "", prompt, version)] = found
        return found

    def _template_call(self, prompt: str, version: Optional[int]) -> Call:
        request: Dict[str, Json] = {"op": "prompt", "prompt": prompt}
        if version is not None:
            request["version"] = version
        try:
            (raw,) = yield [request_body(request)], False
            return PromptVersion.from_answer(ok_answer(raw))
        except Exception:  # noqa: BLE001
            return self.fallback.prompt_version(prompt, version)

    def _assign_many_call(self, requests: Sequence[Tuple[str, str, Optional[Mapping[str, Scalar]]]]) -> Call:
        try:
            raws = yield [assign_body(experiment, unit, attributes) for experiment, unit, attributes in requests], False
        except Failure as failure:
            return [self._fall_back(r[0], failure) for r in requests]
        except Exception as problem:  # noqa: BLE001
            return [self._fall_back(r[0], Failure("client_error", repr(problem))) for r in requests]
        assignments = []
        for (experiment, _, _), raw in zip(requests, raws):
            try:
                assignments.append(self._assignment(experiment, self._answers.fields(raw)))
            except Failure as failure:
                assignments.append(self._fall_back(experiment, failure))
        return assignments

    def _render_call(
        self, experiment: str, unit: str, variables: Optional[Mapping[str, Scalar]], attributes: Optional[Mapping[str, Scalar]]
    ) -> Call:
        variables = variables or {}
        try:
            try:
                (raw,) = yield [render_body(experiment, unit, variables, attributes)], False
                answer = decode(raw)
            except Failure as failure:
                return self.fallback.render(self._fall_back(experiment, failure), variables)
            refused = refusal(answer)
            if refused is not None:
                return refused
            try:
                if answer.get("ok") is not True:
                    raise Failure(error_code(answer), error_message(answer))
                assignment = self._assignment(experiment, assignment_fields(answer))
            except Failure as failure:
                assignment = self._fall_back(experiment, failure)
            if assignment.reason in _NOT_DECIDED:
                return self.fallback.render(assignment, variables)
            return rendering(answer, assignment)
        except Exception as problem:  # noqa: BLE001 - the contract: never raise into the request path
            return self.fallback.render(self._fall_back(experiment, Failure("client_error", repr(problem))), variables)

    def _render_prompt_call(self, prompt: str, variables: Optional[Mapping[str, Scalar]], version: Optional[int]) -> Call:
        variables = variables or {}
        request: Dict[str, Json] = {"op": "render", "prompt": prompt, "variables": dict(variables)}
        if version is not None:
            request["version"] = version
        try:
            (raw,) = yield [request_body(request)], False
            answer = decode(raw)
            refused = refusal(answer)
            if refused is not None:
                return refused
            if answer.get("ok") is True:
                return rendering(answer, None)
            failure = Failure(error_code(answer), error_message(answer))
        except Failure as caught:
            failure = caught
        except Exception as problem:  # noqa: BLE001
            failure = Failure("client_error", repr(problem))
        self._count_fallback(failure)
        return render_locally(self.fallback.prompt_version(prompt, version), variables, None, failure.code)

    # Operator calls: these raise VariantdError.

    def _request_call(self, fields: Mapping[str, Json]) -> Call:
        try:
            (raw,) = yield [request_body(fields)], True
            answer = decode(raw)
        except Failure as failure:
            raise VariantdError(failure.code, failure.message or f"cannot talk to {self.socket_path}") from None
        if answer.get("ok") is not True:
            raise VariantdError(error_code(answer), error_message(answer))
        return answer

    def _events_call(self, limit: Optional[int]) -> Call:
        answer = yield from self._request_call({"op": "events"} if limit is None else {"op": "events", "limit": limit})
        return list(answer["events"])

    def _stats_call(self, experiment: str, minimum_detectable_effect: Optional[float]) -> Call:
        request: Dict[str, Json] = {"op": "stats", "experiment": experiment}
        if minimum_detectable_effect is not None:
            request["minimum_detectable_effect"] = minimum_detectable_effect
        return (yield from self._request_call(request))

    @staticmethod
    def _disable_request(experiment: str, variant: str, reason: Optional[str]) -> Dict[str, Json]:
        request: Dict[str, Json] = {"op": "disable", "experiment": experiment, "variant": variant}
        if reason is not None:
            request["reason"] = reason
        return request

    # ------------------------------------------------------------------------------------------ transport rules

    def _refuse_while_down(self, admin: bool) -> None:
        """After an outage, calls fall back at once for ``retry_after`` (operator calls try all the same)."""
        if not admin and self._down_until and time.monotonic() < self._down_until:
            raise Failure("unreachable", "the daemon was unreachable moments ago; it is tried again after retry_after")

    def _exchanged(self) -> None:
        self._down_until = 0.0
        self._fallback_log.recovered()

    def _try_again(self, failure: Failure, fresh: bool, attempt: int, time_left: bool) -> bool:
        """Whether a failed exchange is tried again: once, at once, on a new connection, when the daemon closed a
        kept one (a restart, an idle close). Otherwise an outage starts the ``retry_after`` back-off."""
        if failure.code == "closed" and not fresh and attempt == 0 and time_left:
            return True
        if failure.code in OUTAGES:
            self._down_until = time.monotonic() + self.retry_after
        return False

    # ------------------------------------------------------------------------------------------ answers

    def _assignment(self, experiment: str, fields: Dict[str, Json]) -> Assignment:
        if fields["reason"] == "no_config":
            # The daemon has no configuration: the client serves its own control, keeping the daemon's reason.
            return self.fallback.assignment(experiment, "no_config")
        return new_assignment(fields)

    def _fall_back(self, experiment: str, failure: Failure) -> Assignment:
        self._count_fallback(failure)
        return self.fallback.assignment(experiment, "fallback", failure.code)

    def _count_fallback(self, failure: Failure) -> None:
        with self._counter_lock:
            self.fallbacks += 1
        self._fallback_log.failed(failure.code, failure.message, outage=failure.code in OUTAGES)
