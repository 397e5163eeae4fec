"""The daemon's template rules (PROTOCOL.md, "Templates"), for rendering the fallback's control in the client:
the Mustache subset the daemon accepts, values written as the daemon writes them, and the version's variable
checks."""

from __future__ import annotations

import re
from typing import List, Mapping, Optional, Tuple

from .answers import Assignment, PromptVersion, Rendering, Scalar

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
