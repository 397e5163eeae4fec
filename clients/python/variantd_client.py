"""A small, standard-library-only client for variantd, the prompt-experiment sidecar.

The contract a service relies on: **nothing here raises into the request path**. ``assign`` and ``prompt``
always return an :class:`Assignment`; when the daemon is unreachable, slow or answers an error, the answer is the
control from the caller's :class:`Fallback` with ``reason == "fallback"``. ``record`` never blocks: it appends to
a bounded buffer that a background thread sends as ``batch`` lines with ``"ack": false``; when the buffer is full
or the daemon is down the record is dropped and counted (``client.dropped``).

Typical use::

    client = VariantClient(fallback="/etc/myservice/prompts-fallback.json")
    a = client.prompt("checkout-prompt", user_id, {"country": "US"})
    text = a.template                    # the prompt text to use, from the daemon or the fallback
    span.set_attributes(trace_attributes(a))
    ...
    client.record(a, latency_ms=812.5, error=False, success=True)

See ``clients/README.md`` for the exact fallback behaviour, and ``protocol/PROTOCOL.md`` for the wire protocol.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "DEFAULT_SOCKET",
    "Assignment",
    "Fallback",
    "FallbackVariant",
    "PromptVersion",
    "Rendering",
    "TemplateError",
    "VariantClient",
    "VariantdError",
    "assign_locally",
    "bucket",
    "metadata",
    "render_locally",
    "render_template",
    "trace_attributes",
]

__version__ = "0.1.0"

DEFAULT_SOCKET = "/run/variantd/variantd.sock"

Scalar = Union[str, int, float, bool]
Json = Any


class VariantdError(Exception):
    """An error answer from the daemon (``code`` is one of PROTOCOL.md section 4) or a transport failure.

    Raised only by the operator-facing calls (``events``, ``disable``, ``enable``, ``reload``, ``request``),
    never by ``assign``, ``prompt``, ``template`` or ``record``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """Which variant and prompt version a unit gets, as the daemon (or the fallback) decided.

    ``reason`` is the daemon's (``assigned``, ``not_exposed``, ``disabled``, ``shadow``, ``no_config``, ...) or
    ``"fallback"`` when the client could not get an answer; ``error`` then says why (``"unreachable"``,
    ``"timeout"``, ``"closed"``, ``"invalid_answer"`` or the daemon's error code). ``template`` and
    ``variables`` are filled by ``prompt`` (and by the fallback), not by ``assign``. ``shadow`` is the treatment
    to run in the background in shadow mode (``{"variant", "prompt", "prompt_version", "params"}``) or None.
    """

    experiment: str
    variant: Optional[str]
    prompt: Optional[str]
    prompt_version: Optional[int]
    params: Dict[str, Json]
    in_experiment: bool
    reason: str
    config_version: Optional[str]
    metadata: Dict[str, Json]
    template: Optional[str] = None
    variables: Optional[Dict[str, List[str]]] = None
    shadow: Optional[Dict[str, Json]] = None
    error: Optional[str] = None
    messages: Optional[List[Dict[str, str]]] = None
    """A chat version's messages (``role``, ``content`` templates), filled by ``prompt`` where ``template`` is None."""

    @property
    def is_fallback(self) -> bool:
        return self.reason == "fallback"


@dataclass(frozen=True)
class PromptVersion:
    """One version of a named prompt: a text prompt (``template``) or a chat prompt (``messages``, each with a
    ``role`` and a ``content`` template; ``template`` is None then)."""

    prompt: str
    version: int
    template: Optional[str]
    variables: Dict[str, List[str]] = field(default_factory=lambda: {"required": [], "optional": []})
    config_version: Optional[str] = None
    from_fallback: bool = False
    messages: Optional[List[Dict[str, str]]] = None

    @staticmethod
    def from_answer(answer: Mapping[str, Json]) -> "PromptVersion":
        """The version a ``prompt`` answer describes."""
        return PromptVersion(
            prompt=answer["prompt"],
            version=answer["version"],
            template=answer.get("template"),
            variables=answer.get("variables") or {"required": [], "optional": []},
            config_version=answer.get("config_version"),
            messages=answer.get("messages"),
        )


@dataclass(frozen=True)
class Rendering:
    """A prompt version rendered with variables (``render``, ``render_prompt``).

    ``type`` is ``"text"`` (``text`` is the prompt) or ``"chat"`` (``messages``, each ``{"role", "content"}``), or
    None when nothing could be rendered: ``error`` then says why. The daemon refuses a render with
    ``guardrail_blocked``, ``missing_variable`` or ``invalid_variables`` (``message`` explains): those are never
    replaced by the fallback, since serving the control instead would hide the problem or go around a guardrail.
    When the daemon cannot answer, the fallback's control version is rendered here with the daemon's template rules
    (``assignment.reason == "fallback"``, ``error`` says why), or, if the fallback has no template for it,
    ``type`` is None and the service uses its own default text. ``warnings`` are the daemon's
    (``extra_variable``, ``guardrail_warning``).
    """

    assignment: Optional[Assignment]
    prompt: Optional[str]
    prompt_version: Optional[int]
    type: Optional[str]
    text: Optional[str] = None
    messages: Optional[List[Dict[str, str]]] = None
    warnings: List[Dict[str, Json]] = field(default_factory=list)
    error: Optional[str] = None
    message: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.type is not None

    @property
    def is_fallback(self) -> bool:
        return self.assignment is not None and self.assignment.is_fallback


