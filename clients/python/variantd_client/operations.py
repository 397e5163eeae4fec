"""What each call does, written once for both clients.

A call is a request and an outcome: the client sends the request (a body from ``protocol``) and hands what came
back, the answer line or the :class:`Failure` that stopped it, to the method here that makes the call's result,
its fallback included. The blocking client asks over its socket, the asyncio client on its loop; the fallback,
retry and back-off rules are here, the same for both.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .answers import Assignment, Json, PromptVersion, Rendering, Scalar, VariantdError
from .fallback import Fallback, client_fallback
from .logs import CauseLog
from .protocol import (
    REFUSALS,
    AssignAnswers,
    Failure,
    decode,
    error_code,
    error_message,
    new_assignment,
    new_rendering,
    ok_answer,
    record_entry,
    refusal,
    refused,
    rendering,
    with_template,
)
from .records import RecordBuffer
from .rendering import render_locally

DEFAULT_SOCKET = "/run/variantd/variantd.sock"

Outcome = Union[bytes, Failure]
"""What came of one request: its answer line, or why there is none."""
Outcomes = Union[List[bytes], Failure]
"""What came of requests sent together: their answer lines, in order, or why there are none."""

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
        self._known = self._answers.known
        self._known_renderings = self._answers.known_renderings
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
        ``unit=`` and the assign's ``attributes``, so the daemon recomputes the variant). Give ``unit=`` with an
        assignment or a variant too: the daemon then analyses the records by unit, as randomization is by unit
        (a unit's records are correlated; without the unit each record counts as its own unit). Records of a fallback
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
    # Each call is a request (a body builder from protocol.py) and a method here that makes the call's result from
    # the outcome: the answer line, or the Failure that stopped it. A client asks, this answers, so the fallback
    # rules are the same in both clients and the hot path raises nothing.

    def _assigned(self, experiment: str, outcome: Outcome) -> Assignment:
        """``assign``: the daemon's decision, else the fallback's control."""
        if outcome.__class__ is bytes:
            try:
                assigned = self._known.get(outcome.partition(b",")[2])  # type: ignore[union-attr]  # AssignAnswers.fields, written out
                fields = assigned.fields if assigned is not None else self._answers.fields(outcome)  # type: ignore[arg-type]
                if fields["reason"] != "no_config":
                    return new_assignment(fields)
                # The daemon has no configuration: the client serves its own control, keeping the daemon's reason.
                return self.fallback.assignment(experiment, "no_config")
            except Failure as failure:
                outcome = failure
            except Exception as problem:  # noqa: BLE001 - the contract: never raise into the request path
                outcome = Failure("client_error", repr(problem))
        return self._fall_back(experiment, outcome)  # type: ignore[arg-type]

    def _prompt_assigned(self, experiment: str, outcome: Outcome) -> Tuple[Assignment, bool]:
        """``prompt``'s assignment from the ``assign`` outcome, and whether it is complete: with its version's
        template when the cache has it (kept with the answer, so a known answer with a known template costs what an
        ``assign`` costs), or as ``assign`` makes it when there is no template to fill in (a fallback,
        ``no_config``, no prompt); not complete when the daemon must be asked for the template (then
        :meth:`_prompted`)."""
        if outcome.__class__ is bytes:
            try:
                assigned = self._known.get(outcome.partition(b",")[2])  # type: ignore[union-attr]  # as in _assigned
                prompted = assigned.prompted if assigned is not None else None
                if prompted is None:
                    prompted = self._answers.prompted(outcome, self._cached_template)  # type: ignore[arg-type]
                if prompted is not None:
                    return new_assignment(prompted), True
            except Exception:  # noqa: BLE001 - not an assignment: decoded again below, which gives the fallback
                pass
        assignment = self._assigned(experiment, outcome)
        return assignment, assignment.reason in _NOT_DECIDED or assignment.prompt is None or assignment.prompt_version is None

    def _cached_template(self, fields: Mapping[str, Json]) -> Optional[PromptVersion]:
        """The cached template of an assignment's prompt version (per config version); None if it has none to fill
        in (a fallback, ``no_config``, no prompt) or the cache does not have it."""
        if fields["reason"] in _NOT_DECIDED or fields["prompt"] is None or fields["prompt_version"] is None:
            return None
        return self._templates.get((fields["config_version"] or "", fields["prompt"], fields["prompt_version"]))

    def _prompted(self, assignment: Assignment, outcome: Outcome) -> Assignment:
        """``prompt`` after asking the daemon for the version :meth:`_prompt_assigned` did not have:
        ``assignment`` with its template from the answer (then cached, if of the same config version), else the
        fallback (``prompt_unavailable``)."""
        version = self._version(outcome)
        if version is None:
            why = outcome.message if isinstance(outcome, Failure) else "the daemon did not give the template"
            return self._fall_back(assignment.experiment, Failure("prompt_unavailable", f"{assignment.prompt} version {assignment.prompt_version}: {why}"))
        if version.config_version == assignment.config_version:
            if len(self._templates) > 1024:
                self._templates.clear()
            self._templates[(assignment.config_version or "", assignment.prompt, assignment.prompt_version)] = version  # type: ignore[index]
        return with_template(assignment, version)

    def _template(self, prompt: str, version: Optional[int], outcome: Outcome) -> Optional[PromptVersion]:
        """``template``: the daemon's version, else the fallback's, else None."""
        return self._version(outcome) or self.fallback.prompt_version(prompt, version)

    @staticmethod
    def _version(outcome: Outcome) -> Optional[PromptVersion]:
        if outcome.__class__ is not bytes:
            return None
        try:
            return PromptVersion.from_answer(ok_answer(outcome))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            return None

    def _assigned_many(self, requests: Sequence[Tuple[str, str, Optional[Mapping[str, Scalar]]]], outcome: Outcomes) -> List[Assignment]:
        """``assign_many``: each answer on its own, or every request's fallback."""
        if isinstance(outcome, Failure):
            return [self._fall_back(experiment, outcome) for experiment, _, _ in requests]
        return [self._assigned(experiment, raw) for (experiment, _, _), raw in zip(requests, outcome)]

    def _rendered(self, experiment: str, variables: Optional[Mapping[str, Scalar]], outcome: Outcome, repeated: bool = True) -> Rendering:
        """``render``: the daemon's rendering or its refusal; else the fallback's control rendered here.
        ``repeated``: whether the variables were sent before (:func:`protocol.render_request`); if not, the answer is
        not looked up among those kept, nor kept."""
        try:
            if outcome.__class__ is not bytes:
                raise outcome  # type: ignore[misc]
            try:
                if repeated:
                    key = outcome.partition(b",")[2]  # type: ignore[union-attr]  # AssignAnswers.rendering's lookup, written out
                    fields, values = self._known_renderings.get(key) or self._answers.rendering(outcome, key)  # type: ignore[arg-type]
                else:
                    fields, values = self._answers.rendering(outcome, None, False)  # type: ignore[arg-type]
            except Failure as failure:
                if failure.code in REFUSALS:
                    return refused(failure.code, failure.message)
                raise
            if fields["reason"] != "no_config":
                return new_rendering(new_assignment(fields), values)
            return self.fallback.render(self.fallback.assignment(experiment, "no_config"), variables or {})
        except Failure as failure:
            return self.fallback.render(self._fall_back(experiment, failure), variables or {})
        except Exception as problem:  # noqa: BLE001 - the contract: never raise into the request path
            return self.fallback.render(self._fall_back(experiment, Failure("client_error", repr(problem))), variables or {})

    def _rendered_prompt(self, prompt: str, variables: Optional[Mapping[str, Scalar]], version: Optional[int], outcome: Outcome) -> Rendering:
        """``render_prompt``: the daemon's rendering or its refusal; else the fallback's copy rendered here."""
        variables = variables or {}
        try:
            if isinstance(outcome, Failure):
                raise outcome
            answer = decode(outcome)
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

    def _operator_answer(self, outcome: Outcomes) -> Dict[str, Json]:
        if isinstance(outcome, Failure):
            raise VariantdError(outcome.code, outcome.message or f"cannot talk to {self.socket_path}")
        try:
            answer = decode(outcome[0])
        except Failure as failure:
            raise VariantdError(failure.code, failure.message) from None
        if answer.get("ok") is not True:
            raise VariantdError(error_code(answer), error_message(answer))
        return answer

    @staticmethod
    def _events_request(limit: Optional[int]) -> Dict[str, Json]:
        return {"op": "events"} if limit is None else {"op": "events", "limit": limit}

    @staticmethod
    def _stats_request(experiment: str, minimum_detectable_effect: Optional[float]) -> Dict[str, Json]:
        request: Dict[str, Json] = {"op": "stats", "experiment": experiment}
        if minimum_detectable_effect is not None:
            request["minimum_detectable_effect"] = minimum_detectable_effect
        return request

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

    def _fall_back(self, experiment: str, failure: Failure) -> Assignment:
        self._count_fallback(failure)
        return self.fallback.assignment(experiment, "fallback", failure.code)

    def _count_fallback(self, failure: Failure) -> None:
        with self._counter_lock:
            self.fallbacks += 1
        self._fallback_log.failed(failure.code, failure.message, outage=failure.code in OUTAGES)
