"""The wire without I/O (PROTOCOL.md section 3): request lines, answer ids, and what each answer means.

Both clients use these: a request is encoded once as its *body* (the object's members after ``id``, its closing
brace and the newline), the transport puts ``{"id":N,`` in front (:func:`line`), the prefix its answer starts with;
an answer is handed over as the raw line and decoded here.
"""

from __future__ import annotations

import json
from json.decoder import scanstring
from json.encoder import encode_basestring
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .answers import Assignment, Json, PromptVersion, Rendering, Scalar

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode = _ENCODER.encode
_decode = json.JSONDecoder().decode


class Failure(Exception):
    """A transport failure or an error answer, turned into a fallback by the request path.

    ``code`` is ``unreachable``, ``timeout``, ``closed``, ``invalid_answer``, ``client_error`` or the daemon's error
    code; ``message`` says more, for the log.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------- requests


def encode_object(values: Mapping[str, Json]) -> str:
    """A JSON object: written directly when every value is a string (attributes and variables mostly are: the
    general encoder costs twice as much), else by the encoder."""
    members = []
    for name, value in values.items():
        if value.__class__ is not str or name.__class__ is not str:
            return _encode(dict(values))
        members.append(encode_basestring(name) + ":" + encode_basestring(value))
    return "{" + ",".join(members) + "}"


def request_body(fields: Mapping[str, Json]) -> bytes:
    """Any request's body: ``"op":...}`` and the newline (the line is ``{"id":N,`` + body; :func:`line`)."""
    encoded = _encode(dict(fields))
    return encoded[1:].encode("utf-8") + b"\n" if len(encoded) > 2 else NO_MEMBERS


_HEADS_KEPT = 256
"""How many experiments' request heads each table keeps (a service asks about a handful)."""
_assign_heads: Dict[str, bytes] = {}
_render_heads: Dict[str, bytes] = {}


def _head(heads: Dict[str, bytes], op: str, experiment: str) -> bytes:
    """``"op":OP,"experiment":...,"unit":`` for ``experiment``, made once and kept in ``heads``."""
    head = ('"op":"%s","experiment":%s,"unit":' % (op, encode_basestring(experiment))).encode("utf-8")
    if len(heads) >= _HEADS_KEPT:
        heads.clear()
    heads[experiment] = head
    return head


def assign_body(experiment: str, unit: str, attributes: Optional[Mapping[str, Scalar]]) -> bytes:
    """The body of an ``assign`` request: the experiment's part made once (the hot path: a general encoder costs a
    good part of what the client may take), the unit (and attributes) written here."""
    head = _assign_heads.get(experiment) or _head(_assign_heads, "assign", experiment)
    if attributes:
        return head + (encode_basestring(unit) + ',"attributes":' + encode_object(attributes) + "}\n").encode("utf-8")
    return head + encode_basestring(unit).encode("utf-8") + b"}\n"


_VARIABLES_KEPT = 256
_variables_members: Dict[Tuple[Tuple[str, str], ...], bytes] = {}


def variables_member(variables: Optional[Mapping[str, Scalar]], key: Optional[Tuple[Tuple[str, str], ...]] = None) -> bytes:
    """``,"variables":{...}}`` and the newline, the end of a ``render`` request (``key``: the variables' items, when
    the caller made them). The encoding of string-only variables is kept by their items in order (a service renders
    the same variables again and again): a string equals only a string, so items equal to kept ones are string-only
    too and encode the same (``1``, ``1.0`` and ``True`` equal each other, not a string). Others are encoded every
    time."""
    if not variables:
        return b',"variables":{}}\n'
    if key is None:
        try:
            key = tuple(variables.items())
            kept = _variables_members.get(key)
        except TypeError:  # a value that cannot be hashed; the encoder decides what to make of it
            return (',"variables":' + encode_object(variables) + "}\n").encode("utf-8")
        if kept is not None:
            return kept
    members = []
    for name, value in key:
        if value.__class__ is not str or name.__class__ is not str:
            return (',"variables":' + _encode(dict(variables)) + "}\n").encode("utf-8")
        members.append(encode_basestring(name) + ":" + encode_basestring(value))
    kept = (',"variables":{' + ",".join(members) + "}}\n").encode("utf-8")
    if len(_variables_members) >= _VARIABLES_KEPT:
        _variables_members.clear()
    _variables_members[key] = kept
    return kept