def metadata(assignment: Assignment) -> Dict[str, Json]:
    """Experiment fields for a trace, as Langfuse-style metadata (plain keys, None kept).

    The daemon's ``metadata`` object (experiment, variant, prompt, prompt_version, config_version) plus
    ``reason`` and ``in_experiment``, so traces can be filtered by experiment, variant, prompt version and by
    whether the client fell back.
    """
    fields: Dict[str, Json] = {
        "experiment": assignment.experiment,
        "variant": assignment.variant,
        "prompt": assignment.prompt,
        "prompt_version": assignment.prompt_version,
        "config_version": assignment.config_version,
    }
    fields.update(assignment.metadata)
    fields["reason"] = assignment.reason
    fields["in_experiment"] = assignment.in_experiment
    if assignment.shadow is not None:
        fields["shadow_variant"] = assignment.shadow.get("variant")
    return fields


def trace_attributes(assignment: Assignment, prefix: str = "variantd.") -> Dict[str, Union[str, int, bool]]:
    """The same fields as OpenTelemetry span attributes: keys prefixed ``variantd.``, None values left out
    (OpenTelemetry attributes cannot be null)."""
    return {prefix + key: value for key, value in metadata(assignment).items() if value is not None}


# --------------------------------------------------------------------------------------------------
# Fallback
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FallbackVariant:
    """What a service serves for one experiment when the daemon cannot say: its control, as the caller wrote it."""

    variant: str = "control"
    prompt: Optional[str] = None
    prompt_version: Optional[int] = None
    template: Optional[str] = None
    params: Dict[str, Json] = field(default_factory=dict)


