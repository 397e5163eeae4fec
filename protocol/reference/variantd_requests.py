#!/usr/bin/env python3
"""Independent reference decoder of variantd request lines (PROTOCOL.md section 3, "Decoding a request line").

Standard library only; JSON is read by Python's ``json`` module, made strict where PROTOCOL.md is stricter than
it (no ``NaN``/``Infinity``, no duplicate keys, no lone surrogates, finite numbers, nesting depth 32). It is
written from PROTOCOL.md, not from the Swift decoder, and is the source of ``protocol/test-vectors/requests.json``::

    python3 protocol/reference/variantd_requests.py          # write the vectors
    python3 protocol/reference/variantd_requests.py --check  # exit 1 if they drifted

``decode(line)`` gives the canonical form of decoding one line (bytes, without its newline): the same JSON value
the daemon's ``Request.canonicalDecode`` gives, so that the two can be compared (the vectors, and the differential
check of ``fuzz/differential-requests``)::

    {"id": ID, "op": OP, ...the operation's fields}     a request
    {"id": ID, "op": OP, "error": CODE}                 a line that does not decode

``ID`` is what the answer echoes: ``None``, the string, or ``{"number": TEXT}`` with the number as the line wrote
it. ``OP`` is the op the line named when it is a known one (even when another check failed), else ``"unknown"``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

Json = Any

VECTORS_PATH = Path(__file__).resolve().parents[1] / "test-vectors" / "requests.json"

OPS = ("assign", "prompt", "render", "config", "health", "record", "batch", "stats", "events", "disable", "enable",
       "new_phase", "reload")
MAX_DEPTH = 32
MAX_UNIT_BYTES = 1024
MAX_REASON_BYTES = 1000
MAX_BATCH_RECORDS = 1000
MAX_EVENTS = 1000
MAX_CUSTOM_METRICS = 32
MAX_CUSTOM_NAME_BYTES = 64
CUSTOM_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
LARGEST_EXACT_INTEGER = 2 ** 53


class Number(float):
    """A JSON number: its value as a double, and its text as the line wrote it (an ``id`` is echoed as written)."""

    text: str

    def __new__(cls, text: str) -> "Number":
        try:
            value = float(int(text)) if text.lstrip("-").isdigit() else float(text)
        except (OverflowError, ValueError) as error:  # beyond a double, or beyond Python's int digits limit
            raise Refused("invalid_json") from error
        if not math.isfinite(value):
            raise Refused("invalid_json")
        number = super().__new__(cls, value)
        number.text = text
        return number


class Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------------------------------
# JSON, as strict as PROTOCOL.md
# --------------------------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Json]]) -> dict[str, Json]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Refused("invalid_json")
    return dict(pairs)


def _refuse_constant(name: str) -> Json:
    raise Refused("invalid_json")


def _check_tree(value: Json, depth: int) -> None:
    """Nesting depth (an object or array counts one level) and strings that are Unicode text."""
    if isinstance(value, dict):
        if depth + 1 > MAX_DEPTH:
            raise Refused("invalid_json")
        for key, member in value.items():
            _check_text(key)
            _check_tree(member, depth + 1)
    elif isinstance(value, list):
        if depth + 1 > MAX_DEPTH:
            raise Refused("invalid_json")
        for element in value:
            _check_tree(element, depth + 1)
    elif isinstance(value, str):
        _check_text(value)


def _check_text(text: str) -> None:
    # json reads "\ud800" as a lone surrogate, which is no Unicode text (RFC 8259 section 8.2).
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise Refused("invalid_json")


def read_json(line: bytes) -> Json:
    try:
        text = line.decode("utf-8")  # strict: overlong forms, surrogates and stray bytes are refused
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant,
                           parse_int=Number, parse_float=Number)
    except (ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError, as is bad UTF-8
        raise Refused("invalid_json") from error
    _check_tree(value, 0)
    return value


# --------------------------------------------------------------------------------------------------
# Field checks (PROTOCOL.md section 3, "Decoding a request line")
# --------------------------------------------------------------------------------------------------


def _is_number(value: Json) -> bool:
    return isinstance(value, Number)


def _is_scalar(value: Json) -> bool:
    return isinstance(value, (str, bool, Number))


def _type_ok(value: Json, kind: str) -> bool:
    return {"string": lambda: isinstance(value, str), "boolean": lambda: isinstance(value, bool),
            "object": lambda: isinstance(value, dict), "array": lambda: isinstance(value, list)}[kind]()


class Fields:
    def __init__(self, members: dict[str, Json]) -> None:
        self.members = members

    def has(self, key: str) -> bool:
        return key in self.members

    def only(self, *allowed: str) -> None:
        for key in self.members:
            if key not in allowed:
                raise Refused("unknown_field")

    def optional(self, key: str, kind: str) -> Optional[Json]:
        if key not in self.members:
            return None
        value = self.members[key]
        if not _type_ok(value, kind):
            raise Refused("invalid_field")
        return value

    def required(self, key: str, kind: str) -> Json:
        if key not in self.members:
            raise Refused("missing_field")
        return self.optional(key, kind)

    def unit(self) -> str:
        unit = self.required("unit", "string")
        if not 1 <= len(unit.encode("utf-8")) <= MAX_UNIT_BYTES or "\0" in unit:
            raise Refused("invalid_field")
        return unit

    def attributes(self) -> dict[str, Json]:
        attributes = self.optional("attributes", "object")
        if attributes is None:
            return {}
        if not all(_is_scalar(value) for value in attributes.values()):
            raise Refused("invalid_field")
        return attributes

    def whole(self, key: str, low: int, high: Optional[int] = None) -> Optional[int]:
        """An optional integer in low...high: a number with no fractional part, within ±2^53."""
        if key not in self.members:
            return None
        value = self.members[key]
        if not (_is_number(value) and value.is_integer() and abs(value) <= LARGEST_EXACT_INTEGER):
            raise Refused("invalid_field")
        if value < low or (high is not None and value > high):
            raise Refused("invalid_field")
        return int(value)

    def reason(self) -> Optional[str]:
        reason = self.optional("reason", "string")
        if reason is not None and len(reason.encode("utf-8")) > MAX_REASON_BYTES:
            raise Refused("invalid_field")
        return reason


RECORD_FIELDS = ("experiment", "variant", "unit", "attributes", "shadow", "metrics")


def _metrics(metrics: dict[str, Json]) -> dict[str, Json]:
    """A record's `metrics`: each value of its metric's type (ranges are the experiment's to check)."""
    out: dict[str, Json] = {}
    for name, value in metrics.items():
        if name in ("latency_ms", "cost_usd"):
            if not _is_number(value):
                raise Refused("invalid_metric")
            out[name] = float(value)
        elif name == "error":
            if not isinstance(value, bool):
                raise Refused("invalid_metric")
            out[name] = value
        elif name == "success":
            if isinstance(value, bool):
                out[name] = 1.0 if value else 0.0
            elif _is_number(value) and 0 <= value <= 1:
                out[name] = float(value)
            else:
                raise Refused("invalid_metric")
        elif name == "tokens":
            if not (_is_number(value) and value.is_integer()):
                raise Refused("invalid_metric")
            out[name] = float(value)
        elif name == "custom":
            if not isinstance(value, dict):
                raise Refused("invalid_metric")
            if len(value) > MAX_CUSTOM_METRICS:
                raise Refused("too_many_metrics")
            custom = {}
            for key, number in value.items():
                if not (1 <= len(key) <= MAX_CUSTOM_NAME_BYTES and set(key) <= CUSTOM_NAME_CHARS):
                    raise Refused("invalid_metric")
                if not _is_number(number):
                    raise Refused("invalid_metric")
                custom[key] = float(number)
            out["custom"] = custom
        else:
            raise Refused("unknown_metric")
    # The canonical form lists the metrics in one order, and an empty `custom` measures nothing.
    ordered = {name: out[name] for name in ("latency_ms", "error", "success", "cost_usd", "tokens") if name in out}
    if out.get("custom"):
        ordered["custom"] = out["custom"]
    if not ordered:
        raise Refused("missing_field")
    return ordered


def _record(fields: Fields) -> dict[str, Json]:
    record: dict[str, Json] = {"experiment": fields.required("experiment", "string")}
    if fields.has("variant"):
        if fields.has("attributes"):
            raise Refused("invalid_field")
        record["variant"] = fields.required("variant", "string")
        record["unit"] = fields.unit() if fields.has("unit") else None
    elif fields.has("unit"):
        record["unit"] = fields.unit()
        record["attributes"] = fields.attributes()
    else:
        raise Refused("missing_field")
    metrics = fields.required("metrics", "object")
    record["shadow"] = bool(fields.optional("shadow", "boolean"))
    record["metrics"] = _metrics(metrics)
    return record


def _variables(fields: Fields) -> dict[str, Json]:
    if not fields.has("variables"):
        return {}
    variables = fields.members["variables"]
    if not isinstance(variables, dict) or not all(_is_scalar(value) for value in variables.values()):
        raise Refused("invalid_variables")
    return variables


def _operation(op: str, f: Fields) -> dict[str, Json]:
    if op == "assign":
        f.only("id", "op", "experiment", "unit", "attributes")
        return {"experiment": f.required("experiment", "string"), "unit": f.unit(), "attributes": f.attributes()}
    if op == "prompt":
        f.only("id", "op", "prompt", "prompt_version", "experiment", "unit", "attributes")
        experiment = f.optional("experiment", "string")
        if experiment is not None:
            if f.has("prompt_version"):
                raise Refused("invalid_field")
            return {"form": "assigned", "experiment": experiment, "unit": f.unit(), "attributes": f.attributes(),
                    "prompt": f.optional("prompt", "string")}
        if f.has("unit") or f.has("attributes"):
            raise Refused("invalid_field")
        prompt = f.required("prompt", "string")
        version = f.whole("prompt_version", 1)
        if version is None:
            return {"form": "latest", "prompt": prompt}
        return {"form": "prompt_version", "prompt": prompt, "prompt_version": version}
    if op == "render":
        variables = _variables(f)
        experiment = f.optional("experiment", "string")
        if experiment is not None:
            f.only("id", "op", "experiment", "unit", "attributes", "variables")
            return {"form": "assigned", "experiment": experiment, "unit": f.unit(), "attributes": f.attributes(),
                    "variables": variables}
        f.only("id", "op", "prompt", "prompt_version", "variables", "unit", "attributes")
        if f.has("unit") or f.has("attributes"):
            raise Refused("invalid_field")
        return {"form": "prompt", "prompt": f.required("prompt", "string"),
                "prompt_version": f.whole("prompt_version", 1), "variables": variables}
    if op in ("config", "health", "reload"):
        f.only("id", "op")
        return {}
    if op == "record":
        f.only("id", "op", "ack", *RECORD_FIELDS)
        record = _record(f)
        ack = f.optional("ack", "boolean")
        return {"ack": True if ack is None else ack, "record": record}
    if op == "batch":
        f.only("id", "op", "records", "ack")
        entries = f.required("records", "array")
        if len(entries) > MAX_BATCH_RECORDS:
            raise Refused("invalid_field")
        records = []
        for entry in entries:
            try:
                if not isinstance(entry, dict):
                    raise Refused("invalid_field")
                entry_fields = Fields(entry)
                entry_fields.only(*RECORD_FIELDS)
                records.append(_record(entry_fields))
            except Refused as refused:
                records.append({"error": refused.code})
        ack = f.optional("ack", "boolean")
        return {"ack": True if ack is None else ack, "records": records}
    if op == "stats":
        f.only("id", "op", "experiment", "minimum_detectable_effect", "phase")
        effect = f.members.get("minimum_detectable_effect")
        if "minimum_detectable_effect" in f.members and not (_is_number(effect) and 0 < effect < 1):
            raise Refused("invalid_field")
        phase = f.whole("phase", 1)
        return {"experiment": f.required("experiment", "string"),
                "minimum_detectable_effect": None if effect is None else float(effect), "phase": phase}
    if op == "events":
        f.only("id", "op", "limit")
        limit = f.whole("limit", 1, MAX_EVENTS)
        return {"limit": MAX_EVENTS if limit is None else limit}
    if op == "disable":
        f.only("id", "op", "experiment", "variant", "reason")
        return {"experiment": f.required("experiment", "string"), "variant": f.required("variant", "string"),
                "reason": f.reason()}
    if op == "enable":
        f.only("id", "op", "experiment", "variant")
        return {"experiment": f.required("experiment", "string"), "variant": f.required("variant", "string")}
    if op == "new_phase":
        f.only("id", "op", "experiment", "reason")
        return {"experiment": f.required("experiment", "string"), "reason": f.reason()}
    raise Refused("unknown_op")


def _canonical_id(value: Json) -> Json:
    if isinstance(value, Number):
        return {"number": value.text}
    return value


def decode(line: bytes) -> dict[str, Json]:
    """The canonical form of decoding one request line (without its newline)."""
    try:
        request = read_json(line)
    except Refused as refused:
        return {"id": None, "op": "unknown", "error": refused.code}
    if not isinstance(request, dict):
        return {"id": None, "op": "unknown", "error": "invalid_request"}
    op_name = request.get("op")
    op = op_name if isinstance(op_name, str) and op_name in OPS else "unknown"
    raw_id = request.get("id")
    if raw_id is not None and not isinstance(raw_id, (str, Number)):
        return {"id": None, "op": op, "error": "invalid_field"}
    fields = Fields(request)
    try:
        name = fields.required("op", "string")
        decoded = {"id": _canonical_id(raw_id), "op": op}
        decoded.update(_operation(name, fields))
        return decoded
    except Refused as refused:
        return {"id": _canonical_id(raw_id), "op": op, "error": refused.code}


# --------------------------------------------------------------------------------------------------
# Comparing with the daemon's decode
# --------------------------------------------------------------------------------------------------


def same(expected: Json, actual: Json) -> bool:
    """Equal canonical forms: numbers as doubles (0 and -0 alike: a writer may not keep the sign of zero), objects
    with their members in order."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return list(expected) == list(actual) and all(same(expected[key], actual[key]) for key in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(same(a, b) for a, b in zip(expected, actual))
    return type(expected) is type(actual) and expected == actual


def canonical_text(value: Json) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------------------------------
# Lines: hand-picked cases, and random ones from seeds and mutations (the differential check's source)
# --------------------------------------------------------------------------------------------------

SEED_LINES: tuple[str, ...] = (
    '{"id":1,"op":"assign","experiment":"checkout-prompt","unit":"user-42","attributes":{"country":"US"}}',
    '{"id":"a","op":"assign","experiment":"e","unit":"u"}',
    '{"op":"assign","unit":"u","experiment":"e"}',
    ' { "experiment" : "e" , "unit" : "u" , "op" : "assign" , "id" : "x-1" } ',
    '{"id":2,"op":"prompt","prompt":"checkout","prompt_version":1}',
    '{"id":3,"op":"prompt","prompt":"checkout"}',
    '{"id":4,"op":"prompt","experiment":"checkout-prompt","unit":"user-42","attributes":{"country":"US"}}',
    '{"id":4,"op":"prompt","experiment":"e","unit":"u","prompt":"p"}',
    '{"id":20,"op":"render","experiment":"checkout-prompt","unit":"user-42","attributes":{"country":"US"},'
    '"variables":{"store_name":"Acme","customer_name":"Ada","tone":"warm"}}',
    '{"id":21,"op":"render","prompt":"checkout","prompt_version":1,'
    '"variables":{"store_name":"Acme","n":3,"b":true}}',
    '{"id":22,"op":"render","experiment":"e","unit":"u","variables":{"a":"x","b":"y"}}',
    '{"id":5,"op":"config"}',
    '{"id":6,"op":"health"}',
    '{"id":8,"op":"record","experiment":"checkout-prompt","variant":"concise","metrics":{"latency_ms":812.5,'
    '"error":false,"success":true,"cost_usd":0.0021,"tokens":734,"custom":{"rating":4.5}}}',
    '{"id":8,"op":"record","experiment":"e","unit":"u","attributes":{"plan":"pro"},"metrics":{"success":0.5},'
    '"ack":false}',
    '{"id":8,"op":"record","experiment":"e","variant":"v","unit":"u","shadow":true,"metrics":{"error":true}}',
    '{"id":9,"op":"batch","records":[{"experiment":"checkout-prompt","variant":"control","metrics":{"error":true}},'
    '{"experiment":"checkout-prompt","variant":"nope","metrics":{"error":false}},7,{"experiment":"e"}]}',
    '{"id":9,"op":"batch","records":[],"ack":false}',
    '{"id":14,"op":"stats","experiment":"checkout-prompt","minimum_detectable_effect":0.02}',
    '{"id":15,"op":"stats","experiment":"checkout-prompt","phase":1}',
    '{"id":10,"op":"events","limit":50}',
    '{"id":10,"op":"events"}',
    '{"id":11,"op":"disable","experiment":"checkout-prompt","variant":"concise","reason":"rollback after incident 77"}',
    '{"id":12,"op":"enable","experiment":"checkout-prompt","variant":"concise"}',
    '{"id":16,"op":"new_phase","experiment":"checkout-prompt","reason":"fixed the logging bug"}',
    '{"id":13,"op":"reload"}',
)

# Pieces the mutations splice in: values of every JSON type and edge, keys of every op, broken syntax.
VALUES = ('"e"', '"u"', '""', '"\\u0000"', '"caf\\u00e9"', '"café"', '"\\ud800"', '"\\ud83d\\ude00"', '"\u212a"',
          '"a\\"b"', '"\\n"', '0', '-0', '1', '-1', '1.0', '1e2', '1E2', '0.5', '2', '1000', '1001', '1e400',
          '-1e400', '1e-400', '9007199254740993', '9007199254740992', '18014398509481984', '86666666666666666666666666',
          '0.999999999999999999', '1.5', 'true', 'false', 'null', '[]', '[1]', '{}', '{"a":"b"}', '{"a":1}',
          '{"a":{}}', '{"a":null}', '"' + "x" * 1024 + '"', '"' + "x" * 1025 + '"', '"' + "é" * 512 + '"',
          '"' + "r" * 1001 + '"', '"assign"', '"ASSIGN"', '"render"', '"new_phase"', '{"rating":1}', '{"a b":1}', '{"error":true}', '{"tokens":1.5}',
          '{"success":2}', '{"custom":{}}', '{"latency_ms":1,"bogus":1}', '[{"experiment":"e","variant":"v",'
          '"metrics":{"error":true}}]')
KEYS = ("id", "op", "experiment", "unit", "attributes", "prompt", "prompt_version", "version", "variables", "variant",
        "metrics", "ack",
        "records", "shadow", "reason", "limit", "phase", "minimum_detectable_effect", "bogus", "ID", "\u212aey", "")
SYNTAX = ('NaN', 'Infinity', '01', '1.', '.5', '+1', '-', '"\\x"', '"\\u12"', '{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\t', '\r', '\x00', '\x7f', '\xe9', 'x', '{"op":"health",}')


def random_line(rng: random.Random) -> bytes:
    """A request line: a seed line, mutated structurally (members added, dropped, retyped) and at the byte level."""
    request = json.loads(rng.choice(SEED_LINES))
    members = list(request.items())
    text_members = [json.dumps(k, ensure_ascii=rng.random() < 0.3) + ":" + json.dumps(v, ensure_ascii=False)
                    for k, v in members]
    for _ in range(rng.randrange(4)):
        action = rng.randrange(6)
        if action == 0 and text_members:
            text_members.pop(rng.randrange(len(text_members)))
        elif action == 1:
            present = {member.split(":", 1)[0] for member in text_members}
            fresh = [key for key in KEYS if json.dumps(key) not in present]
            # Mostly a key the line does not have yet (a key twice is invalid JSON, which other lines cover).
            key = rng.choice(fresh) if fresh and rng.random() < 0.9 else rng.choice(KEYS)
            text_members.insert(rng.randrange(len(text_members) + 1), json.dumps(key) + ":" + rng.choice(VALUES))
        elif action == 2 and text_members:
            index = rng.randrange(len(text_members))
            key = text_members[index].split(":", 1)[0]
            text_members[index] = key + ":" + rng.choice(VALUES)
        elif action == 3 and text_members:
            rng.shuffle(text_members)
        elif action == 4 and text_members:
            index = rng.randrange(len(text_members))
            key, _, value = text_members[index].partition(":")
            # Nest a value (a nested object of a record's fields, or an array of them).
            text_members[index] = key + ":" + rng.choice(("[" + value + "]", '{"a":' + value + "}", value))
    gap = rng.choice(("", "", " ", "\t", "\r", "\n "))
    text = gap + "{" + gap + ("," + gap).join(text_members) + gap + "}" + gap
    data = bytearray(text.encode("utf-8"))
    for _ in range(rng.choice((0, 0, 0, 0, 0, 0, 1, 1, 2, 3))):
        action = rng.randrange(5)
        position = rng.randrange(len(data) + 1)
        if action == 0 and data:
            del data[min(position, len(data) - 1)]
        elif action == 1:
            data[position:position] = rng.choice(SYNTAX).encode("utf-8")
        elif action == 2 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif action == 3:
            data[position:position] = rng.choice(VALUES).encode("utf-8")
        else:
            data = data[:position]  # truncated
    if rng.random() < 0.02:
        data = bytearray(b"[" * rng.choice((31, 32, 33, 2000)) + b"]" * rng.choice((31, 32, 33, 2000)))
    if rng.random() < 0.02:
        data = bytearray(b'{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":' +
                         b'{"a":' * rng.choice((30, 31, 32)) + b'1' + b'}' * rng.choice((30, 31, 32)) + b'}')
    return bytes(data).replace(b"\n", b" ")  # a line holds no newline: the framing splits at each


def random_lines(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [random_line(rng) for _ in range(count)]


# --------------------------------------------------------------------------------------------------
# The vectors
# --------------------------------------------------------------------------------------------------

# Lines pinned by hand: every edge named in PROTOCOL.md, and each disagreement the differential check found.
PINNED_LINES: tuple[bytes, ...] = tuple(line.encode("utf-8") for line in SEED_LINES) + (
    b'', b'   ', b'null', b'[]', b'"assign"', b'{', b'{"id":1,"op":"assign"', b'{"id":1}', b'{"op":7}',
    b'{"id":[1],"op":"assign","experiment":"e","unit":"u"}', b'{"id":true,"op":"nope"}',
    b'{"id":{"a":1},"op":"health","bogus":1}',
    b'{"id":1,"op":"assign","op":"assign","experiment":"e","unit":"u"}',
    b'{"id":9007199254740993,"op":"health"}', b'{"id":1.0,"op":"health"}', b'{"id":1E2,"op":"health"}',
    b'{"id":-0,"op":"health"}', b'{"id":-0.0,"op":"health"}', b'{"id":86666666666666666666666666,"op":"health"}',
    b'{"id":1e400,"op":"health"}', b'{"id":NaN,"op":"health"}', b'{"id":"\\ud800","op":"health"}',
    b'{"id":"\\ud83d\\ude00","op":"health"}', b'{"id":"caf\xc3\xa9","op":"health"}', b'{"id":"caf\xe9","op":"health"}',
    b'{"id":"\xed\xa0\x80","op":"health"}', b'{"id":"\xc0\xaf","op":"health"}', b'\xef\xbb\xbf{"op":"health"}',
    b'{"id":1,"op":"ASSIGN"}', b'{"id":1,"op":"\xe2\x84\xaaassign"}', b'{"id":1,"op":"assign ","experiment":"e"}',
    b'{"id":1,"op":"health"}x', b'{"id":1,"op":"health"}\r', b'\t{"id":1,"op":"health"}\r ',
    b'{"id":1,"op":"assign","experiment":"e","unit":""}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"' + b"x" * 1024 + b'"}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"' + b"x" * 1025 + b'"}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"' + "é".encode() * 512 + b'"}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"' + "é".encode() * 513 + b'"}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"a\\u0000b"}',
    b'{"id":1,"op":"assign","experiment":"e","unit":7}', b'{"id":1,"op":"assign","experiment":null,"unit":"u"}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":{"a":null}}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":{"a":[1]}}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":[]}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":{"n":1.5,"b":false,"s":"x"}}',
    b'{"id":1,"op":"assign","experiment":"e","unit":"u","bogus":1}',
    b'{"id":1,"op":"assign","bogus":1}',
    b'{"id":1,"op":"prompt","prompt":"p","prompt_version":0}', b'{"id":1,"op":"prompt","prompt":"p","prompt_version":1.5}',
    b'{"id":1,"op":"prompt","prompt":"p","prompt_version":1.0}', b'{"id":1,"op":"prompt","prompt":"p","prompt_version":"1"}',
    b'{"id":1,"op":"prompt","prompt":"p","version":1}', b'{"id":1,"op":"render","prompt":"p","version":1}',
    b'{"id":1,"op":"prompt","prompt":"p","prompt_version":9007199254740993}',
    b'{"id":1,"op":"prompt","prompt":"p","prompt_version":1e300}',
    b'{"id":1,"op":"prompt","experiment":"e","unit":"u","prompt_version":1}',
    b'{"id":1,"op":"prompt","prompt":"p","unit":"u"}', b'{"id":1,"op":"prompt"}',
    b'{"id":1,"op":"render","prompt":"p","variables":[]}', b'{"id":1,"op":"render","prompt":"p","variables":{"a":null}}',
    b'{"id":1,"op":"render","prompt":"p","variables":{"a":{}},"bogus":1}',
    b'{"id":1,"op":"render","experiment":"e","unit":"u","prompt_version":1}',
    b'{"id":1,"op":"render","prompt":"p","attributes":{}}', b'{"id":1,"op":"render"}',
    b'{"id":1,"op":"render","experiment":"e","unit":"u","variables":{"a":"x","a":"y"}}',
    b'{"id":1,"op":"render","experiment":"e","unit":"u","variables":{' +
    b",".join(b'"v%d":"x"' % i for i in range(33)) + b'}}',
    b'{"id":1,"op":"record","experiment":"e","metrics":{"error":true}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","attributes":{},"metrics":{"error":true}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"custom":{}}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"tokens":2.5}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"tokens":1e300}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"success":1.5}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"latency_ms":-5}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"error":1}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"bogus":1,"error":"x"}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"error":"x","bogus":1}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"custom":{"a b":1}}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"custom":{"' + b"m" * 65 + b'":1}}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"custom":{' +
    b",".join(b'"m%d":1' % i for i in range(33)) + b'}}}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"error":true},"shadow":1}',
    b'{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"error":true},"ack":"no"}',
    b'{"id":1,"op":"batch","records":{}}', b'{"id":1,"op":"batch"}',
    b'{"id":1,"op":"batch","records":[' + b",".join([b'{}'] * 1000) + b']}',
    b'{"id":1,"op":"batch","records":[' + b",".join([b'{}'] * 1001) + b']}',
    b'{"id":1,"op":"batch","records":[{"experiment":"e","variant":"v","metrics":{"error":true},"ack":true}]}',
    b'{"id":1,"op":"stats","experiment":"e","minimum_detectable_effect":0}',
    b'{"id":1,"op":"stats","experiment":"e","minimum_detectable_effect":1}',
    b'{"id":1,"op":"stats","phase":0}', b'{"id":1,"op":"stats","experiment":"e","phase":2.5}',
    b'{"id":1,"op":"events","limit":0}', b'{"id":1,"op":"events","limit":1000}',
    b'{"id":1,"op":"events","limit":1001}',
    b'{"id":1,"op":"disable","experiment":"e","variant":"v","reason":"' + b"r" * 1000 + b'"}',
    b'{"id":1,"op":"disable","experiment":"e","variant":"v","reason":"' + b"r" * 1001 + b'"}',
    b'{"id":1,"op":"new_phase","experiment":"e","reason":null}', b'{"id":1,"op":"enable","experiment":"e"}',
    b'{"id":1,"op":"reload","experiment":"e"}',
    b'[' * 32 + b']' * 32, b'[' * 33 + b']' * 33, b'[' * 5000,
    b'{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":' + b'{"a":' * 31 + b'1' + b'}' * 32,
    b'{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":' + b'{"a":' * 30 + b'1' + b'}' * 31,
)

# Random lines in the committed vectors: enough to cover the mutations, few enough to read a diff of.
VECTOR_SEED = 15
VECTOR_RANDOM_LINES = 300


def _line_member(line: bytes) -> dict[str, str]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return {"line_hex": line.hex()}
    return {"line": text}


def generate_vectors() -> dict[str, Json]:
    lines = list(PINNED_LINES) + random_lines(VECTOR_SEED, VECTOR_RANDOM_LINES)
    return {
        "description": "Request decoding vectors (PROTOCOL.md section 3, \"Decoding a request line\"): decoding "
                       "'line' (or the bytes of 'line_hex', for a line that is not UTF-8) must give 'decoded', the "
                       "canonical form of protocol/reference/variantd_requests.py (the id echoed; the op and its "
                       "fields, or the error code). Generated by that script (PINNED_LINES, then random lines of "
                       "seed 15); the daemon's Request.canonicalDecode is checked against every case by "
                       "Tests/VariantCoreTests/CrossLanguageVectorTests.swift.",
        "cases": [{**_line_member(line), "decoded": decode(line)} for line in lines],
    }


def line_of(case: dict[str, Json]) -> bytes:
    return bytes.fromhex(case["line_hex"]) if "line_hex" in case else case["line"].encode("utf-8")


def rendered_vectors() -> str:
    return json.dumps(generate_vectors(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="(Re)generate the request decoding vectors.")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file differs")
    args = parser.parse_args(argv)
    text = rendered_vectors()
    current = VECTORS_PATH.read_text(encoding="utf-8") if VECTORS_PATH.exists() else None
    if current == text:
        print(f"unchanged {VECTORS_PATH}")
        return 0
    if args.check:
        print(f"DIFFERS   {VECTORS_PATH}", file=sys.stderr)
        return 1
    VECTORS_PATH.write_text(text, encoding="utf-8")
    print(f"wrote     {VECTORS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