def render_request(
    experiment: str, unit: str, variables: Optional[Mapping[str, Scalar]], attributes: Optional[Mapping[str, Scalar]]
) -> Tuple[bytes, bool]:
    """The body of a ``render`` request with an experiment, and whether its variables are ones sent before (kept
    by :func:`variables_member`, or none): only then may its answer be one seen before, worth looking up and
    keeping (:meth:`AssignAnswers.rendering`). A service whose every render names its user sends new variables
    each time, and the answers to those are new too."""
    head = _render_heads.get(experiment) or _head(_render_heads, "render", experiment)
    try:
        key = tuple(variables.items()) if variables else None
        tail = _variables_members.get(key)
    except (TypeError, AttributeError):  # not a mapping, or a value that cannot be hashed: encoded (or refused) there
        key = tail = None
    repeated = tail is not None or not variables
    if tail is None:
        tail = variables_member(variables, key)
    if attributes:
        return head + (encode_basestring(unit) + ',"attributes":' + encode_object(attributes)).encode("utf-8") + tail, repeated
    return head + encode_basestring(unit).encode("utf-8") + tail, repeated


def request_bodies(requests: Sequence[Mapping[str, Json]]) -> List[bytes]:
    return [request_body(fields) for fields in requests]


def assign_bodies(requests: Sequence[Tuple[str, str, Optional[Mapping[str, Scalar]]]]) -> List[bytes]:
    """The bodies of pipelined ``assign`` requests, ``(experiment, unit, attributes)`` each."""
    return [assign_body(experiment, unit, attributes) for experiment, unit, attributes in requests]


def version_body(prompt: str, version: Optional[int]) -> bytes:
    """The body of a ``prompt`` request for a version (the latest without one)."""
    return request_body({"op": "prompt", "prompt": prompt} if version is None else {"op": "prompt", "prompt": prompt, "prompt_version": version})


def render_prompt_body(prompt: str, variables: Optional[Mapping[str, Scalar]], version: Optional[int]) -> bytes:
    """The body of a ``render`` request without an experiment."""
    request: Dict[str, Json] = {"op": "render", "prompt": prompt, "variables": dict(variables or {})}
    if version is not None:
        request["prompt_version"] = version
    return request_body(request)


NO_MEMBERS = b"}\n"
"""The body of a request without members (no request the shims make; ``request({})``): its line is ``{"id":N}``."""


def line(request_id: int, body: bytes) -> bytes:
    """A request's line: ``{"id":N,`` and its body."""
    return b'{"id":%d,%s' % (request_id, body) if body is not NO_MEMBERS else b'{"id":%d}\n' % request_id


# ---------------------------------------------------------------------------------------------- answers


def answer_id(raw: bytes) -> Optional[int]:
    """The integer id an answer line starts with (the daemon writes ``id`` first and echoes ours, which are
    integers); None for ``"id":null`` (a line the daemon could not read) or anything else."""
    if raw.startswith(b'{"id":'):
        end = raw.find(b",", 6)
        digits = raw[6:end]
        if digits.isdigit():
            return int(digits)
    return None


def decode(raw: bytes) -> Dict[str, Json]:
    """An answer line as an object; a line that is not a JSON object is ``invalid_answer``."""
    try:
        answer = _decode(raw.decode("utf-8"))
    except ValueError as error:
        raise Failure("invalid_answer", f"not JSON: {raw[:200]!r}") from error
    if not isinstance(answer, dict):
        raise Failure("invalid_answer", f"not an object: {raw[:200]!r}")
    return answer


def error_code(answer: Mapping[str, Json]) -> str:
    error = answer.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        return str(error["code"])
    return "invalid_answer"


def error_message(answer: Mapping[str, Json]) -> str:
    error = answer.get("error")
    return str(error.get("message", "")) if isinstance(error, Mapping) else str(answer)[:200]


def ok_answer(raw: bytes) -> Dict[str, Json]:
    """An answer that must be ``ok``; an error answer is a :class:`Failure` with its code."""
    answer = decode(raw)
    if answer.get("ok") is not True:
        raise Failure(error_code(answer), error_message(answer))
    return answer