class Fallback:
    """The caller's local knowledge of each experiment's control, used when the daemon cannot answer.

    Built from a mapping (or a JSON file holding one) in either of two shapes:

    * **experiments**: ``{"checkout-prompt": {"variant": "control", "prompt": "checkout", "prompt_version": 1,
      "template": "You are ...", "params": {}}}``; every member is optional (``variant`` defaults to
      ``"control"``, ``params`` to ``{}``, the others to None);
    * **a variantd configuration document** (it has ``schema_version``), such as the last one deployed: each
      experiment's variant marked ``control`` is served, with its prompt version's template from ``prompts``.

    For an experiment the fallback does not name, the answer is ``variant = "control"`` with no prompt
    and no template, so the service must have its own default text.
    """

    def __init__(self, source: Union[None, str, os.PathLike, Mapping[str, Json]] = None) -> None:
        self.experiments: Dict[str, FallbackVariant] = {}
        self.prompts: Dict[Tuple[str, int], PromptVersion] = {}
        self.latest: Dict[str, int] = {}
        if source is None:
            return
        if isinstance(source, (str, os.PathLike)):
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        if not isinstance(source, Mapping):
            raise TypeError("a fallback is a mapping or a JSON file holding an object")
        if "schema_version" in source:
            self._load_document(source)
        else:
            for name, entry in source.items():
                if not isinstance(entry, Mapping):
                    raise TypeError(f"fallback for {name!r} must be an object")
                unknown = set(entry) - {"variant", "prompt", "prompt_version", "template", "params"}
                if unknown:
                    raise ValueError(f"fallback for {name!r} has unknown fields {sorted(unknown)}")
                self.experiments[name] = FallbackVariant(
                    variant=entry.get("variant", "control"),
                    prompt=entry.get("prompt"),
                    prompt_version=entry.get("prompt_version"),
                    template=entry.get("template"),
                    params=dict(entry.get("params") or {}),
                )
                if entry.get("prompt") is not None and entry.get("prompt_version") is not None and entry.get("template") is not None:
                    self._add_prompt(PromptVersion(entry["prompt"], entry["prompt_version"], entry["template"], from_fallback=True))

    def _add_prompt(self, version: PromptVersion) -> None:
        self.prompts[(version.prompt, version.version)] = version
        self.latest[version.prompt] = max(self.latest.get(version.prompt, 0), version.version)

    def _load_document(self, document: Mapping[str, Json]) -> None:
        for name, prompt in (document.get("prompts") or {}).items():
            for version in prompt.get("versions", []):
                variables = version.get("variables") or {}
                self._add_prompt(
                    PromptVersion(
                        prompt=name,
                        version=version["version"],
                        template=version.get("template"),
                        variables={"required": list(variables.get("required", [])), "optional": list(variables.get("optional", []))},
                        from_fallback=True,
                        messages=version.get("messages"),
                    )
                )
        for experiment in document.get("experiments") or []:
            control = next((v for v in experiment["variants"] if v.get("control") is True), experiment["variants"][0])
            known = self.prompts.get((control["prompt"], control["prompt_version"]))
            self.experiments[experiment["name"]] = FallbackVariant(
                variant=control["name"],
                prompt=control["prompt"],
                prompt_version=control["prompt_version"],
                template=known.template if known else None,
                params=dict(control.get("params") or {}),
            )

    def prompt_version(self, name: str, version: Optional[int] = None) -> Optional[PromptVersion]:
        if version is None:
            version = self.latest.get(name)
            if version is None:
                return None
        return self.prompts.get((name, version))

    def assignment(self, experiment: str, reason: str = "fallback", error: Optional[str] = None) -> Assignment:
        """The control for ``experiment`` as this fallback describes it, with ``reason`` (``fallback``)."""
        entry = self.experiments.get(experiment, FallbackVariant())
        known = self.prompts.get((entry.prompt, entry.prompt_version)) if entry.prompt and entry.prompt_version else None
        return Assignment(
            experiment=experiment,
            variant=entry.variant,
            prompt=entry.prompt,
            prompt_version=entry.prompt_version,
            params=dict(entry.params),
            in_experiment=False,
            reason=reason,
            config_version=None,
            metadata={
                "experiment": experiment,
                "variant": entry.variant,
                "prompt": entry.prompt,
                "prompt_version": entry.prompt_version,
                "config_version": None,
            },
            template=entry.template,
            variables=known.variables if known else None,
            error=error,
            messages=known.messages if known else None,
        )

    def render(self, assignment: Assignment, variables: Mapping[str, Scalar]) -> Rendering:
        """Renders the fallback's version for ``assignment`` locally (``type`` None if it has none)."""
        known = self.prompts.get((assignment.prompt, assignment.prompt_version)) if assignment.prompt and assignment.prompt_version else None
        if known is None and assignment.template is not None:
            known = PromptVersion(assignment.prompt or "", assignment.prompt_version or 0, assignment.template, from_fallback=True)
        return render_locally(known, variables, assignment, assignment.error)


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class _Failure(Exception):
    """A transport failure or an error answer, turned into a fallback by the request path."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Line:
    """One Unix-socket connection speaking newline-delimited JSON, with a deadline per exchange."""

    def __init__(self, path: str, deadline: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.buffer = b""
        try:
            self.sock.settimeout(max(deadline - time.monotonic(), 1e-4))
            self.sock.connect(path)
        except socket.timeout as error:
            self.sock.close()
            raise _Failure("timeout", f"connecting to {path}") from error
        except OSError as error:
            self.sock.close()
            raise _Failure("unreachable", f"{path}: {error.strerror or error}") from error

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes, deadline: float) -> None:
        try:
            self.sock.settimeout(max(deadline - time.monotonic(), 1e-4))
            self.sock.sendall(data)
        except socket.timeout as error:
            raise _Failure("timeout", "sending") from error
        except OSError as error:
            raise _Failure("closed", f"sending: {error}") from error

    def receive(self, deadline: float) -> bytes:
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                line, self.buffer = self.buffer[:newline], self.buffer[newline + 1 :]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failure("timeout", "waiting for the answer")
            try:
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(65536)
            except socket.timeout as error:
                raise _Failure("timeout", "waiting for the answer") from error
            except OSError as error:
                raise _Failure("closed", f"reading: {error}") from error
            if not chunk:
                raise _Failure("closed", "the daemon closed the connection")
            self.buffer += chunk


class VariantClient:
    """A connection to variantd that never raises into the request path.

    - ``socket_path``: the daemon's socket; default ``$VARIANTD_SOCKET``, else ``/run/variantd/variantd.sock``.
    - ``fallback``: a :class:`Fallback`, a mapping or a path to a JSON file (see :class:`Fallback`).
    - ``timeout``: seconds one ``assign``/``prompt`` may take in all, connecting included (default 5 ms).
    - ``retry_after``: after the daemon could not be reached or timed out, seconds during which calls fall back
      at once instead of trying again (so a down daemon costs nothing per request).
    - ``record_buffer``: how many records may wait to be sent; more are dropped and counted.
    - ``flush_interval``: how often the background thread sends buffered records.
    - ``max_line_bytes``: the longest ``batch`` line sent (the daemon's default limit is 65536).

    Requests use one kept connection (reconnected when needed, and thrown away after a timeout so that a late
    answer is never read as the answer to the next request); records go out on a second connection owned by the
    background thread, so recording never waits for a request in flight or the other way round. The client is
    thread-safe.
    """

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
        self.fallback = fallback if isinstance(fallback, Fallback) else Fallback(fallback)
        self.timeout = timeout
        self.retry_after = retry_after
        self.admin_timeout = admin_timeout
        self.record_buffer = record_buffer
        self.flush_interval = flush_interval
        self.max_line_bytes = max_line_bytes

        self._lock = threading.Lock()
        self._line: Optional[_Line] = None
        self._next_id = 1
        self._down_until = 0.0
        self._templates: Dict[Tuple[str, str, int], PromptVersion] = {}

        self._records: List[str] = []
        self._records_lock = threading.Condition()
        self._sending = 0
        self._closed = False
        self.dropped = 0
        """Records dropped: the buffer was full, the daemon was down, or a record could not be encoded."""
        self.rejected = 0
        """Records the daemon refused (unknown variant, invalid metric, ...), reported on the record connection."""
        self.sent = 0
        """Records written to the daemon."""
        self.fallbacks = 0
        """Answers served from the fallback."""
        self._sender = threading.Thread(target=self._send_records, name="variantd-records", daemon=True)
        self._sender.start()

    # ---------------------------------------------------------------- request path

    def assign(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]] = None) -> Assignment:
        """The variant ``unit`` gets in ``experiment``; the fallback's control if the daemon cannot say."""
        request: Dict[str, Json] = {"op": "assign", "experiment": experiment, "unit": unit}
        if attributes:
            request["attributes"] = dict(attributes)
        try:
            (answer,) = self._exchange([request], self.timeout)
            return self._assignment(experiment, answer)
        except _Failure as failure:
            return self._fall_back(experiment, failure.code)
        except Exception:  # noqa: BLE001 - the contract: never raise into the request path
            return self._fall_back(experiment, "client_error")

    def prompt(self, experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]] = None) -> Assignment:
        """Like ``assign``, with the assigned prompt version's ``template`` and ``variables`` filled in.

        Templates are cached per config version, so after the first request for a version this costs one round
        trip. When the daemon cannot answer, the fallback's control and template are returned.
        """
        assignment = self.assign(experiment, unit, attributes)
        if assignment.reason in ("fallback", "no_config") or assignment.prompt is None or assignment.prompt_version is None:
            return assignment
        version = self._cached_template(assignment.prompt, assignment.prompt_version, assignment.config_version)
        if version is None:
            return self._fall_back(experiment, "prompt_unavailable")
        return replace(assignment, template=version.template, variables=version.variables, messages=version.messages)

    def template(self, prompt: str, version: Optional[int] = None) -> Optional[PromptVersion]:
        """A prompt version's template (the latest without ``version``), from the daemon, else the fallback's,
        else None."""
        request: Dict[str, Json] = {"op": "prompt", "prompt": prompt}
        if version is not None:
            request["version"] = version
        try:
            (answer,) = self._exchange([request], self.timeout)
            if answer.get("ok") is not True:
                raise _Failure(_error_code(answer))
            return PromptVersion.from_answer(answer)
        except Exception:  # noqa: BLE001
            return self.fallback.prompt_version(prompt, version)

    def assign_many(self, requests: Sequence[Tuple[str, str, Optional[Mapping[str, Scalar]]]]) -> List[Assignment]:
        """Many ``(experiment, unit, attributes)`` assignments pipelined in one write and one read; each answer
        falls back on its own, all of them if the daemon cannot answer within the timeout."""
        lines: List[Dict[str, Json]] = []
        for experiment, unit, attributes in requests:
            request: Dict[str, Json] = {"op": "assign", "experiment": experiment, "unit": unit}
            if attributes:
                request["attributes"] = dict(attributes)
            lines.append(request)
        try:
            answers = self._exchange(lines, self.timeout)
            return [self._assignment(r[0], a) for r, a in zip(requests, answers)]
        except _Failure as failure:
            return [self._fall_back(r[0], failure.code) for r in requests]
        except Exception:  # noqa: BLE001
            return [self._fall_back(r[0], "client_error") for r in requests]

    def render(
        self,
        experiment: str,
        unit: str,
        variables: Optional[Mapping[str, Scalar]] = None,
        attributes: Optional[Mapping[str, Scalar]] = None,
    ) -> Rendering:
        """The prompt version ``unit`` gets in ``experiment``, rendered with ``variables`` by the daemon and checked
        by the version's guardrails, in one round trip; never raises (see :class:`Rendering` for refusals and the
        fallback)."""
        request: Dict[str, Json] = {"op": "render", "experiment": experiment, "unit": unit, "variables": dict(variables or {})}
        if attributes:
            request["attributes"] = dict(attributes)
        try:
            (answer,) = self._exchange([request], self.timeout)
        except _Failure as failure:
            return self.fallback.render(self._fall_back(experiment, failure.code), variables or {})
        except Exception:  # noqa: BLE001 - the contract: never raise into the request path
            return self.fallback.render(self._fall_back(experiment, "client_error"), variables or {})
        refused = _refusal(answer)
        if refused is not None:
            return refused
        assignment = self._assignment(experiment, answer)
        if assignment.reason in ("fallback", "no_config"):
            return self.fallback.render(assignment, variables or {})
        return _rendering(answer, assignment)

    def render_prompt(self, prompt: str, variables: Optional[Mapping[str, Scalar]] = None, version: Optional[int] = None) -> Rendering:
        """A prompt version (the latest without ``version``) rendered by the daemon, without an experiment; the
        fallback's copy rendered here when the daemon cannot answer. Never raises."""
        request: Dict[str, Json] = {"op": "render", "prompt": prompt, "variables": dict(variables or {})}
        if version is not None:
            request["version"] = version
        code = "client_error"
        try:
            (answer,) = self._exchange([request], self.timeout)
            refused = _refusal(answer)
            if refused is not None:
                return refused
            if answer.get("ok") is True:
                return _rendering(answer, None)
            code = _error_code(answer)
        except _Failure as failure:
            code = failure.code
        except Exception:  # noqa: BLE001
            pass
        with self._records_lock:
            self.fallbacks += 1
        return render_locally(self.fallback.prompt_version(prompt, version), variables or {}, None, code)

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
                assignment = experiment
                if assignment.reason in ("fallback", "no_config") or assignment.variant is None:
                    return False
                experiment, variant = assignment.experiment, assignment.variant
            entry: Dict[str, Json] = {"experiment": experiment}
            if variant is not None:
                entry["variant"] = variant
            if unit is not None:
                entry["unit"] = unit
                if attributes:
                    entry["attributes"] = dict(attributes)
            if shadow:
                entry["shadow"] = True
            metrics: Dict[str, Json] = {}
            for name, value in (("latency_ms", latency_ms), ("error", error), ("success", success), ("cost_usd", cost_usd), ("tokens", tokens)):
                if value is not None:
                    metrics[name] = value
            if custom:
                metrics["custom"] = dict(custom)
            entry["metrics"] = metrics
            encoded = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except Exception:  # noqa: BLE001 - an unencodable record is dropped, not raised
            with self._records_lock:
                self.dropped += 1
            return False
        with self._records_lock:
            if self._closed or len(self._records) >= self.record_buffer:
                self.dropped += 1
                return False
            self._records.append(encoded)
            return True

    @property
    def pending(self) -> int:
        """Records buffered or being sent."""
        with self._records_lock:
            return len(self._records) + self._sending

    def flush(self, timeout: float = 1.0) -> bool:
        """Waits up to ``timeout`` seconds until every buffered record was sent (or dropped); True if so."""
        deadline = time.monotonic() + timeout
        with self._records_lock:
            self._records_lock.notify_all()
            while self._records or self._sending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._records_lock.wait(remaining)
            return True

    def close(self, timeout: float = 1.0) -> None:
        """Sends what is buffered (waiting up to ``timeout``), stops the sender and closes the connections."""
        self.flush(timeout)
        with self._records_lock:
            self._closed = True
            self._records_lock.notify_all()
        self._sender.join(timeout)
        with self._lock:
            if self._line is not None:
                self._line.close()
                self._line = None

    def __enter__(self) -> "VariantClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- operator calls (these raise)

    def request(self, fields: Mapping[str, Json], timeout: Optional[float] = None) -> Dict[str, Json]:
        """Sends any request and returns the answer object; raises :class:`VariantdError` on an error answer
        or when the daemon cannot be reached."""
        try:
            (answer,) = self._exchange([dict(fields)], timeout or self.admin_timeout, respect_backoff=False)
        except _Failure as failure:
            raise VariantdError(failure.code, failure.message or f"cannot talk to {self.socket_path}") from None
        if answer.get("ok") is not True:
            error = answer.get("error") or {}
            raise VariantdError(str(error.get("code", "invalid_answer")), str(error.get("message", answer)))
        return answer

    def events(self, limit: Optional[int] = None) -> List[Dict[str, Json]]:
        """The daemon's latest events (guardrail and operator decisions, config applied/rejected), oldest first."""
        request: Dict[str, Json] = {"op": "events"}
        if limit is not None:
            request["limit"] = limit
        return list(self.request(request)["events"])

    def stats(self, experiment: str, minimum_detectable_effect: Optional[float] = None) -> Dict[str, Json]:
        """The experiment's statistics (PROTOCOL.md, ``stats``): per-variant summaries, each treatment against the
        control, the sample-ratio check, the sample size and a recommendation. Raises ``VariantdError``."""
        request: Dict[str, Json] = {"op": "stats", "experiment": experiment}
        if minimum_detectable_effect is not None:
            request["minimum_detectable_effect"] = minimum_detectable_effect
        return self.request(request)

    def health(self) -> Dict[str, Json]:
        return self.request({"op": "health"})

    def disable(self, experiment: str, variant: str, reason: Optional[str] = None) -> Dict[str, Json]:
        request: Dict[str, Json] = {"op": "disable", "experiment": experiment, "variant": variant}
        if reason is not None:
            request["reason"] = reason
        return self.request(request)

    def enable(self, experiment: str, variant: str) -> Dict[str, Json]:
        return self.request({"op": "enable", "experiment": experiment, "variant": variant})

    # ---------------------------------------------------------------- internals

    def _fall_back(self, experiment: str, code: str) -> Assignment:
        with self._records_lock:
            self.fallbacks += 1
        return self.fallback.assignment(experiment, "fallback", code)

    def _assignment(self, experiment: str, answer: Mapping[str, Json]) -> Assignment:
        if answer.get("ok") is not True:
            return self._fall_back(experiment, _error_code(answer))
        if answer.get("reason") == "no_config":
            # The daemon has no configuration: the client serves its own control, keeping the daemon's reason.
            fallback = self.fallback.assignment(experiment, "no_config")
            return fallback
        try:
            return Assignment(
                experiment=answer["experiment"],
                variant=answer["variant"],
                prompt=answer["prompt"],
                prompt_version=answer["prompt_version"],
                params=dict(answer.get("params") or {}),
                in_experiment=bool(answer["in_experiment"]),
                reason=answer["reason"],
                config_version=answer.get("config_version"),
                metadata=dict(answer.get("metadata") or {}),
                shadow=answer.get("shadow"),
            )
        except (KeyError, TypeError):
            return self._fall_back(experiment, "invalid_answer")

    def _cached_template(self, prompt: str, version: int, config_version: Optional[str]) -> Optional[PromptVersion]:
        key = (config_version or "", prompt, version)
        cached = self._templates.get(key)
        if cached is not None:
            return cached
        try:
            (answer,) = self._exchange([{"op": "prompt", "prompt": prompt, "version": version}], self.timeout)
        except Exception:  # noqa: BLE001
            return None
        if answer.get("ok") is not True:
            return None
        try:
            found = PromptVersion.from_answer(answer)
        except (KeyError, TypeError):
            return None
        if found.config_version == config_version:
            if len(self._templates) > 1024:
                self._templates.clear()
            self._templates[key] = found
        return found

    def _exchange(self, requests: Sequence[Dict[str, Json]], timeout: float, respect_backoff: bool = True) -> List[Dict[str, Json]]:
        """Writes the requests in one go and reads their answers in order, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if respect_backoff and time.monotonic() < self._down_until:
                raise _Failure("unreachable", "the daemon was unreachable moments ago")
            first = self._next_id
            self._next_id += len(requests)
            payload = b"".join(
                json.dumps({"id": first + i, **r}, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
                for i, r in enumerate(requests)
            )
            for attempt in (0, 1):
                fresh = self._line is None
                try:
                    if self._line is None:
                        self._line = _Line(self.socket_path, deadline)
                    self._line.send(payload, deadline)
                    answers = []
                    for i in range(len(requests)):
                        answers.append(self._read_answer(first + i, deadline))
                    return answers
                except _Failure as failure:
                    if self._line is not None:
                        self._line.close()
                        self._line = None
                    # A kept connection the daemon closed (restart, idle) is retried once on a new one.
                    if failure.code == "closed" and not fresh and attempt == 0 and time.monotonic() < deadline:
                        continue
                    if failure.code in ("unreachable", "timeout", "closed"):
                        self._down_until = time.monotonic() + self.retry_after
                    raise
            raise _Failure("closed", "the daemon closed the connection")

    def _read_answer(self, expected_id: int, deadline: float) -> Dict[str, Json]:
        assert self._line is not None
        while True:
            raw = self._line.receive(deadline)
            try:
                answer = json.loads(raw)
            except ValueError as error:
                raise _Failure("invalid_answer", f"not JSON: {raw[:200]!r}") from error
            if not isinstance(answer, dict):
                raise _Failure("invalid_answer", f"not an object: {raw[:200]!r}")
            if answer.get("id") == expected_id:
                return answer
            if answer.get("id") is None and answer.get("ok") is False:
                raise _Failure(_error_code(answer), str((answer.get("error") or {}).get("message", "")))
            # An answer to an earlier request: skip it.

    def _send_records(self) -> None:
        """The background sender: every ``flush_interval`` (or on ``flush``), sends what is buffered as
        ``batch`` lines with ``"ack": false`` and counts the entries the daemon reports as rejected."""
        line: Optional[_Line] = None
        batch_id = 0
        down_until = 0.0
        while True:
            sent_now = 0
            with self._records_lock:
                if not self._records and not self._closed:
                    self._records_lock.wait(self.flush_interval)
                if self._closed and not self._records:
                    break
                taken, self._records = self._records, []
                self._sending = len(taken)
            if not taken:
                # Idle: collect the rejections of batches sent earlier.
                if line is not None:
                    line, rejected = _drain_rejections(line)
                    with self._records_lock:
                        self.rejected += rejected
                with self._records_lock:
                    self._sending = 0
                continue
            try:
                if time.monotonic() < down_until:
                    raise _Failure("unreachable")
                if line is None:
                    line = _Line(self.socket_path, time.monotonic() + 0.5)
                sent_now = 0
                for payload, count in self._batch_lines(taken, batch_id):
                    batch_id += 1
                    line.send(payload, time.monotonic() + 1.0)
                    sent_now += count
                    with self._records_lock:
                        self.sent += count
                line, rejected = _drain_rejections(line)
                with self._records_lock:
                    self.rejected += rejected
            except Exception:  # noqa: BLE001 - the daemon is down or went away: drop and count
                if line is not None:
                    line.close()
                    line = None
                down_until = time.monotonic() + self.retry_after
                with self._records_lock:
                    self.dropped += len(taken) - sent_now
            finally:
                with self._records_lock:
                    self._sending = 0
                    self._records_lock.notify_all()
        if line is not None:
            _, rejected = _drain_rejections(line, wait=0.05)
            self.rejected += rejected
            line.close()

    def _batch_lines(self, records: List[str], first_id: int) -> List[Tuple[bytes, int]]:
        lines: List[Tuple[bytes, int]] = []
        current: List[str] = []
        size = 0
        overhead = 64
        for record in records:
            record_size = len(record.encode("utf-8")) + 1
            if current and (size + record_size + overhead > self.max_line_bytes or len(current) == 1000):
                lines.append((_batch_line(current, first_id + len(lines)), len(current)))
                current, size = [], 0
            current.append(record)
            size += record_size
        if current:
            lines.append((_batch_line(current, first_id + len(lines)), len(current)))
        return lines


def _batch_line(records: List[str], batch_id: int) -> bytes:
    return ('{"id":"records-%d","op":"batch","ack":false,"records":[' % batch_id + ",".join(records) + "]}\n").encode("utf-8")


def _drain_rejections(line: _Line, wait: float = 0.0) -> Tuple[Optional[_Line], int]:
    """Reads whatever answers arrived on the record connection (only rejections are answered) without waiting
    longer than ``wait``; returns the connection (None if the daemon closed it) and the rejected entries."""
    rejected = 0
    deadline = time.monotonic() + wait
    try:
        while True:
            if b"\n" not in line.buffer:
                line.sock.settimeout(max(deadline - time.monotonic(), 0.0) or 0.0)
                try:
                    chunk = line.sock.recv(65536)
                except (BlockingIOError, socket.timeout):
                    return line, rejected
                if not chunk:
                    line.close()
                    return None, rejected
                line.buffer += chunk
                continue
            raw, line.buffer = line.buffer.split(b"\n", 1)
            try:
                answer = json.loads(raw)
                rejected += len(answer.get("rejected") or []) if answer.get("ok") else 0
            except ValueError:
                pass
    except OSError:
        line.close()
        return None, rejected


def _error_code(answer: Mapping[str, Json]) -> str:
    error = answer.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        return str(error["code"])
    return "invalid_answer"


# --------------------------------------------------------------------------------------------------
# Local assignment (PROTOCOL.md section 2), for offline checks
# --------------------------------------------------------------------------------------------------

BUCKETS = 10_000


def bucket(salt: str, label: str, unit: str) -> int:
    """``first 8 bytes of SHA-256(UTF-8(salt) || 0x00 || ASCII(label) || 0x00 || UTF-8(unit))`` (big-endian)
    mod 10000."""
    message = salt.encode("utf-8") + b"\x00" + label.encode("ascii") + b"\x00" + unit.encode("utf-8")
    return int.from_bytes(hashlib.sha256(message).digest()[:8], "big") % BUCKETS


def basis_points(percent: Union[int, float]) -> int:
    """``round(percent * 100)``, exact for the at most two decimals a document allows."""
    return int((Decimal(repr(percent)) if isinstance(percent, float) else Decimal(percent)) * 100)


def variant_index(variant_bucket: int, weights: Sequence[Union[int, float]]) -> int:
    running = 0
    for index, weight in enumerate(weights):
        running += basis_points(weight)
        if running > variant_bucket:
            return index
    raise ValueError("the weights do not cover the bucket")


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))", re.ASCII)


def _instant(value: Union[str, datetime, float, int]) -> Fraction:
    """Seconds since the epoch, exactly, from an RFC 3339 string, an aware datetime or a POSIX time."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no time zone")
        delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return Fraction(delta.days * 86_400 + delta.seconds) + Fraction(delta.microseconds, 1_000_000)
    if isinstance(value, (int, float)):
        return Fraction(value)
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, zulu, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10, 11)
    seconds = _instant(datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc))
    if fraction:
        seconds += Fraction(int(fraction), 10 ** len(fraction))
    if not zulu:
        offset = int(offset_hours) * 3600 + int(offset_minutes) * 60
        seconds -= offset if sign == "+" else -offset
    return seconds


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_equal(a: Json, b: Json) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return isinstance(a, str) and isinstance(b, str) and a == b


