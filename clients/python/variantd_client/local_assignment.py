"""The daemon's assignment (PROTOCOL.md section 2) computed in the client, for offline checks and tests: the
buckets, the weights in basis points, and the decision order."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Mapping, Optional, Sequence, Union

from .answers import Assignment, Json, Scalar

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

    ``config`` is a (valid) configuration document; ``now`` defaults to the current time. A treatment the document
    disables (``"disabled"`` on its variant) gives reason ``disabled``; one an operator or a guardrail disabled on a
    host is that daemon's state, not known here. Raises KeyError for an unknown experiment and ValueError for an
    invalid unit.
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
    index, enrolled, reason, shadow_index = control, False, "assigned", None
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
        reason = "outside_exposure"
    else:
        hashed = variant_index(bucket(found["salt"], "variant", unit), [v["weight"] for v in variants])
        disabled = "disabled" in variants[hashed]  # never the control
        enrolled = True
        if found.get("mode") == "shadow":
            reason, shadow_index = "shadow", (None if hashed == control or disabled else hashed)
        elif disabled:
            enrolled, reason = False, "disabled"
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
        enrolled=enrolled,
        reason=reason,
        config_version=None,
        metadata={"experiment": experiment, "variant": variant["name"], "prompt": variant["prompt"], "prompt_version": variant["prompt_version"], "config_version": None},
        shadow=shadow,
    )
