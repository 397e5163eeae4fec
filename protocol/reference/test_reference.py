"""Tests of the reference implementation, the committed vectors and config.schema.json.

Run from the repository root: python3 -m pytest protocol/reference -q
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from jsonschema import Draft202012Validator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import variantd_reference as ref  # noqa: E402

REPO = ref.PROTOCOL_DIR.parent
SCHEMA_PATH = ref.PROTOCOL_DIR / "config.schema.json"
EXAMPLE_PATH = REPO / "examples" / "variantd.json"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = load(SCHEMA_PATH)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def assignment_vectors() -> Any:
    return load(ref.ASSIGNMENT_PATH)


@pytest.fixture(scope="module")
def decision_vectors() -> Any:
    return load(ref.DECISIONS_PATH)


def errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


# --------------------------------------------------------------------------------------------------
# The committed vectors never drift from the reference
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, generate",
    [(ref.ASSIGNMENT_PATH, ref.generate_assignment_vectors), (ref.DECISIONS_PATH, ref.generate_decision_vectors)],
    ids=["assignment", "decisions"],
)
def test_committed_vectors_equal_regenerated(path: Path, generate: Callable[[], Any]) -> None:
    regenerated = generate()
    committed_text = path.read_text(encoding="utf-8")
    assert json.loads(committed_text) == regenerated, f"{path.name} drifted: run variantd_reference.py"
    assert committed_text == ref.dumps(regenerated), f"{path.name} is not in canonical form: run variantd_reference.py"


def test_vector_counts(assignment_vectors: Any, decision_vectors: Any) -> None:
    assert len(assignment_vectors["cases"]) >= 200
    assert len(decision_vectors["cases"]) >= 60


# --------------------------------------------------------------------------------------------------
# The algorithm, checked against an inline restatement of PROTOCOL.md section 2
# --------------------------------------------------------------------------------------------------


def test_bucket_matches_the_formula_literally() -> None:
    salt, unit = "sél ✓", "ユーザー-7"
    for label in ("exposure", "variant"):
        digest = hashlib.sha256(
            salt.encode("utf-8") + bytes([0]) + label.encode("ascii") + bytes([0]) + unit.encode("utf-8")
        ).digest()
        assert ref.bucket(salt, label, unit) == int.from_bytes(digest[:8], "big", signed=False) % 10000


def test_no_unicode_normalisation() -> None:
    precomposed, decomposed = "\u00e9mile", "e\u0301mile"
    assert ref.bucket("s", "variant", precomposed) != ref.bucket("s", "variant", decomposed)
    assert not ref.json_equal(precomposed, decomposed)


@pytest.mark.parametrize(
    "percent, expected",
    [(0, 0), (0.01, 1), (0.07, 7), (0.29, 29), (14.29, 1429), (33.33, 3333), (33.34, 3334), (50, 5000),
     (99.99, 9999), (100, 10000), (100.0, 10000), (15.5, 1550)],
)
def test_bp(percent: float, expected: int) -> None:
    assert ref.bp(percent) == expected
    assert ref.bp(percent) == int(round(percent * 100))


@pytest.mark.parametrize("bad", [0.001, 33.333, 0.1 + 0.2])
def test_bp_rejects_more_than_two_decimals(bad: float) -> None:
    with pytest.raises(ValueError):
        ref.bp(bad)


def test_bp_rejects_bool() -> None:
    with pytest.raises(TypeError):
        ref.bp(True)


@pytest.mark.parametrize("unit", ["", "a\x00b", "x" * 1025, "é" * 513])
def test_invalid_units(unit: str) -> None:
    with pytest.raises(ValueError):
        ref.bucket("salt", "variant", unit)


def test_valid_unit_limits() -> None:
    ref.bucket("salt", "variant", "x" * 1024)
    ref.bucket("salt", "variant", "é" * 512)
    ref.bucket("s", "variant", "\x01")


@pytest.mark.parametrize("salt", ["", "a\x00b", "s" * 257])
def test_invalid_salts(salt: str) -> None:
    with pytest.raises(ValueError):
        ref.bucket(salt, "variant", "unit")


def test_variant_index_running_sum() -> None:
    weights = [33.33, 33.33, 33.34]
    assert [ref.variant_index(b, weights) for b in (0, 3332, 3333, 6665, 6666, 9999)] == [0, 0, 1, 1, 2, 2]
    assert ref.variant_index(0, [0, 50, 50]) == 1  # a zero-weight variant is never chosen
    assert ref.variant_index(9999, [99.99, 0.01, 0]) == 1


def test_assignment_vectors_are_internally_consistent(assignment_vectors: Any) -> None:
    for case in assignment_vectors["cases"]:
        expected, variants = case["expected"], case["variants"]
        assert 0 <= expected["exposure_bucket"] < 10000 and 0 <= expected["variant_bucket"] < 10000
        assert expected["enrolled"] == (expected["exposure_bucket"] < round(case["exposure"] * 100))
        running, hashed = 0, None
        for variant in variants:
            running += round(variant["weight"] * 100)
            if running > expected["variant_bucket"]:
                hashed = variant["name"]
                break
        assert running <= 10000 and hashed == expected["hashed_variant"]
        assert expected["variant"] == (hashed if expected["enrolled"] else None)


def test_assignment_vectors_cover_the_brief(assignment_vectors: Any) -> None:
    cases = assignment_vectors["cases"]
    assert {0, 0.01, 10, 50, 99.99, 100} <= {c["exposure"] for c in cases}
    assert {len(c["variants"]) for c in cases} >= {2, 3, 5}
    assert any(v["weight"] == 0 for c in cases for v in c["variants"])
    units = {c["unit"] for c in cases}
    assert any(len(u.encode("utf-8")) == 1 for u in units)
    assert any(len(u.encode("utf-8")) == 1024 for u in units)
    assert any(not u.isascii() for u in units)
    assert any(" " in c["salt"] for c in cases) and any(not c["salt"].isascii() for c in cases)
    assert {True, False} == {c["expected"]["enrolled"] for c in cases}
    for variants in ref.VARIANT_SETS:
        hashed = {c["expected"]["hashed_variant"] for c in cases if c["variants"] == variants}
        assert hashed == {v["name"] for v in variants if v["weight"] > 0}, variants


def test_raising_exposure_only_adds_units() -> None:
    weights = [70, 20, 10]
    for n in range(2000):
        unit = f"mono-{n}"
        results = [ref.assign("monotonic", unit, e, weights) for e in (0, 0.01, 10, 33.33, 50, 99.99, 100)]
        enrolled = [r.enrolled for r in results]
        assert enrolled == sorted(enrolled)  # False... then True...
        assert len({r.hashed_variant for r in results}) == 1
        assert results[-1].enrolled and not results[0].enrolled


def test_statistical_sanity() -> None:
    units = [f"stat-unit-{n}" for n in range(20000)]
    variant_share = sum(ref.assign("stats", u, 100, [50, 50]).hashed_variant == 0 for u in units) / len(units)
    assert abs(variant_share - 0.5) <= 0.015
    exposed = [u for u in units if ref.assign("stats", u, 10, [50, 50]).enrolled]
    assert abs(len(exposed) / len(units) - 0.10) <= 0.01
    # the two labels are independent: among exposed units the split is still 50/50
    exposed_share = sum(ref.assign("stats", u, 10, [50, 50]).hashed_variant == 0 for u in exposed) / len(exposed)
    assert abs(exposed_share - 0.5) <= 0.05
    # different salts assign independently: agreement between two salts is about 50%
    agree = sum(ref.assign("salt-a", u, 100, [50, 50]).hashed_variant == ref.assign("salt-b", u, 100, [50, 50])
                .hashed_variant for u in units) / len(units)
    assert abs(agree - 0.5) <= 0.015
    thirds = [0, 0, 0]
    for u in units:
        thirds[ref.assign("stats", u, 100, [70, 20, 10]).hashed_variant] += 1
    for count, share in zip(thirds, (0.7, 0.2, 0.1)):
        assert abs(count / len(units) - share) <= 0.015


# --------------------------------------------------------------------------------------------------
# Targeting and timestamps
# --------------------------------------------------------------------------------------------------


def rule(op: str, operand: Any, attribute: str = "a") -> dict[str, Any]:
    return {"attribute": attribute, "op": op, ("values" if op in ("in", "not_in") else "value"): operand}


@pytest.mark.parametrize(
    "op, operand, actual, matches",
    [
        ("eq", 1, 1.0, True),
        ("eq", 1, True, False),
        ("eq", True, 1, False),
        ("eq", False, 0, False),
        ("eq", 0, False, False),
        ("eq", "1", 1, False),
        ("ne", 1, True, True),
        ("ne", 1, 1.0, False),
        ("in", [1, 2], True, False),
        ("in", [True], 1, False),
        ("in", [1, 2], 2.0, True),
        ("not_in", [1], True, True),
        ("not_in", [1], 1.0, False),
        ("lt", 1, True, False),
        ("gte", 0, False, False),
        ("gte", 0, "1", False),
        ("lte", 1, 1.0, True),
        ("gt", 0.5, 0.5, False),
    ],
)
def test_rule_types(op: str, operand: Any, actual: Any, matches: bool) -> None:
    assert ref.rule_matches(rule(op, operand), {"a": actual}) is matches


@pytest.mark.parametrize("op, operand", [(op, [1] if op in ("in", "not_in") else 1) for op in ref.OPS])
def test_missing_attribute_matches_no_rule(op: str, operand: Any) -> None:
    assert ref.rule_matches(rule(op, operand), {"b": 1}) is False


@pytest.mark.parametrize(
    "a, b",
    [
        ("2026-11-01T00:00:00Z", "2026-11-01T09:00:00+09:00"),
        ("2026-11-01T00:00:00Z", "2026-10-31T19:00:00-05:00"),
        ("2026-11-01T00:00:00Z", "2026-11-01t00:00:00z"),
        ("2026-11-01T00:00:00Z", "2026-11-01T00:00:00.000000000Z"),
        ("2026-11-01T00:00:00Z", "2026-11-01T00:00:00-00:00"),
    ],
)
def test_timestamps_equal(a: str, b: str) -> None:
    assert ref.parse_timestamp(a) == ref.parse_timestamp(b)


def test_timestamp_fractions_are_exact() -> None:
    assert ref.parse_timestamp("2026-11-01T00:00:00.000000001Z") > ref.parse_timestamp("2026-11-01T00:00:00Z")


@pytest.mark.parametrize(
    "bad",
    ["2026-11-01", "2026-11-01 00:00:00Z", "2026-11-01T00:00:00", "2026-02-30T00:00:00Z", "2026-11-01T24:00:00Z",
     "2026-12-31T23:59:60Z", "2026-11-01T00:00:00+24:00", "2026-11-01T00:00Z", "2026-11-01T00:00:00.Z"],
)
def test_timestamps_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        ref.parse_timestamp(bad)


# --------------------------------------------------------------------------------------------------
# Decision vectors
# --------------------------------------------------------------------------------------------------


def test_decision_vectors_cover_every_reason(decision_vectors: Any) -> None:
    assert {c["expected"]["reason"] for c in decision_vectors["cases"]} == set(ref.REASONS)


def test_decision_vectors_cover_every_op_matching_and_not(decision_vectors: Any) -> None:
    experiments = {e["name"]: e for e in decision_vectors["config"]["experiments"]}
    seen: set[tuple[str, bool]] = set()
    missing: set[str] = set()
    for case in decision_vectors["cases"]:
        experiment = experiments[case["request"]["experiment"]]
        attributes = case["request"].get("attributes", {})
        for r in experiment.get("targeting", []):
            if r["attribute"] in attributes:
                seen.add((r["op"], ref.rule_matches(r, attributes)))
            else:
                missing.add(r["op"])
    assert seen == {(op, m) for op in ref.OPS for m in (True, False)}
    assert {"ne", "not_in"} <= missing


def test_decision_vectors_cover_the_edges(decision_vectors: Any) -> None:
    cases = decision_vectors["cases"]
    experiments = {e["name"]: e for e in decision_vectors["config"]["experiments"]}

    def at(case: Any, field: str) -> bool:
        experiment = experiments[case["request"]["experiment"]]
        return field in experiment and ref.parse_timestamp(case["now"]) == ref.parse_timestamp(experiment[field])

    assert any(at(c, "start") and c["expected"]["reason"] == "assigned" for c in cases)
    assert any(at(c, "end") and c["expected"]["reason"] == "ended" for c in cases)
    assert any(c["expected"]["enrolled"] for c in cases)
    assert all(c["expected"]["enrolled"] == (c["expected"]["reason"] in ("assigned", "shadow")) for c in cases)
    three = [e["name"] for e in experiments.values() if len(e["variants"]) == 3 and e.get("exposure", 100) < 100]
    assert three, "a 3-variant experiment with exposure < 100"
    assigned = {c["expected"]["variant"] for c in cases
                if c["request"]["experiment"] == three[0] and c["expected"]["reason"] == "assigned"}
    assert assigned == {v["name"] for v in experiments[three[0]]["variants"]}
    assert {e["status"] for e in experiments.values()} == set(ref.STATUSES)


def test_decision_expectations_are_consistent(decision_vectors: Any) -> None:
    experiments = {e["name"]: e for e in decision_vectors["config"]["experiments"]}
    for case in decision_vectors["cases"]:
        experiment = experiments[case["request"]["experiment"]]
        expected = case["expected"]
        variant = next(v for v in experiment["variants"] if v["name"] == expected["variant"])
        assert (expected["prompt"], expected["prompt_version"]) == (variant["prompt"], variant["prompt_version"])
        if expected["reason"] == "completed":
            assert expected["variant"] == experiment["winner"]
        elif expected["reason"] != "assigned":
            assert variant.get("control") is True
        ours = ref.decide(experiment, case["request"]["unit"], case["request"].get("attributes"), case["now"])
        assert ours.to_json() == expected


def test_decision_config_is_semantically_valid(decision_vectors: Any) -> None:
    assert ref.semantic_problems(decision_vectors["config"]) == []


# --------------------------------------------------------------------------------------------------
# config.schema.json
# --------------------------------------------------------------------------------------------------


def test_decision_config_is_schema_valid(validator: Draft202012Validator, decision_vectors: Any) -> None:
    assert errors(validator, decision_vectors["config"]) == []


def test_example_config_is_schema_valid(validator: Draft202012Validator) -> None:
    if not EXAMPLE_PATH.exists():
        pytest.skip(f"{EXAMPLE_PATH} does not exist yet")
    document = load(EXAMPLE_PATH)
    assert errors(validator, document) == []
    assert ref.semantic_problems(document) == []


def test_minimal_documents_are_valid(validator: Draft202012Validator) -> None:
    assert errors(validator, {"schema_version": 1, "prompts": {}, "experiments": []}) == []


def mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    document = copy.deepcopy(ref.DECISION_CONFIG)
    change(document)
    return document


def experiment(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in document["experiments"] if e["name"] == name)


def set_in(experiment_name: str, /, **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: experiment(d, experiment_name).update(fields)


def delete_in(experiment_name: str, field: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: experiment(d, experiment_name).pop(field)


BAD_DOCUMENTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown top-level field": lambda d: d.update(schema_versoin=1),
    "unknown experiment field": set_in("checkout-prompt", exposures=50),
    "unknown variant field": lambda d: experiment(d, "checkout-prompt")["variants"][0].update(wieght=50),
    "unknown prompt version field": lambda d: d["prompts"]["checkout"]["versions"][0].update(text="x"),
    "unknown rule field": lambda d: experiment(d, "checkout-prompt")["targeting"][0].update(negate=True),
    "status live": set_in("checkout-prompt", status="live"),
    "weight 120": lambda d: experiment(d, "checkout-prompt")["variants"][0].update(weight=120),
    "negative weight": lambda d: experiment(d, "checkout-prompt")["variants"][0].update(weight=-1),
    "exposure 120": set_in("checkout-prompt", exposure=120),
    "exposure as a string": set_in("checkout-prompt", exposure="50"),
    "one variant": lambda d: experiment(d, "checkout-prompt")["variants"].pop(),
    "bad experiment name -x": set_in("checkout-prompt", name="-x"),
    "bad variant name with a space": lambda d: experiment(d, "checkout-prompt")["variants"][0].update(name="a b"),
    "name of 129 characters": set_in("checkout-prompt", name="x" * 129),
    "bad prompt name": lambda d: d["prompts"].update({"-bad": d["prompts"]["checkout"]}),
    "bad variable name": lambda d: d["prompts"]["checkout"]["versions"][0]["variables"]["required"].append("1x"),
    "completed without winner": delete_in("summary-model", "winner"),
    "winner on a running experiment": set_in("checkout-prompt", winner="control"),
    "schema_version 2": lambda d: d.update(schema_version=2),
    "missing experiments": lambda d: d.pop("experiments"),
    "empty salt": set_in("checkout-prompt", salt=""),
    "salt of 257 characters": set_in("checkout-prompt", salt="s" * 257),
    "salt with NUL": set_in("checkout-prompt", salt="a\u0000b"),
    "start not RFC 3339": set_in("checkout-prompt", start="2026-11-01 00:00:00"),
    "end without offset": set_in("checkout-prompt", end="2027-01-31T00:00:00"),
    "op regex": lambda d: experiment(d, "checkout-prompt")["targeting"][0].update(op="regex"),
    "in without values": set_in("checkout-prompt", targeting=[{"attribute": "country", "op": "in", "value": "US"}]),
    "eq with values": set_in("checkout-prompt", targeting=[{"attribute": "plan", "op": "eq", "values": ["a"]}]),
    "lt with a string": set_in("checkout-prompt", targeting=[{"attribute": "age", "op": "lt", "value": "18"}]),
    "rule value null": set_in("checkout-prompt", targeting=[{"attribute": "plan", "op": "eq", "value": None}]),
    "prompt without versions": lambda d: d["prompts"]["checkout"].update(versions=[]),
    "prompt version 0": lambda d: d["prompts"]["checkout"]["versions"][0].update(version=0),
    "control not a boolean": lambda d: experiment(d, "checkout-prompt")["variants"][0].update(control="yes"),
    "params not an object": lambda d: experiment(d, "checkout-prompt")["variants"][1].update(params=[]),
    "template and messages": lambda d: d["prompts"]["checkout"]["versions"][0].update(
        messages=[{"role": "user", "content": "x"}]
    ),
    "neither template nor messages": lambda d: d["prompts"]["checkout"]["versions"][0].pop("template"),
    "empty messages": lambda d: d["prompts"]["checkout"]["versions"][0].pop("template")
    and d["prompts"]["checkout"]["versions"][0].update(messages=[]),
    "prompt rule of unknown type": lambda d: d["prompts"]["checkout"].update(
        rules=[{"name": "g", "type": "sentiment", "action": "block"}]
    ),
    "regex prompt rule without pattern": lambda d: d["prompts"]["checkout"].update(
        rules=[{"name": "g", "type": "regex", "action": "block"}]
    ),
    "prompt rule field of another type": lambda d: d["prompts"]["checkout"].update(
        rules=[{"name": "g", "type": "regex", "action": "warn", "pattern": "x", "keywords": ["y"]}]
    ),
    "model prompt rule that only warns": lambda d: d["prompts"]["checkout"]["versions"][0].update(
        rules=[{"name": "g", "type": "model", "action": "warn", "models": ["m"]}]
    ),
    "max_length without a limit": lambda d: d["prompts"]["checkout"].update(
        rules=[{"name": "g", "type": "max_length", "action": "log"}]
    ),
    "guardrail scope region": set_in("reply-judged", guardrails={"scope": "region"}),
    "disabled control": lambda d: experiment(d, "reply-judged")["variants"][0].update(
        disabled=copy.deepcopy(experiment(d, "reply-judged")["variants"][1]["disabled"])
    ),
    "disabled without at": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].pop("at"),
    "disabled without by": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].pop("by"),
    "disabled without reason": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].pop("reason"),
    "disabled true": lambda d: experiment(d, "reply-judged")["variants"][1].update(disabled=True),
    "disabled at not RFC 3339": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].update(
        at="yesterday"
    ),
    "disabled by empty": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].update(by=""),
    "disabled reason too long": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].update(
        reason="x" * 1001
    ),
    "disabled evidence a list": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].update(
        evidence=[1, 2]
    ),
    "disabled unknown member": lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].update(until="x"),
}


def langfuse_document() -> dict[str, Any]:
    document = copy.deepcopy(ref.DECISION_CONFIG)
    document["prompts"]["critic"] = {"description": "in Langfuse", "langfuse": {"name": "movie-critic"}}
    variants = experiment(document, "checkout-prompt")["variants"]
    variants[0].update(prompt="critic", prompt_version=3)
    variants[1].update(prompt="critic")
    variants[1].pop("prompt_version")
    variants[1]["prompt_label"] = "production"
    return document


def test_langfuse_prompts_and_labels_are_schema_valid(validator: Draft202012Validator) -> None:
    assert errors(validator, langfuse_document()) == []


LANGFUSE_BAD_DOCUMENTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "langfuse and versions": lambda d: d["prompts"]["critic"].update(versions=d["prompts"]["checkout"]["versions"]),
    "unknown langfuse field": lambda d: d["prompts"]["critic"]["langfuse"].update(label="production"),
    "empty langfuse name": lambda d: d["prompts"]["critic"]["langfuse"].update(name=""),
    "version and label": lambda d: experiment(d, "checkout-prompt")["variants"][1].update(prompt_version=1),
    "neither version nor label": lambda d: experiment(d, "checkout-prompt")["variants"][1].pop("prompt_label"),
    "upper-case label": lambda d: experiment(d, "checkout-prompt")["variants"][1].update(prompt_label="Prod"),
}


@pytest.mark.parametrize("change", LANGFUSE_BAD_DOCUMENTS.values(), ids=LANGFUSE_BAD_DOCUMENTS.keys())
def test_schema_rejects_bad_langfuse_prompts(validator: Draft202012Validator, change: Callable[[dict[str, Any]], None]) -> None:
    document = langfuse_document()
    change(document)
    assert errors(validator, document), "the schema accepted a bad document"


@pytest.mark.parametrize("change", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_schema_rejects(validator: Draft202012Validator, change: Callable[[dict[str, Any]], None]) -> None:
    document = mutated(change)
    assert errors(validator, document), "the schema accepted a bad document"


def test_params_are_free_form(validator: Draft202012Validator) -> None:
    params = {"anything": {"nested": [1, None, {"x": True}]}, "Any Key!": None}
    document = mutated(lambda d: experiment(d, "checkout-prompt")["variants"][1].update(params=params))
    assert errors(validator, document) == []


def test_chat_versions_and_prompt_rules_are_schema_valid(validator: Draft202012Validator) -> None:
    def change(d: dict[str, Any]) -> None:
        d["prompts"]["checkout"]["rules"] = [
            {"name": "pii", "type": "regex", "action": "block", "target": "variables", "pattern": "\\d{9}"},
            {"name": "words", "type": "keywords", "action": "log", "keywords": ["password"]},
        ]
        version = d["prompts"]["checkout"]["versions"][0]
        version.pop("template")
        version["messages"] = [{"role": "system", "content": "Greet {{name}}."}, {"role": "user", "content": "hi"}]
        version["rules"] = [
            {"name": "short", "type": "max_length", "action": "warn", "max_tokens": 500},
            {"name": "models", "type": "model", "action": "block", "models": ["gpt-4o"]},
        ]

    assert errors(validator, mutated(change)) == []


# --------------------------------------------------------------------------------------------------
# A treatment disabled by the document
# --------------------------------------------------------------------------------------------------

# Each bad "disabled" of reply-judged's treatment terse, and the daemon's (path suffix, code) for it.
BAD_DISABLES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "on the control": (lambda v: v[0].update(disabled={"at": "2026-11-20T08:30:00Z", "by": "j", "reason": "r"}),
                       "variants[0].disabled: control_cannot_be_disabled"),
    "not an object": (lambda v: v[1].update(disabled="yes"), "variants[1].disabled: wrong_type"),
    "without at": (lambda v: v[1]["disabled"].pop("at"), "variants[1].disabled.at: missing_field"),
    "at not a time": (lambda v: v[1]["disabled"].update(at="2026-11-20"), "variants[1].disabled.at: invalid_timestamp"),
    "by a number": (lambda v: v[1]["disabled"].update(by=7), "variants[1].disabled.by: wrong_type"),
    "by empty": (lambda v: v[1]["disabled"].update(by=""), "variants[1].disabled.by: invalid_value"),
    "reason of 1001 bytes": (lambda v: v[1]["disabled"].update(reason="é" * 500 + "x"),
                             "variants[1].disabled.reason: invalid_value"),
    "evidence a string": (lambda v: v[1]["disabled"].update(evidence="p<0.05"),
                          "variants[1].disabled.evidence: wrong_type"),
    "unknown member": (lambda v: v[1]["disabled"].update(until="x"), "variants[1].disabled.until: unknown_field"),
}


@pytest.mark.parametrize("case", BAD_DISABLES.values(), ids=BAD_DISABLES.keys())
def test_semantic_problems_of_a_bad_disable(case: tuple[Callable[[list[dict[str, Any]]], None], str]) -> None:
    change, problem = case
    document = mutated(lambda d: change(experiment(d, "reply-judged")["variants"]))
    index = next(i for i, e in enumerate(document["experiments"]) if e["name"] == "reply-judged")
    assert ref.semantic_problems(document) == [f"$.experiments[{index}].{problem}"]


def test_a_reason_of_1000_bytes_is_allowed() -> None:
    document = mutated(lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].update(reason="é" * 500))
    assert ref.semantic_problems(document) == []


def test_a_disabled_treatment_sends_its_units_to_the_control_and_nothing_else_moves() -> None:
    judged = experiment(ref.DECISION_CONFIG, "reply-judged")
    enabled = copy.deepcopy(judged)
    enabled["variants"][1].pop("disabled")
    attributes = {"plan": "pro"}
    changed = 0
    for n in range(3000):
        unit = f"u-{n}"
        before = ref.decide(enabled, unit, attributes, ref.NOW)
        after = ref.decide(judged, unit, attributes, ref.NOW)
        if before.reason == "assigned" and before.variant == "terse":
            assert (after.variant, after.enrolled, after.reason) == ("control", False, "disabled")
            changed += 1
        else:
            assert after == before
    assert changed > 100


def test_scope_and_disabled_are_schema_valid(validator: Draft202012Validator) -> None:
    document = mutated(set_in("checkout-prompt", guardrails={"scope": "host", "auto_disable": True}))
    assert errors(validator, document) == []
    document = mutated(lambda d: experiment(d, "reply-judged")["variants"][1]["disabled"].pop("evidence"))
    assert errors(validator, document) == []