def _rule_matches(rule: Mapping[str, Json], attributes: Mapping[str, Scalar]) -> bool:
    if rule["attribute"] not in attributes:
        return False  # a missing attribute matches no rule, not even ne / not_in
    actual, op = attributes[rule["attribute"]], rule["op"]
    if op == "eq":
        return _json_equal(actual, rule["value"])
    if op == "ne":
        return not _json_equal(actual, rule["value"])
    if op == "in":
        return any(_json_equal(actual, v) for v in rule["values"])
    if op == "not_in":
        return not any(_json_equal(actual, v) for v in rule["values"])
    if not _is_number(actual):
        return False
    expected = rule["value"]
    return {"lt": actual < expected, "lte": actual <= expected, "gt": actual > expected, "gte": actual >= expected}[op]


def assign_locally(
    config: Mapping[str, Json],
    experiment: str,
    unit: str,
    attributes: Optional[Mapping[str, Scalar]] = None,
    now: Union[str, datetime, float, int, None] = None,
) -> Assignment:
    """The daemon's decision (PROTOCOL.md section 2) computed here, for offline checks and tests.

    ``config`` is a (valid) configuration document; ``now`` defaults to the current time. Disabled treatments
    are daemon state, so they are not known here (reason ``disabled`` never comes out). Raises KeyError for an
    unknown experiment and ValueError for an invalid unit.
    """
    encoded = unit.encode("utf-8")
    if not 1 <= len(encoded) <= 1024 or "\x00" in unit:
        raise ValueError("a unit is 1-1024 bytes of UTF-8 without NUL")
    found = next((e for e in config["experiments"] if e["name"] == experiment), None)
    if found is None:
        raise KeyError(experiment)
    attributes = attributes or {}
    instant = _instant(now if now is not None else datetime.now(timezone.utc))
    variants = found["variants"]
    control = next(i for i, v in enumerate(variants) if v.get("control") is True)
    index, in_experiment, reason, shadow_index = control, False, "assigned", None
    status = found["status"]
    if status in ("draft", "paused"):
        reason = status
    elif status == "completed":
        index = next(i for i, v in enumerate(variants) if v["name"] == found["winner"])
        reason = "completed"
    elif "start" in found and instant < _instant(found["start"]):
        reason = "not_started"
    elif "end" in found and instant >= _instant(found["end"]):
        reason = "ended"
    elif not all(_rule_matches(rule, attributes) for rule in found.get("targeting", [])):
        reason = "not_targeted"
    elif not bucket(found["salt"], "exposure", unit) < basis_points(found.get("exposure", 100)):
        reason = "not_exposed"
    else:
        hashed = variant_index(bucket(found["salt"], "variant", unit), [v["weight"] for v in variants])
        in_experiment = True
        if found.get("mode") == "shadow":
            reason, shadow_index = "shadow", (None if hashed == control else hashed)
        else:
            index = hashed
    variant = variants[index]
    shadow = None
    if shadow_index is not None:
        s = variants[shadow_index]
        shadow = {"variant": s["name"], "prompt": s["prompt"], "prompt_version": s["prompt_version"], "params": dict(s.get("params") or {})}
    return Assignment(
        experiment=experiment,
        variant=variant["name"],
        prompt=variant["prompt"],
        prompt_version=variant["prompt_version"],
        params=dict(variant.get("params") or {}),
        in_experiment=in_experiment,
        reason=reason,
        config_version=None,
        metadata={"experiment": experiment, "variant": variant["name"], "prompt": variant["prompt"], "prompt_version": variant["prompt_version"], "config_version": None},
        shadow=shadow,
    )