_ASSIGNMENT_FIELDS = ("experiment", "variant", "prompt", "prompt_version", "enrolled", "reason")


def assignment_fields(answer: Mapping[str, Json]) -> Dict[str, Json]:
    """An ``ok`` assign (or render) answer's :class:`Assignment` fields, all of them; ``invalid_answer`` if it
    lacks one."""
    try:
        fields = {name: answer[name] for name in _ASSIGNMENT_FIELDS}
        fields["enrolled"] = bool(fields["enrolled"])
        fields["params"] = dict(answer.get("params") or {})
        fields["config_version"] = answer.get("config_version")
        fields["metadata"] = dict(answer.get("metadata") or {})
        fields["shadow"] = answer.get("shadow")
    except (KeyError, TypeError, ValueError) as error:
        raise Failure("invalid_answer", f"an assign answer without {error}") from None
    fields.update(_ASSIGNMENT_DEFAULTS)
    return fields


_ASSIGNMENT_DEFAULTS = {"template": None, "variables": None, "error": None, "messages": None}


def new_assignment(fields: Mapping[str, Json]) -> Assignment:
    """An :class:`Assignment` from all its fields, with its own ``params``, ``metadata`` and ``shadow``, so a caller
    that changes them changes no other answer.

    Results are built by filling the frozen dataclass's ``__dict__`` in place instead of calling ``__init__``, which
    sets each field through ``object.__setattr__``: that was a fifth of the client's own time per assign, and a
    quarter per render (and it costs less than a copy of the fields given as the ``__dict__``: ``object.__setattr__``
    is a slot wrapper, with an argument tuple per call). Every field is set (``tests/test_protocol.py`` pins that this gives what ``__init__``
    gives); :func:`with_template` and :func:`new_rendering` build theirs the same way."""
    instance = _new(Assignment)
    values = instance.__dict__
    values.update(fields)
    # copy(), not dict(): the same plain dictionary (assignment_fields made these) without a type call, 400 fewer.
    values["params"] = fields["params"].copy()
    values["metadata"] = fields["metadata"].copy()
    shadow = fields["shadow"]
    if shadow is not None:
        values["shadow"] = {**shadow, "params": dict(shadow.get("params") or {})}
    return instance


_new = object.__new__
_copy_dict = dict.copy


def with_template(assignment: Assignment, version: PromptVersion) -> Assignment:
    """``assignment`` with ``version``'s template, variables and messages (what ``prompt`` adds to ``assign``), when
    the template was just asked for. The assignment is the call's own, made for it and given to no one else, so its
    dictionaries are not copied again."""
    instance = object.__new__(Assignment)
    values = instance.__dict__
    values.update(assignment.__dict__)
    values["template"] = version.template
    values["variables"] = version.variables
    values["messages"] = version.messages
    return instance


_TEXT_RENDERING = b',"type":"text","text":"'

KEPT_RENDERING_BYTES = 4096
"""The longest render answer whose decoding is kept: with the table's 256 entries, about 2 MiB at most (each
answer's bytes and its text)."""


class _Assigned:
    """What one distinct assign answer decodes to: its assignment's fields, and the fields of the assignment
    ``prompt`` makes of it (with its prompt version's template) once the template is known."""

    __slots__ = ("fields", "prompted")

    def __init__(self, fields: Dict[str, Json]) -> None:
        self.fields = fields
        self.prompted: Optional[Dict[str, Json]] = None


