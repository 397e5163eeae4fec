#!/usr/bin/env python3
"""Independent reference implementation of variantd assignment (PROTOCOL.md section 2).

Standard library only. This module is the source of the cross-language test vectors in
``protocol/test-vectors/``; regenerate them with::

    python3 protocol/reference/variantd_reference.py          # write the vector files
    python3 protocol/reference/variantd_reference.py --check  # exit 1 if they drifted

Everything here follows PROTOCOL.md literally:

* ``bucket(salt, label, unit)``: SHA-256 of UTF-8(salt) || 0x00 || ASCII(label) || 0x00 || UTF-8(unit),
  first 8 bytes as a big-endian unsigned 64-bit integer, mod 10000.
* ``bp(x)``: percent to basis points, exact for numbers with at most two decimals.
* enrolment: ``bucket("exposure") < bp(exposure)``.
* variant: first variant (document order) whose running sum of ``bp(weight)`` exceeds ``bucket("variant")``.
* targeting: every rule must match; a missing attribute matches no rule; JSON types must agree
  (a boolean never equals a number, even though ``True == 1`` in Python).
* the decision order: draft, paused, completed, not_started, ended, not_targeted, outside_exposure, disabled (a
  treatment the document disables, with ``"disabled"`` on its variant), shadow, assigned.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

Scalar = Union[str, int, float, bool]
Number = Union[int, float]
Json = Any
Instant = Fraction  # seconds since 1970-01-01T00:00:00Z, exact

BUCKETS = 10_000
EXPOSURE_LABEL = "exposure"
VARIANT_LABEL = "variant"
MAX_UNIT_BYTES = 1024
MAX_SALT_CHARS = 256

STATUSES = ("draft", "running", "paused", "completed")
OPS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte")
LIST_OPS = ("in", "not_in")
ORDER_OPS = ("lt", "lte", "gt", "gte")
# The reasons the decision order gives from the document alone ("disabled" also comes from the daemon's state: a
# treatment an operator or a guardrail disabled on one host).
REASONS = ("draft", "paused", "completed", "not_started", "ended", "not_targeted", "outside_exposure", "disabled",
           "assigned", "shadow")
# The members of a variant's "disabled", and the limits of its strings (in bytes of UTF-8).
DISABLED_FIELDS = ("at", "by", "reason", "evidence")
MAX_DISABLED_BY_BYTES = 256
MAX_DISABLED_REASON_BYTES = 1000

PROTOCOL_DIR = Path(__file__).resolve().parent.parent
VECTORS_DIR = PROTOCOL_DIR / "test-vectors"
ASSIGNMENT_PATH = VECTORS_DIR / "assignment.json"
DECISIONS_PATH = VECTORS_DIR / "decisions.json"


# --------------------------------------------------------------------------------------------------
# Buckets and basis points
# --------------------------------------------------------------------------------------------------


def check_unit(unit: str) -> None:
    """Raise ValueError unless ``unit`` is 1-1024 bytes of UTF-8 without NUL."""
    encoded = unit.encode("utf-8")  # raises on lone surrogates: not UTF-8
    if not 1 <= len(encoded) <= MAX_UNIT_BYTES:
        raise ValueError(f"unit must be 1-{MAX_UNIT_BYTES} bytes of UTF-8, got {len(encoded)}")
    if "\x00" in unit:
        raise ValueError("unit must not contain NUL")


def check_salt(salt: str) -> None:
    """Raise ValueError unless ``salt`` is 1-256 characters (Unicode scalar values) without NUL."""
    salt.encode("utf-8")
    if not 1 <= len(salt) <= MAX_SALT_CHARS:
        raise ValueError(f"salt must be 1-{MAX_SALT_CHARS} characters, got {len(salt)}")
    if "\x00" in salt:
        raise ValueError("salt must not contain NUL")


def bucket(salt: str, label: str, unit: str) -> int:
    """The bucket (0-9999) of ``unit`` for ``label`` ("exposure" or "variant") under ``salt``."""
    check_salt(salt)
    check_unit(unit)
    message = salt.encode("utf-8") + b"\x00" + label.encode("ascii") + b"\x00" + unit.encode("utf-8")
    digest = hashlib.sha256(message).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def _is_number(value: object) -> bool:
    """A JSON number: int or float, but not bool (bool is a subclass of int in Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def bp(percent: Number) -> int:
    """Percent to basis points, ``round(percent * 100)``, exact for at most two decimals.

    The float is converted through its shortest repr (``33.33`` -> ``Decimal("33.33")``), so there is no
    binary rounding error; more than two decimals is an error, as the document forbids it.
    """
    if not _is_number(percent):
        raise TypeError(f"percent must be a number, got {percent!r}")
    exact = Decimal(repr(percent)) if isinstance(percent, float) else Decimal(percent)
    scaled = exact * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{percent!r} has more than two decimals")
    return int(scaled)


def is_enrolled(exposure_bucket: int, exposure: Number) -> bool:
    """Step 7 of the decision order, inverted: enrolled when the bucket is below bp(exposure)."""
    return exposure_bucket < bp(exposure)


def variant_index(variant_bucket: int, weights: Sequence[Number]) -> int:
    """Index of the first variant whose running sum of bp(weight) is greater than ``variant_bucket``."""
    running = 0
    for index, weight in enumerate(weights):
        running += bp(weight)
        if running > variant_bucket:
            return index
    raise ValueError(f"weights sum to {running} basis points; bucket {variant_bucket} is beyond them")


@dataclass(frozen=True)
class Assignment:
    """The pure hash part of an assignment (no status, window or targeting)."""

    exposure_bucket: int
    variant_bucket: int
    enrolled: bool
    hashed_variant: int  # index into the variants, reported whether or not the unit is enrolled


def assign(salt: str, unit: str, exposure: Number, weights: Sequence[Number]) -> Assignment:
    exposure_bucket = bucket(salt, EXPOSURE_LABEL, unit)
    variant_bucket = bucket(salt, VARIANT_LABEL, unit)
    return Assignment(
        exposure_bucket=exposure_bucket,
        variant_bucket=variant_bucket,
        enrolled=is_enrolled(exposure_bucket, exposure),
        hashed_variant=variant_index(variant_bucket, weights),
    )


# --------------------------------------------------------------------------------------------------
# Timestamps (RFC 3339)
# --------------------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_timestamp(text: str) -> Instant:
    """An RFC 3339 date-time as exact seconds since the Unix epoch.

    Accepts ``Z``/``z`` or a numeric offset, ``T``/``t``, and any number of fractional digits (kept
    exactly). Rejects leap seconds (``:60``), which neither the Swift nor the Python standard library
    represent. ``-00:00`` is treated as UTC.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, zulu, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10, 11)
    whole = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)  # validates ranges
    seconds = Fraction((whole - _EPOCH).days * 86_400 + (whole - _EPOCH).seconds)
    if fraction:
        seconds += Fraction(int(fraction), 10 ** len(fraction))
    if not zulu:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            raise ValueError(f"offset out of range: {text!r}")
        offset = int(offset_hours) * 3600 + int(offset_minutes) * 60
        seconds -= offset if sign == "+" else -offset
    return seconds


# --------------------------------------------------------------------------------------------------
# Targeting
# --------------------------------------------------------------------------------------------------


def json_equal(a: Scalar, b: Scalar) -> bool:
    """Equality of two JSON scalars: same JSON type, numbers by value (1 == 1.0), bool never == number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return a == b  # int and float compare by exact mathematical value in Python
    if isinstance(a, str) and isinstance(b, str):
        return a == b  # code point equality: no Unicode normalisation
    return False


def rule_matches(rule: Mapping[str, Json], attributes: Mapping[str, Scalar]) -> bool:
    """Whether one targeting rule matches. A missing attribute matches no rule, not even ne / not_in."""
    name = rule["attribute"]
    if name not in attributes:
        return False
    actual = attributes[name]
    if not (isinstance(actual, str) or isinstance(actual, bool) or _is_number(actual)):
        raise ValueError(f"attribute {name!r} is not a scalar: {actual!r}")
    op = rule["op"]
    if op == "eq":
        return json_equal(actual, rule["value"])
    if op == "ne":
        return not json_equal(actual, rule["value"])
    if op == "in":
        return any(json_equal(actual, candidate) for candidate in rule["values"])
    if op == "not_in":
        return not any(json_equal(actual, candidate) for candidate in rule["values"])
    if op in ORDER_OPS:
        expected = rule["value"]
        if not _is_number(expected):
            raise ValueError(f"rule {op} needs a number, got {expected!r}")
        if not _is_number(actual):
            return False
        if op == "lt":
            return actual < expected
        if op == "lte":
            return actual <= expected
        if op == "gt":
            return actual > expected
        return actual >= expected
    raise ValueError(f"unknown op {op!r}")


def is_targeted(rules: Sequence[Mapping[str, Json]], attributes: Mapping[str, Scalar]) -> bool:
    return all(rule_matches(rule, attributes) for rule in rules)


# --------------------------------------------------------------------------------------------------
# Decision order
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    variant: str
    prompt: str
    prompt_version: int
    enrolled: bool
    reason: str
    # Shadow mode only: whether the experiment is in shadow mode, and the treatment to run in the background.
    shadow_mode: bool = False
    shadow: Optional[str] = None

    def to_json(self) -> dict[str, Json]:
        result: dict[str, Json] = {
            "variant": self.variant,
            "prompt": self.prompt,
            "prompt_version": self.prompt_version,
            "enrolled": self.enrolled,
            "reason": self.reason,
        }
        if self.shadow_mode:
            result["shadow"] = self.shadow
        return result


def _serve(variant: Mapping[str, Json], enrolled: bool, reason: str, shadow_mode: bool = False,
           shadow: Optional[str] = None) -> Decision:
    return Decision(variant["name"], variant["prompt"], variant["prompt_version"], enrolled, reason,
                    shadow_mode, shadow)


def decide(
    experiment: Mapping[str, Json],
    unit: str,
    attributes: Optional[Mapping[str, Scalar]],
    now: Union[str, Instant],
) -> Decision:
    """The decision for ``unit`` in a (valid) experiment at instant ``now`` (PROTOCOL.md decision order)."""
    check_unit(unit)
    attributes = attributes or {}
    instant = parse_timestamp(now) if isinstance(now, str) else now
    variants: Sequence[Mapping[str, Json]] = experiment["variants"]
    control = next(v for v in variants if v.get("control", False) is True)
    status = experiment["status"]

    if status == "draft":
        return _serve(control, False, "draft")
    if status == "paused":
        return _serve(control, False, "paused")
    if status == "completed":
        winner = next(v for v in variants if v["name"] == experiment["winner"])
        return _serve(winner, False, "completed")
    if status != "running":
        raise ValueError(f"unknown status {status!r}")
    if "start" in experiment and instant < parse_timestamp(experiment["start"]):
        return _serve(control, False, "not_started")
    if "end" in experiment and instant >= parse_timestamp(experiment["end"]):
        return _serve(control, False, "ended")
    if not is_targeted(experiment.get("targeting", []), attributes):
        return _serve(control, False, "not_targeted")
    salt: str = experiment["salt"]
    if not is_enrolled(bucket(salt, EXPOSURE_LABEL, unit), experiment.get("exposure", 100)):
        return _serve(control, False, "outside_exposure")
    index = variant_index(bucket(salt, VARIANT_LABEL, unit), [v["weight"] for v in variants])
    hashed = variants[index]
    if experiment.get("mode", "live") == "shadow":
        # Everyone is served the control; a unit hashed to a treatment runs it in the background, unless the
        # treatment is disabled: then nothing runs in the shadow.
        return _serve(control, True, "shadow", True,
                      None if hashed is control or is_disabled(hashed) else hashed["name"])
    if is_disabled(hashed):
        return _serve(control, False, "disabled")
    return _serve(hashed, True, "assigned")


def is_disabled(variant: Mapping[str, Json]) -> bool:
    """Whether the document disables the variant (step 8 of the decision order); never the control."""
    return "disabled" in variant


# --------------------------------------------------------------------------------------------------
# Semantic checks of a configuration document (the part JSON Schema cannot express)
# --------------------------------------------------------------------------------------------------

MAX_WINDOW_SECONDS = 366 * 86_400


def semantic_problems(document: Mapping[str, Json]) -> list[str]:
    """Cross-reference problems of a schema-valid document, as ``"<path>: <code>"`` strings.

    Only the checks that JSON Schema cannot express; used to prove the vector configuration is valid.
    """
    problems: list[str] = []
    prompts: Mapping[str, Json] = document["prompts"]
    for prompt_name, prompt in prompts.items():
        numbers = [v["version"] for v in prompt["versions"]]
        if len(set(numbers)) != len(numbers):
            problems.append(f"$.prompts.{prompt_name}.versions: duplicate_version")
        for i, version in enumerate(prompt["versions"]):
            variables = version.get("variables", {})
            names = list(variables.get("required", [])) + list(variables.get("optional", []))
            if len(set(names)) != len(names):
                problems.append(f"$.prompts.{prompt_name}.versions[{i}].variables: duplicate_name")
    experiment_names = [e["name"] for e in document["experiments"]]
    if len(set(experiment_names)) != len(experiment_names):
        problems.append("$.experiments: duplicate_name")
    for i, experiment in enumerate(document["experiments"]):
        path = f"$.experiments[{i}]"
        variants = experiment["variants"]
        names = [v["name"] for v in variants]
        if len(set(names)) != len(names):
            problems.append(f"{path}.variants: duplicate_name")
        if sum(bp(v["weight"]) for v in variants) != BUCKETS:
            problems.append(f"{path}.variants: weights_sum")
        controls = sum(1 for v in variants if v.get("control", False) is True)
        if controls == 0:
            problems.append(f"{path}.variants: missing_control")
        if controls > 1:
            problems.append(f"{path}.variants: multiple_controls")
        for j, variant in enumerate(variants):
            if "disabled" in variant:
                problems.extend(disabled_problems(variant, f"{path}.variants[{j}]"))
            prompt = prompts.get(variant["prompt"])
            if prompt is None:
                problems.append(f"{path}.variants[{j}].prompt: unknown_prompt")
            elif variant["prompt_version"] not in [v["version"] for v in prompt["versions"]]:
                problems.append(f"{path}.variants[{j}].prompt_version: unknown_prompt_version")
        if experiment["status"] == "completed":
            if "winner" not in experiment:
                problems.append(f"{path}: missing_winner")
            elif experiment["winner"] not in names:
                problems.append(f"{path}.winner: unknown_winner")
        elif "winner" in experiment:
            problems.append(f"{path}.winner: unexpected_winner")
        if "start" in experiment and "end" in experiment:
            start, end = parse_timestamp(experiment["start"]), parse_timestamp(experiment["end"])
            if end <= start:
                problems.append(f"{path}.end: window_inverted")
            elif end - start > MAX_WINDOW_SECONDS:
                problems.append(f"{path}.end: window_too_long")
        bp(experiment.get("exposure", 100))  # raises on more than two decimals
    return problems


def disabled_problems(variant: Mapping[str, Json], path: str) -> list[str]:
    """The problems of a variant's ``disabled`` as ``"<path>: <code>"`` strings, the daemon's codes."""
    disabled = variant["disabled"]
    path = f"{path}.disabled"
    problems: list[str] = []
    if variant.get("control", False) is True:
        problems.append(f"{path}: control_cannot_be_disabled")
    if not isinstance(disabled, dict):
        return problems + [f"{path}: wrong_type"]
    problems.extend(f"{path}.{key}: unknown_field" for key in disabled if key not in DISABLED_FIELDS)
    for key in ("at", "by", "reason"):
        if key not in disabled:
            problems.append(f"{path}.{key}: missing_field")
        elif not isinstance(disabled[key], str):
            problems.append(f"{path}.{key}: wrong_type")
    if isinstance(disabled.get("at"), str):
        try:
            parse_timestamp(disabled["at"])
        except ValueError:
            problems.append(f"{path}.at: invalid_timestamp")
    if isinstance(disabled.get("by"), str) and not 1 <= len(disabled["by"].encode("utf-8")) <= MAX_DISABLED_BY_BYTES:
        problems.append(f"{path}.by: invalid_value")
    if isinstance(disabled.get("reason"), str) and len(disabled["reason"].encode("utf-8")) > MAX_DISABLED_REASON_BYTES:
        problems.append(f"{path}.reason: invalid_value")
    if "evidence" in disabled and not isinstance(disabled["evidence"], dict):
        problems.append(f"{path}.evidence: wrong_type")
    return problems


# --------------------------------------------------------------------------------------------------
# Vector generation
# --------------------------------------------------------------------------------------------------


def dumps(document: Json) -> str:
    """The on-disk form of every vector file."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def find_unit(prefix: str, accept: Callable[[str], bool], limit: int = 2_000_000) -> str:
    """The first unit ``prefix + n`` (n = 0, 1, ...) that ``accept`` accepts. Deterministic."""
    for n in range(limit):
        unit = f"{prefix}{n}"
        if accept(unit):
            return unit
    raise LookupError(f"no unit with prefix {prefix!r} found in {limit} tries")


VARIANT_SETS: list[list[dict[str, Json]]] = [
    [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}],
    [{"name": "a", "weight": 33.33}, {"name": "b", "weight": 33.33}, {"name": "c", "weight": 33.34}],
    [{"name": "control", "weight": 70}, {"name": "concise", "weight": 20}, {"name": "verbose", "weight": 10}],
    [
        {"name": "control", "weight": 10},
        {"name": "v1", "weight": 15.5},
        {"name": "v2", "weight": 24.5},
        {"name": "v3", "weight": 30},
        {"name": "v4", "weight": 20},
    ],
    [{"name": "control", "weight": 50}, {"name": "retired", "weight": 0}, {"name": "treatment", "weight": 50}],
    [{"name": "off", "weight": 0}, {"name": "control", "weight": 60}, {"name": "on", "weight": 40}],
    [{"name": "control", "weight": 99.99}, {"name": "canary", "weight": 0.01}, {"name": "never", "weight": 0}],
]

EXPOSURES: list[Number] = [0, 0.01, 10, 50, 99.99, 100]

SALTS: list[str] = [
    "checkout-prompt-2026-11",
    "salt with spaces",
    "sél ✓ 塩 🧂",
    "s",
    "塩" * 85 + "!",  # 256 bytes of UTF-8 (86 characters): valid whether the limit counts bytes or characters
    "S" * MAX_SALT_CHARS,  # 256 characters = 256 bytes
    "agent-flags/v2 (retry #3)",
]

UNITS: list[str] = [
    "user-42",
    "a",  # 1 byte
    "0",
    " ",  # a single space is a valid unit
    "\t",
    "\u0001",
    "42",
    "-1",
    "null",
    "true",
    "ユーザー-7",
    "émile",  # precomposed U+00E9
    "e\u0301mile",  # decomposed: e + U+0301, different bytes, so a different unit (no normalisation)
    "🙂",
    "👩‍💻-dev",  # ZWJ sequence
    "Ünïcödé ünit",
    "alice@example.com",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "line\nbreak",
    "quote\"and\\backslash",
    "x" * MAX_UNIT_BYTES,  # 1024 ASCII bytes
    "é" * (MAX_UNIT_BYTES // 2),  # 512 two-byte characters = 1024 bytes
    "🙂" * (MAX_UNIT_BYTES // 4),  # 256 four-byte characters = 1024 bytes
    "session:2026-11-23T12:00:00Z",
    "device-" + "0123456789abcdef" * 4,
]


def assignment_case(
    salt: str, unit: str, exposure: Number, variants: list[dict[str, Json]], note: Optional[str] = None
) -> dict[str, Json]:
    result = assign(salt, unit, exposure, [v["weight"] for v in variants])
    hashed = variants[result.hashed_variant]["name"]
    case: dict[str, Json] = {}
    if note is not None:
        case["note"] = note
    case.update(
        {
            "salt": salt,
            "unit": unit,
            "exposure": exposure,
            "variants": variants,
            "expected": {
                "exposure_bucket": result.exposure_bucket,
                "variant_bucket": result.variant_bucket,
                "enrolled": result.enrolled,
                "hashed_variant": hashed,
                "variant": hashed if result.enrolled else None,
            },
        }
    )
    return case


def _edge_assignment_cases() -> list[dict[str, Json]]:
    """Cases found by deterministic search that sit exactly on bucket boundaries."""
    salt = "edge-salt"
    two, thirds, canary = VARIANT_SETS[0], VARIANT_SETS[1], VARIANT_SETS[6]
    exposure_is = lambda b: lambda u: bucket(salt, EXPOSURE_LABEL, u) == b  # noqa: E731
    variant_is = lambda b: lambda u: bucket(salt, VARIANT_LABEL, u) == b  # noqa: E731
    edges = [
        ("exposure bucket 0 is enrolled at exposure 0.01", exposure_is(0), 0.01, two),
        ("exposure bucket 0 is not enrolled at exposure 0", exposure_is(0), 0, two),
        ("exposure bucket 1 is not enrolled at exposure 0.01", exposure_is(1), 0.01, two),
        ("exposure bucket 4999 is enrolled at exposure 50", exposure_is(4999), 50, two),
        ("exposure bucket 5000 is not enrolled at exposure 50 (strictly less than)", exposure_is(5000), 50, two),
        ("exposure bucket 9998 is enrolled at exposure 99.99", exposure_is(9998), 99.99, two),
        ("exposure bucket 9999 is not enrolled at exposure 99.99", exposure_is(9999), 99.99, two),
        ("exposure bucket 9999 is enrolled at exposure 100", exposure_is(9999), 100, two),
        ("variant bucket 0 gets the first variant", variant_is(0), 100, two),
        ("variant bucket 4999 is the last bucket of control at 50/50", variant_is(4999), 100, two),
        ("variant bucket 5000 is the first bucket of treatment at 50/50", variant_is(5000), 100, two),
        ("variant bucket 3332 is the last bucket of a at 33.33", variant_is(3332), 100, thirds),
        ("variant bucket 3333 is the first bucket of b at 33.33", variant_is(3333), 100, thirds),
        ("variant bucket 6665 is the last bucket of b", variant_is(6665), 100, thirds),
        ("variant bucket 6666 is the first bucket of c", variant_is(6666), 100, thirds),
        ("variant bucket 9998 is the last bucket of control at 99.99", variant_is(9998), 100, canary),
        ("variant bucket 9999 is the only bucket of canary (0.01); never (0) is never chosen", variant_is(9999),
         100, canary),
    ]
    return [
        assignment_case(salt, find_unit("edge-", accept), exposure, variants, note)
        for note, accept, exposure, variants in edges
    ]


def generate_assignment_vectors() -> dict[str, Json]:
    cases: list[dict[str, Json]] = []
    combinations = [(s, v, e) for s in SALTS for v in VARIANT_SETS for e in EXPOSURES]
    for i, (salt, variants, exposure) in enumerate(combinations):
        cases.append(assignment_case(salt, UNITS[i % len(UNITS)], exposure, variants))
    # The same units under raising exposure: enrolment only grows, the hashed variant never moves.
    for unit in UNITS[:8]:
        for exposure in (0, 10, 50, 100):
            cases.append(assignment_case("monotonic", unit, exposure, VARIANT_SETS[2]))
    cases.extend(_edge_assignment_cases())
    return {
        "description": (
            "variantd bucketing vectors. For each case: exposure_bucket = bucket(salt, \"exposure\", unit), "
            "variant_bucket = bucket(salt, \"variant\", unit), where bucket = first 8 bytes (big-endian uint64) of "
            "SHA-256(UTF-8(salt) || 0x00 || ASCII(label) || 0x00 || UTF-8(unit)) mod 10000; enrolled = "
            "exposure_bucket < bp(exposure); hashed_variant = the first variant, in order, whose running sum of "
            "bp(weight) is greater than variant_bucket (reported even when not enrolled); variant = hashed_variant "
            "when enrolled, else null. bp(x) = round(x * 100). Units and salts are compared and hashed as given: "
            "no Unicode normalisation. 'note', when present, is for humans. Generated by "
            "protocol/reference/variantd_reference.py; do not edit by hand."
        ),
        "algorithm": "see PROTOCOL.md section 2",
        "cases": cases,
    }


NOW = "2026-11-23T12:00:00Z"

DECISION_CONFIG: dict[str, Json] = {
    "schema_version": 1,
    "prompts": {
        "checkout": {
            "description": "System prompt of the checkout assistant",
            "versions": [
                {"version": 1, "template": "You are a helpful checkout assistant. Greet {{name}}.",
                 "variables": {"required": ["name"], "optional": []}},
                {"version": 2, "template": "You are a concise checkout assistant. Greet {{name}} in {{tone}} tone.",
                 "variables": {"required": ["name"], "optional": ["tone"]}},
            ],
        },
        "support": {
            "description": "Support agent persona",
            "versions": [
                {"version": 1, "template": "You are a support agent for {{product}}.",
                 "variables": {"required": ["product"], "optional": []}},
                {"version": 2,
                 "template": "You are a formal support agent for {{product}}. Address {{customer}} formally.",
                 "variables": {"required": ["product", "customer"], "optional": []}},
                {"version": 3, "template": "You are a friendly support agent for {{product}}! {{emoji}}",
                 "variables": {"required": ["product"], "optional": ["emoji"]},
                 "description": "friendlier tone"},
            ],
        },
        "agent": {
            "versions": [
                {"version": 1, "template": "Plan the task step by step, then act."},
                {"version": 2, "template": "Act directly; use tools when {{tool_policy}} allows.",
                 "variables": {"required": [], "optional": ["tool_policy"]}},
            ],
        },
        "summary": {
            "versions": [
                {"version": 1, "template": "Summarise: {{text}}",
                 "variables": {"required": ["text"], "optional": []}},
                {"version": 3, "template": "Summarise the whole document in {{words}} words: {{text}}",
                 "variables": {"required": ["text", "words"], "optional": []}},
            ],
        },
        "greeting": {
            "versions": [
                {"version": 1, "template": "Hello!"},
                {"version": 2, "template": "Hi {{first_name}}, welcome back.",
                 "variables": {"required": [], "optional": ["first_name"]}},
            ],
        },
        "onboarding": {
            "versions": [
                {"version": 1, "template": "Walk the user through setup."},
                {"version": 2, "template": "Ask one question at a time while setting up {{product}}.",
                 "variables": {"required": ["product"], "optional": []}},
            ],
        },
        "home.v-2_beta": {
            "description": "a prompt name using every allowed punctuation character",
            "versions": [
                {"version": 1, "template": "Home page copy, classic."},
                {"version": 2, "template": "Home page copy, new flow."},
                {"version": 7, "template": "Home page copy, retired experiment."},
            ],
        },
    },
    "experiments": [
        {
            "name": "summary-shadow",
            "salt": "summary-shadow-2026",
            "status": "running",
            "mode": "shadow",
            "variants": [
                {"name": "control", "control": True, "weight": 50, "prompt": "checkout", "prompt_version": 1},
                {"name": "long-summary", "weight": 50, "prompt": "checkout", "prompt_version": 2},
            ],
        },
        {
            "name": "checkout-prompt",
            "description": "the example of PROTOCOL.md: a window, targeting with in, exposure 100",
            "salt": "checkout-prompt-2026-11",
            "status": "running",
            "start": "2026-11-01T00:00:00Z",
            "end": "2027-01-31T00:00:00Z",
            "exposure": 100,
            "targeting": [{"attribute": "country", "op": "in", "values": ["US", "CA"]}],
            "variants": [
                {"name": "control", "control": True, "weight": 50, "prompt": "checkout", "prompt_version": 1},
                {"name": "concise", "weight": 50, "prompt": "checkout", "prompt_version": 2,
                 "params": {"model": "gpt-4o-mini", "temperature": 0.2}},
            ],
        },
        {
            "name": "support-tone",
            "description": "3 variants, control not first, exposure below 100, window given with offsets",
            "salt": "support tone ✓ 2026",
            "status": "running",
            "start": "2026-11-01T09:00:00+09:00",
            "end": "2026-12-31T19:00:00-05:00",
            "exposure": 40,
            "targeting": [{"attribute": "channel", "op": "ne", "value": "email"}],
            "variants": [
                {"name": "formal", "weight": 20, "prompt": "support", "prompt_version": 2},
                {"name": "control", "control": True, "weight": 70, "prompt": "support", "prompt_version": 1},
                {"name": "friendly", "weight": 10, "prompt": "support", "prompt_version": 3,
                 "params": {"temperature": 0.9}},
            ],
        },
        {
            "name": "agent-flags",
            "description": "every targeting op; no window; exposure absent (defaults to 100)",
            "salt": "agent-flags",
            "status": "running",
            "targeting": [
                {"attribute": "plan", "op": "eq", "value": "pro"},
                {"attribute": "beta", "op": "eq", "value": True},
                {"attribute": "seats", "op": "eq", "value": 1},
                {"attribute": "region", "op": "ne", "value": "eu-west"},
                {"attribute": "tier", "op": "in", "values": [1, 2, 3]},
                {"attribute": "country", "op": "not_in", "values": ["CN", "RU"]},
                {"attribute": "age", "op": "gte", "value": 18},
                {"attribute": "age", "op": "lt", "value": 65},
                {"attribute": "score", "op": "gt", "value": 0.5},
                {"attribute": "score", "op": "lte", "value": 1},
            ],
            "variants": [
                {"name": "control", "control": True, "weight": 50, "prompt": "agent", "prompt_version": 1,
                 "params": {"planner": True, "max_steps": 12}},
                {"name": "direct", "weight": 50, "prompt": "agent", "prompt_version": 2,
                 "params": {"planner": False, "max_steps": 4, "tools": ["search", "calculator"]}},
            ],
        },
        {
            "name": "summary-model",
            "description": "completed: everyone gets the winner, whatever the window, targeting or exposure",
            "salt": "summary-model",
            "status": "completed",
            "start": "2026-09-01T00:00:00Z",
            "end": "2026-10-01T00:00:00Z",
            "exposure": 10,
            "targeting": [{"attribute": "plan", "op": "eq", "value": "enterprise"}],
            "variants": [
                {"name": "control", "control": True, "weight": 50, "prompt": "summary", "prompt_version": 1},
                {"name": "long-context", "weight": 50, "prompt": "summary", "prompt_version": 3,
                 "params": {"model": "long-context-model"}},
            ],
            "winner": "long-context",
        },
        {
            "name": "greeting-draft",
            "salt": "greeting-draft",
            "status": "draft",
            "variants": [
                {"name": "plain", "weight": 50, "prompt": "greeting", "prompt_version": 1},
                {"name": "personal", "control": True, "weight": 50, "prompt": "greeting", "prompt_version": 2},
            ],
        },
        {
            "name": "onboarding-paused",
            "salt": "onboarding-paused",
            "status": "paused",
            "start": "2026-11-01T00:00:00Z",
            "end": "2026-12-01T00:00:00Z",
            "exposure": 0,
            "targeting": [{"attribute": "new_user", "op": "eq", "value": True}],
            "variants": [
                {"name": "control", "control": True, "weight": 50, "prompt": "onboarding", "prompt_version": 1},
                {"name": "one-question", "weight": 50, "prompt": "onboarding", "prompt_version": 2},
            ],
        },
        {
            "name": "home.v-2_beta",
            "description": "no targeting, no window, a zero-weight variant that is never chosen",
            "salt": "home",
            "status": "running",
            "exposure": 100,
            "variants": [
                {"name": "control", "control": True, "weight": 50, "prompt": "home.v-2_beta", "prompt_version": 1},
                {"name": "retired", "weight": 0, "prompt": "home.v-2_beta", "prompt_version": 7},
                {"name": "new-flow", "weight": 50, "prompt": "home.v-2_beta", "prompt_version": 2},
            ],
        },
        {
            "name": "reply-judged",
            "description": "a treatment the document disables, as variantd-judge writes it: its units get the control",
            "salt": "reply-judged-2026",
            "status": "running",
            "exposure": 60,
            "targeting": [{"attribute": "plan", "op": "ne", "value": "free"}],
            "guardrails": {"scope": "fleet"},
            "variants": [
                {"name": "control", "control": True, "weight": 40, "prompt": "support", "prompt_version": 1},
                {"name": "terse", "weight": 30, "prompt": "support", "prompt_version": 2,
                 "disabled": {"at": "2026-11-20T08:30:00Z", "by": "variantd-judge@judge-1",
                              "reason": "error rate 6.1 points above the control's on 12 hosts",
                              "evidence": {"metric": "error_rate", "hosts": 12, "control": 0.031, "treatment": 0.092,
                                           "p_value": 0.0004}}},
                {"name": "warm", "weight": 30, "prompt": "support", "prompt_version": 3},
            ],
        },
        {
            "name": "summary-shadow-judged",
            "description": "shadow mode with its treatment disabled by the document: nothing runs in the shadow",
            "salt": "summary-shadow-judged",
            "status": "running",
            "mode": "shadow",
            "variants": [
                {"name": "control", "control": True, "weight": 50, "prompt": "summary", "prompt_version": 1},
                {"name": "long", "weight": 50, "prompt": "summary", "prompt_version": 3,
                 "disabled": {"at": "2026-11-21T00:00:00+01:00", "by": "ops@example.com", "reason": "too slow"}},
            ],
        },
    ],
}

AGENT_ATTRIBUTES: dict[str, Scalar] = {
    "plan": "pro",
    "beta": True,
    "seats": 1,
    "region": "us-east",
    "tier": 2,
    "country": "US",
    "age": 30,
    "score": 0.75,
}


def _experiment(name: str) -> Mapping[str, Json]:
    return next(e for e in DECISION_CONFIG["experiments"] if e["name"] == name)


class _DecisionCases:
    """Builds decision cases; every case states the reason it is meant to show, checked at generation."""

    def __init__(self) -> None:
        self.cases: list[dict[str, Json]] = []

    def add(
        self,
        note: str,
        experiment: str,
        unit: str,
        attributes: Optional[Mapping[str, Scalar]],
        want: str,
        now: str = NOW,
        want_variant: Optional[str] = None,
    ) -> None:
        decision = decide(_experiment(experiment), unit, attributes, now)
        if decision.reason != want or (want_variant is not None and decision.variant != want_variant):
            raise AssertionError(f"{note}: wanted {want}/{want_variant}, reference says {decision}")
        request: dict[str, Json] = {"experiment": experiment, "unit": unit}
        if attributes is not None:
            request["attributes"] = dict(attributes)
        self.cases.append({"note": note, "now": now, "request": request, "expected": decision.to_json()})

    @staticmethod
    def unit_for(experiment: str, prefix: str, want_variant: str, want_reason: str = "assigned",
                 attributes: Optional[Mapping[str, Scalar]] = None, now: str = NOW) -> str:
        """The first ``prefix<n>`` unit that the reference decides as (want_reason, want_variant)."""
        def accept(unit: str) -> bool:
            decision = decide(_experiment(experiment), unit, attributes, now)
            return decision.reason == want_reason and decision.variant == want_variant
        return find_unit(prefix, accept)


def generate_decision_vectors() -> dict[str, Json]:
    c = _DecisionCases()

    # checkout-prompt: window [2026-11-01T00:00:00Z, 2027-01-31T00:00:00Z), country in [US, CA], exposure 100.
    us = {"country": "US"}
    checkout_control = c.unit_for("checkout-prompt", "user-", "control", attributes=us)
    checkout_concise = c.unit_for("checkout-prompt", "user-", "concise", attributes=us)
    c.add("in: US matches; hashed to control", "checkout-prompt", checkout_control, us, "assigned",
          want_variant="control")
    c.add("in: US matches; hashed to concise", "checkout-prompt", checkout_concise, us, "assigned",
          want_variant="concise")
    c.add("in: CA (second value) matches", "checkout-prompt", checkout_concise, {"country": "CA"}, "assigned")
    c.add("in: MX is not in the list", "checkout-prompt", checkout_concise, {"country": "MX"}, "not_targeted")
    c.add("in: strings compare exactly, 'us' is not 'US'", "checkout-prompt", checkout_concise, {"country": "us"},
          "not_targeted")
    c.add("in: missing attribute matches no rule", "checkout-prompt", checkout_concise, {"plan": "pro"}, "not_targeted")
    c.add("in: no attributes at all", "checkout-prompt", checkout_concise, None, "not_targeted")
    c.add("now exactly equal to start: enrolled", "checkout-prompt", checkout_concise, us, "assigned",
          now="2026-11-01T00:00:00Z", want_variant="concise")
    c.add("now equal to start, written with an offset", "checkout-prompt", checkout_concise, us, "assigned",
          now="2026-11-01T01:00:00+01:00", want_variant="concise")
    c.add("1 ms before start", "checkout-prompt", checkout_concise, us, "not_started", now="2026-10-31T23:59:59.999Z")
    c.add("before start wins over not_targeted", "checkout-prompt", checkout_concise, {"country": "MX"},
          "not_started", now="2026-10-01T00:00:00Z")
    c.add("1 microsecond before end: still running", "checkout-prompt", checkout_concise, us, "assigned",
          now="2027-01-30T23:59:59.999999Z", want_variant="concise")
    c.add("now exactly equal to end: ended (end is exclusive)", "checkout-prompt", checkout_concise, us, "ended",
          now="2027-01-31T00:00:00Z")
    c.add("after end wins over not_targeted", "checkout-prompt", checkout_control, {"country": "MX"}, "ended",
          now="2027-06-01T00:00:00Z")

    # support-tone: 3 variants (formal 20, control 70, friendly 10), exposure 40, channel ne email,
    # window [2026-11-01T00:00:00Z, 2027-01-01T00:00:00Z) written with +09:00 and -05:00 offsets.
    chat = {"channel": "chat"}
    formal = c.unit_for("support-tone", "customer-", "formal", attributes=chat)
    control = c.unit_for("support-tone", "customer-", "control", attributes=chat)
    friendly = c.unit_for("support-tone", "customer-", "friendly", attributes=chat)
    unexposed = c.unit_for("support-tone", "customer-", "control", "outside_exposure", attributes=chat)
    c.add("3 variants: first variant (formal, 20)", "support-tone", formal, chat, "assigned", want_variant="formal")
    c.add("3 variants: control is the second variant", "support-tone", control, chat, "assigned",
          want_variant="control")
    c.add("3 variants: last variant (friendly, 10)", "support-tone", friendly, chat, "assigned",
          want_variant="friendly")
    unexposed_too = c.unit_for("support-tone", "session-", "control", "outside_exposure", attributes=chat)
    c.add("exposure 40: this unit's exposure bucket is >= 4000", "support-tone", unexposed, chat, "outside_exposure")
    c.add("exposure 40: another unit not exposed, at exactly the start", "support-tone", unexposed_too, chat,
          "outside_exposure", now="2026-11-01T00:00:00Z")
    c.add("ne: email equals the rule value, no match", "support-tone", friendly, {"channel": "email"}, "not_targeted")
    c.add("not_targeted comes before outside_exposure", "support-tone", unexposed, {"channel": "email"}, "not_targeted")
    c.add("ne: missing attribute matches no rule", "support-tone", friendly, {"locale": "fr-FR"}, "not_targeted")
    c.add("ne: no attributes at all", "support-tone", friendly, None, "not_targeted")
    c.add("start given as 09:00+09:00; now equal to it in Z: enrolled", "support-tone", friendly, chat, "assigned",
          now="2026-11-01T00:00:00Z", want_variant="friendly")
    c.add("one second before the offset start", "support-tone", friendly, chat, "not_started",
          now="2026-10-31T23:59:59Z")
    c.add("not_started comes before outside_exposure", "support-tone", unexposed, chat, "not_started",
          now="2026-10-31T08:00:00-05:00")
    c.add("end given as 19:00-05:00; now equal to it in Z: ended", "support-tone", friendly, chat, "ended",
          now="2027-01-01T00:00:00Z")
    c.add("half a second before the offset end", "support-tone", formal, chat, "assigned",
          now="2026-12-31T23:59:59.5Z", want_variant="formal")
    c.add("now with a lowercase t and z", "support-tone", formal, chat, "assigned", now="2026-11-23t12:00:00z",
          want_variant="formal")

    # agent-flags: every op, all rules must match. AGENT_ATTRIBUTES matches all of them.
    base = AGENT_ATTRIBUTES
    agent_control = c.unit_for("agent-flags", "agent-", "control", attributes=base)
    agent_direct = c.unit_for("agent-flags", "agent-", "direct", attributes=base)
    unit = agent_direct

    def with_(**changes: Scalar) -> dict[str, Scalar]:
        return {**base, **changes}

    def without(name: str) -> dict[str, Scalar]:
        return {k: v for k, v in base.items() if k != name}

    c.add("every rule matches; hashed to control", "agent-flags", agent_control, base, "assigned",
          want_variant="control")
    c.add("every rule matches; hashed to direct", "agent-flags", agent_direct, base, "assigned",
          want_variant="direct")
    c.add("extra attributes no rule mentions are ignored", "agent-flags", unit,
          with_(browser="firefox", experiment_count=3), "assigned")
    c.add("eq string: 'free' is not 'pro'", "agent-flags", unit, with_(plan="free"), "not_targeted")
    c.add("eq string: case matters, 'Pro' is not 'pro'", "agent-flags", unit, with_(plan="Pro"), "not_targeted")
    c.add("eq bool: false is not true", "agent-flags", unit, with_(beta=False), "not_targeted")
    c.add("eq bool: the number 1 is not true", "agent-flags", unit, with_(beta=1), "not_targeted")
    c.add("eq bool: the string 'true' is not true", "agent-flags", unit, with_(beta="true"), "not_targeted")
    c.add("eq number: 1.0 equals 1 (numbers compare by value)", "agent-flags", unit, with_(seats=1.0), "assigned")
    c.add("eq number: 2 is not 1", "agent-flags", unit, with_(seats=2), "not_targeted")
    c.add("eq number: the bool true is not the number 1", "agent-flags", unit, with_(seats=True), "not_targeted")
    c.add("eq number: the string '1' is not the number 1", "agent-flags", unit, with_(seats="1"), "not_targeted")
    c.add("eq: missing attribute", "agent-flags", unit, without("plan"), "not_targeted")
    c.add("ne: eu-west equals the rule value, no match", "agent-flags", unit, with_(region="eu-west"), "not_targeted")
    c.add("ne: missing attribute matches no rule", "agent-flags", unit, without("region"), "not_targeted")
    c.add("ne: a number does not equal the string 'eu-west', so ne matches", "agent-flags", unit, with_(region=5),
          "assigned")
    c.add("in numbers: 4 is not in [1, 2, 3]", "agent-flags", unit, with_(tier=4), "not_targeted")
    c.add("in numbers: 2.0 is in [1, 2, 3] by value", "agent-flags", unit, with_(tier=2.0), "assigned")
    c.add("in numbers: 3 (last value) matches", "agent-flags", unit, with_(tier=3), "assigned")
    c.add("in numbers: the bool true is not the number 1", "agent-flags", unit, with_(tier=True), "not_targeted")
    c.add("in numbers: the string '2' is not the number 2", "agent-flags", unit, with_(tier="2"), "not_targeted")
    c.add("not_in: CN is in the list, no match", "agent-flags", unit, with_(country="CN"), "not_targeted")
    c.add("not_in: RU (last value) is in the list, no match", "agent-flags", unit, with_(country="RU"), "not_targeted")
    c.add("not_in: 'cn' is not 'CN', so not_in matches", "agent-flags", unit, with_(country="cn"), "assigned")
    c.add("not_in: missing attribute matches no rule", "agent-flags", unit, without("country"), "not_targeted")
    c.add("gte: 18 >= 18 matches", "agent-flags", unit, with_(age=18), "assigned")
    c.add("gte: 17 < 18, no match", "agent-flags", unit, with_(age=17), "not_targeted")
    c.add("gte: 17.99 < 18, no match", "agent-flags", unit, with_(age=17.99), "not_targeted")
    c.add("lt: 64.99 < 65 matches", "agent-flags", unit, with_(age=64.99), "assigned")
    c.add("lt: 65 is not < 65", "agent-flags", unit, with_(age=65), "not_targeted")
    c.add("lt/gte: the string '30' is not a number", "agent-flags", unit, with_(age="30"), "not_targeted")
    c.add("lt/gte: the bool true is not a number", "agent-flags", unit, with_(age=True), "not_targeted")
    c.add("gt: 0.5 is not > 0.5", "agent-flags", unit, with_(score=0.5), "not_targeted")
    c.add("gt: 0.5000001 > 0.5 matches", "agent-flags", unit, with_(score=0.5000001), "assigned")
    c.add("lte: 1 <= 1 matches (integer attribute)", "agent-flags", unit, with_(score=1), "assigned")
    c.add("lte: 1.01 is not <= 1", "agent-flags", unit, with_(score=1.01), "not_targeted")
    c.add("gt/lte: the bool false is not a number", "agent-flags", unit, with_(score=False), "not_targeted")
    c.add("gt/lte: missing attribute", "agent-flags", unit, without("score"), "not_targeted")
    c.add("every rule is checked: only the last rule (score lte 1) fails", "agent-flags", unit, with_(score=2),
          "not_targeted")
    c.add("empty attributes object", "agent-flags", unit, {}, "not_targeted")

    # summary-model: completed, winner long-context (not the control).
    c.add("completed: the winner, though the unit is not targeted", "summary-model", "user-42", {"plan": "free"},
          "completed", want_variant="long-context")
    c.add("completed: the winner, with no attributes", "summary-model", "ユーザー-7", None, "completed",
          want_variant="long-context")
    c.add("completed: the winner, before the (past) start", "summary-model", "émile", {"plan": "enterprise"},
          "completed", now="2026-01-01T00:00:00Z", want_variant="long-context")

    # greeting-draft: draft; control is the second variant.
    c.add("draft: control (the variant marked control, not the first)", "greeting-draft", "user-42", None, "draft",
          want_variant="personal")
    c.add("draft: control whatever the attributes", "greeting-draft", "🙂", {"plan": "pro", "beta": True}, "draft",
          want_variant="personal")

    # onboarding-paused: paused, exposure 0, window.
    c.add("paused: control, inside the window", "onboarding-paused", "user-42", {"new_user": True}, "paused",
          want_variant="control")
    c.add("paused: control, after the window (status comes first)", "onboarding-paused", "user-42",
          {"new_user": False}, "paused", now="2027-03-01T00:00:00Z", want_variant="control")

    # home.v-2_beta: no targeting, no window, a zero-weight variant.
    home_control = c.unit_for("home.v-2_beta", "visitor-", "control")
    home_new = c.unit_for("home.v-2_beta", "visitor-", "new-flow")
    c.add("no targeting: no attributes needed; control", "home.v-2_beta", home_control, None, "assigned",
          want_variant="control")
    c.add("no targeting: new-flow (after the zero-weight variant)", "home.v-2_beta", home_new, None, "assigned",
          want_variant="new-flow")
    c.add("no targeting: attributes are ignored", "home.v-2_beta", home_new, {"country": "CN"}, "assigned",
          want_variant="new-flow")
    c.add("no targeting: empty attributes", "home.v-2_beta", home_control, {}, "assigned", want_variant="control")
    c.add("1-byte unit", "home.v-2_beta", "a", None, "assigned")
    c.add("1024-byte unit", "home.v-2_beta", "é" * (MAX_UNIT_BYTES // 2), None, "assigned")

    # summary-shadow: mode shadow, 50/50; everyone gets the control, half run the treatment in the shadow.
    def shadow_unit(want: Optional[str]) -> str:
        return find_unit("reader-", lambda unit: decide(_experiment("summary-shadow"), unit, None, NOW).shadow == want)
    c.add("shadow mode: hashed to the treatment, served the control, shadow names the treatment", "summary-shadow",
          shadow_unit("long-summary"), None, "shadow", want_variant="control")
    c.add("shadow mode: hashed to the control, no shadow to run", "summary-shadow", shadow_unit(None), None, "shadow",
          want_variant="control")
    c.add("shadow mode: another unit hashed to the treatment", "summary-shadow",
          find_unit("session-", lambda unit: decide(_experiment("summary-shadow"), unit, None, NOW).shadow is not None),
          None, "shadow", want_variant="control")

    # reply-judged: the document disables terse (control 40, terse 30, warm 30), exposure 60, plan ne free.
    judged = _experiment("reply-judged")
    pro = {"plan": "pro"}

    def hashed_to(name: str, enrolled: bool) -> Callable[[str], bool]:
        weights = [v["weight"] for v in judged["variants"]]
        return lambda unit: (
            judged["variants"][variant_index(bucket(judged["salt"], VARIANT_LABEL, unit), weights)]["name"] == name
            and is_enrolled(bucket(judged["salt"], EXPOSURE_LABEL, unit), judged["exposure"]) == enrolled)

    terse = find_unit("member-", hashed_to("terse", True))
    c.add("disabled by the document: a unit hashed to terse gets the control", "reply-judged", terse, pro,
          "disabled", want_variant="control")
    c.add("disabled by the document: another unit hashed to terse", "reply-judged",
          find_unit("account-", hashed_to("terse", True)), pro, "disabled", want_variant="control")
    c.add("disabled by the document: the other treatment still serves", "reply-judged",
          find_unit("member-", hashed_to("warm", True)), pro, "assigned", want_variant="warm")
    c.add("disabled by the document: the control still serves", "reply-judged",
          find_unit("member-", hashed_to("control", True)), pro, "assigned", want_variant="control")
    c.add("outside_exposure comes before disabled", "reply-judged", find_unit("member-", hashed_to("terse", False)), pro,
          "outside_exposure", want_variant="control")
    c.add("not_targeted comes before disabled", "reply-judged", terse, {"plan": "free"}, "not_targeted",
          want_variant="control")

    # summary-shadow-judged: shadow mode, its only treatment disabled by the document.
    def shadow_judged_unit(want: str) -> str:
        shadow = _experiment("summary-shadow-judged")
        weights = [v["weight"] for v in shadow["variants"]]
        return find_unit("reader-", lambda unit: shadow["variants"][
            variant_index(bucket(shadow["salt"], VARIANT_LABEL, unit), weights)]["name"] == want)
    c.add("shadow mode: hashed to a treatment the document disables, no shadow to run", "summary-shadow-judged",
          shadow_judged_unit("long"), None, "shadow", want_variant="control")
    c.add("shadow mode with a disabled treatment: hashed to the control", "summary-shadow-judged",
          shadow_judged_unit("control"), None, "shadow", want_variant="control")

    return {
        "description": (
            "variantd decision vectors: decide(config.experiments[request.experiment], request.unit, "
            "request.attributes, now) must give expected (variant, the variant's prompt and prompt_version, "
            "enrolled, reason) following the decision order of PROTOCOL.md section 2 (a variant with "
            "'disabled' is a treatment the document disables: reason 'disabled'). 'now' is the daemon's clock at "
            "the time of the request. A request without 'attributes' has none. "
            "'note' is for humans. Generated by protocol/reference/variantd_reference.py; do not edit by hand."
        ),
        "config": DECISION_CONFIG,
        "cases": c.cases,
    }


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def rendered_vectors() -> dict[Path, str]:
    return {
        ASSIGNMENT_PATH: dumps(generate_assignment_vectors()),
        DECISIONS_PATH: dumps(generate_decision_vectors()),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="(Re)generate the variantd test vectors.")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if a file differs")
    args = parser.parse_args(argv)
    drifted = []
    for path, text in rendered_vectors().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            print(f"unchanged {path}")
        elif args.check:
            drifted.append(path)
            print(f"DIFFERS   {path}", file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote     {path}")
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