_REFUSALS = ("guardrail_blocked", "missing_variable", "invalid_variables")


def _refusal(answer: Mapping[str, Json]) -> Optional[Rendering]:
    """The daemon's refusal to render, which the fallback must not paper over; None for any other answer."""
    if answer.get("ok") is True or _error_code(answer) not in _REFUSALS:
        return None
    error = answer.get("error") or {}
    return Rendering(None, None, None, None, error=_error_code(answer), message=str(error.get("message", "")))


def _rendering(answer: Mapping[str, Json], assignment: Optional[Assignment]) -> Rendering:
    try:
        kind = answer["type"]
        return Rendering(
            assignment=assignment,
            prompt=answer["prompt"],
            prompt_version=answer["prompt_version"],
            type=kind,
            text=answer["text"] if kind == "text" else None,
            messages=[dict(m) for m in answer["messages"]] if kind == "chat" else None,
            warnings=list(answer.get("warnings") or []),
        )
    except (KeyError, TypeError, ValueError):
        return Rendering(assignment, None, None, None, error="invalid_answer", message="a render answer without its rendering")


def render_locally(
    version: Optional[PromptVersion], variables: Mapping[str, Scalar], assignment: Optional[Assignment], error: Optional[str]
) -> Rendering:
    """Renders a (fallback) prompt version here, with the daemon's template rules and its variable checks:
    ``missing_variable`` if a required one is not given. ``type`` is None when there is no version to render."""
    if version is None or (version.template is None and version.messages is None):
        return Rendering(assignment, None, None, None, error=error, message="no fallback template for this prompt version")
    missing = [name for name in (version.variables or {}).get("required", []) if name not in variables]
    if missing:
        return Rendering(assignment, version.prompt, version.version, None, error="missing_variable", message=f"missing required variables {missing}")
    try:
        if version.messages is not None:
            messages = [{"role": m["role"], "content": render_template(m["content"], variables)} for m in version.messages]
            return Rendering(assignment, version.prompt, version.version, "chat", messages=messages, error=error)
        return Rendering(assignment, version.prompt, version.version, "text", text=render_template(version.template or "", variables), error=error)
    except (TemplateError, TypeError, KeyError) as problem:
        return Rendering(assignment, version.prompt, version.version, None, error="invalid_variables" if isinstance(problem, TypeError) else "invalid_template", message=str(problem))


