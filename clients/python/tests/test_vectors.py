"""The shim's own bucketing and decision order pass the shared cross-language vectors (PROTOCOL.md section 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import VECTORS
from variantd_client import assign_locally, basis_points, bucket, variant_index

ASSIGNMENT = json.loads((VECTORS / "assignment.json").read_text(encoding="utf-8"))
DECISIONS = json.loads((VECTORS / "decisions.json").read_text(encoding="utf-8"))


def test_there_are_vectors() -> None:
    assert len(ASSIGNMENT["cases"]) >= 200
    assert len(DECISIONS["cases"]) >= 60


@pytest.mark.parametrize("case", ASSIGNMENT["cases"], ids=lambda c: f"{c['salt'][:20]}/{c['unit'][:16]!r}/{c['exposure']}")
def test_assignment_vector(case: Any) -> None:
    expected = case["expected"]
    exposure_bucket = bucket(case["salt"], "exposure", case["unit"])
    variant_bucket = bucket(case["salt"], "variant", case["unit"])
    assert exposure_bucket == expected["exposure_bucket"]
    assert variant_bucket == expected["variant_bucket"]
    enrolled = exposure_bucket < basis_points(case["exposure"])
    assert enrolled == expected["enrolled"]
    hashed = case["variants"][variant_index(variant_bucket, [v["weight"] for v in case["variants"]])]["name"]
    assert hashed == expected["hashed_variant"]
    assert (hashed if enrolled else None) == expected["variant"]


@pytest.mark.parametrize("case", DECISIONS["cases"], ids=lambda c: c["note"][:60])
def test_decision_vector(case: Any) -> None:
    request = case["request"]
    answer = assign_locally(DECISIONS["config"], request["experiment"], request["unit"], request.get("attributes"), case["now"])
    got = {
        "variant": answer.variant,
        "prompt": answer.prompt,
        "prompt_version": answer.prompt_version,
        "enrolled": answer.enrolled,
        "reason": answer.reason,
    }
    if "shadow" in case["expected"]:  # shadow mode: the treatment to run in the background, by name
        got["shadow"] = answer.shadow["variant"] if answer.shadow else None
    else:
        assert answer.shadow is None
    assert got == case["expected"]


@pytest.mark.parametrize("unit", ["", "a\x00b", "x" * 1025])
def test_assign_locally_rejects_invalid_units(unit: str) -> None:
    with pytest.raises(ValueError):
        assign_locally(DECISIONS["config"], "checkout-prompt", unit, {"country": "US"}, "2026-11-23T12:00:00Z")
