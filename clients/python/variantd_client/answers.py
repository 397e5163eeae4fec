"""What the shims hand back: an assignment, a prompt version, a rendering, and the error the operator calls raise;
plus the trace fields an assignment gives (Langfuse metadata, OpenTelemetry attributes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

Scalar = Union[str, int, float, bool]
Json = Any


class VariantdError(Exception):
    """An error answer from the daemon (``code`` is one of PROTOCOL.md section 4) or a transport failure.

    Raised only by the operator-facing calls (``events``, ``disable``, ``enable``, ``reload``, ``request``),
    never by ``assign``, ``prompt``, ``template``, ``render`` or ``record``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Assignment:
    """Which variant and prompt version a unit gets, as the daemon (or the fallback) decided.

    ``reason`` is the daemon's (``assigned``, ``outside_exposure``, ``disabled``, ``shadow``, ``no_config``, ...) or
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
    enrolled: bool
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
            version=answer["prompt_version"],
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
    ``rule_blocked``, ``missing_variable`` or ``invalid_variables`` (``message`` explains): those are never
    replaced by the fallback, since serving the control instead would hide the problem or go around a prompt rule.
    When the daemon cannot answer, the fallback's control version is rendered here with the daemon's template rules
    (``assignment.reason == "fallback"``, ``error`` says why), or, if the fallback has no template for it,
    ``type`` is None and the service uses its own default text. ``warnings`` are the daemon's
    (``extra_variable``, ``rule_warning``).
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
    ``reason`` and ``enrolled``, so traces can be filtered by experiment, variant, prompt version and by
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
    fields["enrolled"] = assignment.enrolled
    if assignment.shadow is not None:
        fields["shadow_variant"] = assignment.shadow.get("variant")
    return fields


def trace_attributes(assignment: Assignment, prefix: str = "variantd.") -> Dict[str, Union[str, int, bool]]:
    """The same fields as OpenTelemetry span attributes: keys prefixed ``variantd.``, None values left out
    (OpenTelemetry attributes cannot be null)."""
    return {prefix + key: value for key, value in metadata(assignment).items() if value is not None}
