"""The caller's own knowledge of each experiment's control, served when the daemon cannot answer."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

from .answers import Assignment, Json, PromptVersion, Rendering, Scalar
from .logs import logger
from .rendering import render_locally


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

    Raises OSError for a file that cannot be read, ValueError for one that is not JSON or for unknown fields (a
    typo), TypeError or LookupError for another shape. A client given a file never raises (``client_fallback``).
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
            enrolled=False,
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


def client_fallback(source: Union[None, "Fallback", str, os.PathLike, Mapping[str, Json]]) -> Fallback:
    """The fallback a client serves. A file that cannot be loaded (missing, unreadable, not JSON, not a fallback)
    does not stop the service from starting: it is logged, with what to do, and the client serves the bare control
    (``variant`` ``"control"``, no prompt) until it is restarted with a readable file. A mapping given in code is
    checked as :class:`Fallback` checks it (a typo raises: it is a bug in the caller's code, found at start-up)."""
    if isinstance(source, Fallback):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return Fallback(source)
    try:
        return Fallback(source)
    except (OSError, ValueError, TypeError, LookupError) as problem:
        logger.error(
            "variantd_client: the fallback file %s cannot be loaded (%s); when the daemon cannot answer, every "
            "experiment gets the bare control (variant 'control', no prompt, no template). Give `fallback=` a readable "
            "JSON file (an experiments mapping or a variantd configuration document) and restart.",
            os.fspath(source), problem, extra={"variantd_event": "client.fallback_unreadable", "variantd_cause": type(problem).__name__},
        )
        return Fallback()