# --------------------------------------------------------------------------------------------------
# Templates: the daemon's Mustache subset (PROTOCOL.md, "Templates"), for rendering the fallback's control
# --------------------------------------------------------------------------------------------------

_TAG = re.compile(r"\{\{(\{?)(.*?)(\}?)\}\}", re.S)
_STANDALONE_KINDS = ("#", "^", "/", "!")
_MAX_SAFE_INTEGER = 9_007_199_254_740_992


class TemplateError(ValueError):
    """A template outside the daemon's Mustache subset, or one that does not parse."""


def template_value_text(value: Scalar) -> str:
    """How a variable's value renders: a string as is, a boolean as ``true``/``false``, a number as its JSON
    text in shortest form (``3``, ``2.5``, ``1e+100``), as the daemon writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) < _MAX_SAFE_INTEGER:
            return str(value)
        value = float(value)
    if isinstance(value, float):
        if value == int(value) and abs(value) < _MAX_SAFE_INTEGER:
            return str(int(value))
        text = repr(value)
        if "e" not in text and abs(value) >= _MAX_SAFE_INTEGER:
            # Swift writes large whole numbers with an exponent where Python does not: 9.007199254740992e+15.
            mantissa, exponent = f"{value:.17e}".split("e")
            digits = repr(float(mantissa)).rstrip("0").rstrip(".")
            text = f"{digits}e+{int(exponent):02d}"
        return text
    raise TypeError(f"a template variable is a string, a number or a boolean, not {type(value).__name__}")


def _template_tokens(template: str) -> List[Tuple[str, str]]:
    """The template as ``(kind, text)`` tokens: ``text``, ``var``, ``#``, ``^``, ``/``; comments and standalone
    lines (a section or comment tag alone on its line) removed as Mustache specifies."""
    tags = []
    for match in _TAG.finditer(template):
        triple_open, body, triple_close = match.group(1), match.group(2), match.group(3)
        if triple_open and not triple_close:
            raise TemplateError(f"unclosed triple mustache at offset {match.start()}")
        body = body.strip()
        kind = "var"
        if not triple_open and body[:1] in ("#", "^", "/", "!", "&", ">", "<", "$", "=", "%"):
            kind, body = body[0], body[1:].strip()
        if kind in (">", "<", "$", "=", "%"):
            raise TemplateError(f"'{{{{{kind}' tags are outside variantd's template subset")
        if kind == "&":
            kind = "var"
        if kind != "!" and (not body or (body != "." and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", body))):
            raise TemplateError(f"'{body}' is not a variable name")
        start, end = match.start(), match.end()
        if kind in _STANDALONE_KINDS:
            line_start = template.rfind("\n", 0, start) + 1
            newline = template.find("\n", end)
            line_end = len(template) if newline < 0 else newline
            before, after = template[line_start:start], template[end:line_end]
            if before.strip(" \t") == "" and after.strip(" \t\r") == "" and not _TAG.search(before + after):
                start, end = line_start, (line_end if newline < 0 else newline + 1)
        tags.append((start, end, kind, body))
    tokens: List[Tuple[str, str]] = []
    position = 0
    for start, end, kind, body in tags:
        if start > position:
            tokens.append(("text", template[position:start]))
        if kind != "!":
            tokens.append((kind, body))
        position = max(position, end)
    if position < len(template):
        tokens.append(("text", template[position:]))
    return tokens


def render_template(template: str, variables: Mapping[str, Scalar]) -> str:
    """Renders a template as the daemon does (PROTOCOL.md, "Templates"): ``{{name}}`` (and ``{{{name}}}``,
    ``{{& name}}``) is the value, never escaped, and nothing when not given; ``{{#name}}..{{/name}}`` renders its
    inside when the variable is given and is not ``false`` (``{{.}}`` is its value there); ``{{^name}}..{{/name}}``
    when it is not given or ``false``. Raises :class:`TemplateError` outside that subset."""
    tokens = _template_tokens(template)
    output: List[str] = []
    # Each open section: its name, its value, and whether its inside renders.
    stack: List[Tuple[str, Optional[Scalar], bool]] = []
    for kind, body in tokens:
        rendering = all(active for _, _, active in stack)
        if kind in ("#", "^"):
            value = variables.get(body)
            given = body in variables and value is not False
            stack.append((body, value, rendering and (given if kind == "#" else not given)))
        elif kind == "/":
            if not stack or stack[-1][0] != body:
                raise TemplateError(f"'{{{{/{body}}}}}' closes no open section of that name")
            stack.pop()
        elif not rendering:
            continue
        elif kind == "text":
            output.append(body)
        elif body == ".":
            current = stack[-1][1] if stack else None
            output.append("" if current is None else template_value_text(current))
        elif body in variables:
            output.append(template_value_text(variables[body]))
    if stack:
        raise TemplateError(f"section '{stack[-1][0]}' is not closed")
    return "".join(output)