class AssignAnswers:
    """The decoder of ``assign`` answers, and of ``render`` answers with an experiment (the assign answer followed
    by the rendering).

    An assign answer's bytes after its id decide the assignment (the unit is not in it), so what each distinct
    answer decodes to is kept: a service sees a handful (one per variant and reason and config version), and a
    known answer costs a dictionary lookup instead of a JSON parse; ``prompt`` keeps the assignment with its
    template there too. A render answer's bytes after its id decide its rendering as well: those of a service
    that renders the same variables repeat, and are kept likewise (up to :data:`KEPT_RENDERING_BYTES` each);
    others are read with json's own string scanner, their assignment part from the table of assign answers (see
    :meth:`rendering`). What is kept came through the same checks, so every way gives the same answer. Safe to
    share between threads: a lookup that races the clearing of a full table only decodes again."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self.known: Dict[bytes, _Assigned] = {}
        """What each assign answer decodes to, by its :meth:`key`."""
        self.known_renderings: Dict[bytes, Tuple[Dict[str, Json], Dict[str, Json]]] = {}
        self.known_warnings: Dict[str, List[Dict[str, Json]]] = {}

    @staticmethod
    def key(raw: bytes) -> bytes:
        """What an answer line is kept by: its bytes after the first comma, the one that ends ``{"id":N,`` (the id
        is the request's own; the rest is what the daemon decided). ``partition`` finds it and copies the rest in
        one call, a third less than a ``find`` and a slice; the hot paths write it out."""
        return raw.partition(b",")[2]

    def fields(self, raw: bytes) -> Dict[str, Json]:
        """The assignment fields of an ``ok`` answer; a :class:`Failure` with the daemon's code for an error."""
        assigned = self.known.get(raw.partition(b",")[2])  # :meth:`key`; :meth:`_assigned`'s lookup, without its call when known
        if assigned is None:
            assigned = self._assigned(raw, len(raw))
        return assigned.fields

    def prompted(self, raw: bytes, template_of: Callable[[Dict[str, Json]], Optional[PromptVersion]]) -> Optional[Dict[str, Json]]:
        """The fields of the assignment ``prompt`` makes of an ``ok`` assign answer: its fields with the template,
        variables and messages of ``template_of(fields)``, kept with the answer; None when that is None (no
        template to fill in, or not known yet). A :class:`Failure` as :meth:`fields`."""
        assigned = self.known.get(raw.partition(b",")[2])  # :meth:`key`, as in :meth:`fields`
        if assigned is None:
            assigned = self._assigned(raw, len(raw))
        prompted = assigned.prompted
        if prompted is None:
            version = template_of(assigned.fields)
            if version is None:
                return None
            prompted = {**assigned.fields, "template": version.template, "variables": version.variables, "messages": version.messages}
            assigned.prompted = prompted
        return prompted

    def _assigned(self, raw: bytes, end: int) -> _Assigned:
        """What the assign answer that is ``raw`` up to ``end`` decodes to (all of an ``assign`` answer, or the part
        before the rendering of a ``render`` answer, closed with a brace when it is parsed)."""
        key = raw[raw.find(b",") + 1 : end]  # :meth:`key` of the assign answer that ends there
        assigned = self.known.get(key)
        if assigned is None:
            assigned = _Assigned(assignment_fields(ok_answer(raw if end == len(raw) else raw[:end] + b"}")))
            if len(self.known) >= self.limit:
                self.known.clear()
            self.known[key] = assigned
        return assigned

    def rendering(self, raw: bytes, key: Optional[bytes] = None, keep: bool = True) -> Tuple[Dict[str, Json], Optional[Dict[str, Json]]]:
        """A render answer with an experiment: its assignment fields, and its :class:`Rendering` fields other than
        ``assignment`` (None when an ``ok`` answer has no rendering), both possibly kept here, so not to be changed
        (:func:`new_rendering` gives a rendering its own warnings); a :class:`Failure` with the daemon's code for an
        error answer (a refusal among them), ``invalid_answer`` for one that is not JSON.

        A text rendering is kept by its bytes after the id, or else read quickly (:meth:`_text_answer`); any other
        answer is decoded (:meth:`_decoded_rendering`). ``key``: ``raw``'s :meth:`key`, when the caller has made it
        (and not found it in :attr:`known_renderings`). Without ``keep`` (the answer to variables not sent before,
        :func:`render_request`) it is read without being looked up or kept: its hash and its place in the table
        would be spent on an answer that does not come again."""
        kept = None
        if keep and key is None:
            key = raw.partition(b",")[2]  # :meth:`key`
            kept = self.known_renderings.get(key)
        if kept is None:
            kept = self._text_answer(raw)
            if kept is None:
                return self._decoded_rendering(raw)
            if keep and len(key) <= KEPT_RENDERING_BYTES:  # type: ignore[arg-type]
                if len(self.known_renderings) >= self.limit:
                    self.known_renderings.clear()
                self.known_renderings[key] = kept  # type: ignore[index]
        return kept

    def _text_answer(self, raw: bytes) -> Optional[Tuple[Dict[str, Json], Dict[str, Json]]]:
        """An ``ok`` render answer with a text rendering, ``"type":"text","text":...,"warnings":[...]`` to its last
        byte, read without the JSON decoder: its assignment fields and its rendering's (the warnings those of the
        table, not to be changed); None for any other answer.

        ``,"type":"`` last in the line stands where the rendering starts (no later member has that key, and inside
        a string a quote is escaped), so the part before it, closed, is the assign answer, whose fields come from
        the table; the text is read with ``scanstring``, the scanner ``json`` reads strings with, and the warnings
        from a table of their own (a handful of distinct ones: the variables a version does not declare, the warn
        rules that fire)."""
        start = raw.rfind(b',"type":"')
        if start <= 0 or not raw.startswith(_TEXT_RENDERING, start) or not raw.startswith(b'{"id":'):
            return None
        try:
            fields = self._assigned(raw, start).fields
            rest = raw[start + len(_TEXT_RENDERING) :].decode("utf-8")
            text, end = scanstring(rest, 0, True)
        except (Failure, ValueError):  # an error answer, or a text not UTF-8 or not a JSON string
            return None
        warnings = self._warnings(rest[end:])
        if warnings is None:
            return None
        return fields, {"prompt": fields["prompt"], "prompt_version": fields["prompt_version"], "type": "text", "text": text,
                        "messages": None, "warnings": warnings, "error": None, "message": None}

    def _warnings(self, members: str) -> Optional[List[Dict[str, Json]]]:
        """A rendering's warnings from ``members``, ``,"warnings":[...]}``, as kept in the table (not to be changed);
        None if ``members`` is not that, or the array not one of objects."""
        if members == ',"warnings":[]}':
            return _NO_WARNINGS
        known = self.known_warnings.get(members)  # what is kept passed the checks below
        if known is None:
            if not (members.startswith(',"warnings":[') and members.endswith("]}")):
                return None
            try:
                known = _decode(members[12:-1])
            except ValueError:
                return None
            if not all(warning.__class__ is dict for warning in known):
                return None
            if len(self.known_warnings) >= self.limit:
                self.known_warnings.clear()
            self.known_warnings[members] = known
        return known

    def _decoded_rendering(self, raw: bytes) -> Tuple[Dict[str, Json], Optional[Dict[str, Json]]]:
        """A render answer the quick reading does not take (a chat rendering, an error, anything unexpected),
        decoded: the rendering alone when the part before it is a known assign answer, else the whole line, so that
        an error answer's own code (or the line's problem) is the one reported."""
        start = raw.rfind(b',"type":"')
        if start > 0 and raw.startswith(b'{"id":'):
            try:
                fields = self._assigned(raw, start).fields
                return fields, rendering_values(decode(b"{" + raw[start + 1 :]), fields)
            except Failure:
                pass
        answer = ok_answer(raw)
        fields = assignment_fields(answer)
        return fields, rendering_values(answer, fields)


_NO_WARNINGS: List[Dict[str, Json]] = []


def refusal(answer: Mapping[str, Json]) -> Optional[Rendering]:
    """The daemon's refusal to render, which the fallback must not paper over; None for any other answer."""
    if answer.get("ok") is True or error_code(answer) not in REFUSALS:
        return None
    return refused(error_code(answer), error_message(answer))


REFUSALS = ("rule_blocked", "missing_variable", "invalid_variables")


def refused(code: str, message: str) -> Rendering:
    """A refusal to render (``code`` one of :data:`REFUSALS`), with the daemon's message."""
    return Rendering(None, None, None, None, error=code, message=message)


def rendering_values(answer: Mapping[str, Json], assigned: Optional[Mapping[str, Json]] = None) -> Optional[Dict[str, Json]]:
    """The :class:`Rendering` fields other than ``assignment`` in an ``ok`` render answer (or its rendering
    members, with the prompt and version from the ``assigned`` fields); None if it has no rendering."""
    named = answer if assigned is None else assigned
    try:
        kind = answer["type"]
        return {
            "prompt": named["prompt"],
            "prompt_version": named["prompt_version"],
            "type": kind,
            "text": answer["text"] if kind == "text" else None,
            "messages": [dict(m) for m in answer["messages"]] if kind == "chat" else None,
            "warnings": list(answer.get("warnings") or []),
            "error": None,
            "message": None,
        }
    except (KeyError, TypeError, ValueError):
        return None


def new_rendering(assignment: Optional[Assignment], values: Optional[Mapping[str, Json]]) -> Rendering:
    """The :class:`Rendering` of an ``ok`` render answer from its fields (:func:`rendering_values`, or kept by
    :class:`AssignAnswers`), built as :func:`new_assignment` builds, with its own list of warnings, each its own
    dictionary, so a caller that changes them changes no other answer; ``invalid_answer`` when the answer had no
    rendering."""
    if values is None:
        return Rendering(assignment, None, None, None, error="invalid_answer", message="a render answer without its rendering")
    instance = _new(Rendering)
    fields = instance.__dict__
    fields.update(values)
    fields["assignment"] = assignment
    warnings = values["warnings"]
    if not warnings:
        fields["warnings"] = []
    else:
        try:
            # No frame per call, as a comprehension has; one warning (an undeclared variable, say) is the common
            # case, and a list display of its copy costs half of a list made from a map.
            fields["warnings"] = [_copy_dict(warnings[0])] if len(warnings) == 1 else list(map(_copy_dict, warnings))
        except TypeError:  # a warning that is not an object (a decoded answer's), kept as it is
            fields["warnings"] = [w.copy() if w.__class__ is dict else w for w in warnings]
    return instance


def rendering(answer: Mapping[str, Json], assignment: Optional[Assignment]) -> Rendering:
    """The rendering in an ``ok`` render answer."""
    return new_rendering(assignment, rendering_values(answer))


# ---------------------------------------------------------------------------------------------- records


def record_entry(
    experiment: str,
    variant: Optional[str],
    unit: Optional[str],
    attributes: Optional[Mapping[str, Scalar]],
    shadow: bool,
    metrics: Mapping[str, Json],
) -> str:
    """One ``batch`` entry (PROTOCOL.md, ``record`` without ``id``, ``op`` and ``ack``), encoded; ValueError or
    TypeError for a value JSON cannot hold (NaN, infinity, an object)."""
    entry: Dict[str, Json] = {"experiment": experiment}
    if variant is not None:
        entry["variant"] = variant
    if unit is not None:
        # With a variant the unit only groups the record for the analysis by unit (PROTOCOL.md, ``record``); alone,
        # the daemon recomputes the variant from it and the assign's attributes.
        entry["unit"] = unit
        if attributes and variant is None:
            entry["attributes"] = dict(attributes)
    if shadow:
        entry["shadow"] = True
    entry["metrics"] = dict(metrics)
    return _encode(entry)


def batch_lines(records: List[str], first_id: int, max_line_bytes: int) -> List[Tuple[bytes, int]]:
    """Encoded entries as ``batch`` lines with ``"ack":false`` (at most 1000 entries and ``max_line_bytes`` each),
    with how many entries each carries."""
    lines: List[Tuple[bytes, int]] = []
    current: List[str] = []
    size = 0
    overhead = 64
    for record in records:
        record_size = len(record.encode("utf-8")) + 1
        if current and (size + record_size + overhead > max_line_bytes or len(current) == 1000):
            lines.append((_batch_line(current, first_id + len(lines)), len(current)))
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        lines.append((_batch_line(current, first_id + len(lines)), len(current)))
    return lines


def _batch_line(records: List[str], batch_id: int) -> bytes:
    return ('{"id":"records-%d","op":"batch","ack":false,"records":[' % batch_id + ",".join(records) + "]}\n").encode("utf-8")


def rejections(raw: bytes) -> Tuple[int, List[Tuple[str, str]]]:
    """What a ``batch`` answer reports as refused (with ``"ack":false`` the daemon answers only then): how many
    entries, and each refusal's ``(code, message)``. A batch refused whole (``ok`` false: the line was too long or
    not JSON) names its cause but counts no entry, since the answer does not say how many there were."""
    try:
        answer = decode(raw)
    except Failure as failure:
        return 0, [(failure.code, failure.message)]
    if answer.get("ok") is not True:
        return 0, [(error_code(answer), error_message(answer))]
    refused = [r for r in answer.get("rejected") or [] if isinstance(r, Mapping)]
    return len(refused), [(str(r.get("code", "")), str(r.get("message", ""))) for r in refused]
