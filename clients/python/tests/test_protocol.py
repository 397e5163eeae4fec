"""The answer decoding the hot path takes: its shortcuts give what the plain way gives."""

from __future__ import annotations

import dataclasses
import json

from conftest import VECTORS

from variantd_client import Assignment, Rendering
from variantd_client import protocol
from variantd_client.operations import Operations
from variantd_client.protocol import (
    AssignAnswers,
    Failure,
    assignment_fields,
    decode,
    new_assignment,
    new_rendering,
    ok_answer,
    rendering,
    rendering_values,
)

ANSWER = (b'{"id":7,"ok":true,"experiment":"checkout-prompt","variant":"concise","prompt":"checkout","prompt_version":2,'
          b'"params":{"model":"gpt-4o-mini","temperature":0.2},"enrolled":true,"reason":"assigned",'
          b'"config_version":"sha256:0123456789abcdef","metadata":{"experiment":"checkout-prompt","variant":"concise",'
          b'"prompt":"checkout","prompt_version":2,"config_version":"sha256:0123456789abcdef"}}')
SHADOW = ANSWER.replace(b'"reason":"assigned"', b'"reason":"shadow","shadow":{"variant":"concise","prompt":"checkout","prompt_version":2,"params":{"t":1}}')
RENDER_VECTORS = json.loads((VECTORS / "render.json").read_text(encoding="utf-8"))
RENDER = ANSWER[:-1] + b',"type":"text","text":"You help Ada.","warnings":[{"code":"extra_variable","variable":"x"}]}'


def by_init(answer: dict) -> Assignment:
    return Assignment(
        experiment=answer["experiment"], variant=answer["variant"], prompt=answer["prompt"],
        prompt_version=answer["prompt_version"], params=answer["params"], enrolled=answer["enrolled"],
        reason=answer["reason"], config_version=answer["config_version"], metadata=answer["metadata"],
        shadow=answer.get("shadow"),
    )


def test_an_assignment_built_without_init_equals_one_built_with_it() -> None:
    for raw in (ANSWER, SHADOW):
        made = new_assignment(assignment_fields(decode(raw)))
        assert made == by_init(decode(raw))
        assert sorted(made.__dict__) == sorted(f.name for f in dataclasses.fields(Assignment))  # every field, no more
        assert hash(repr(made)) == hash(repr(by_init(decode(raw))))


def test_a_rendering_built_without_init_equals_one_built_with_it() -> None:
    answer = decode(RENDER)
    assignment = by_init(answer)
    made = rendering(answer, assignment)
    assert made == Rendering(assignment, "checkout", 2, "text", text="You help Ada.", warnings=[{"code": "extra_variable", "variable": "x"}])
    assert sorted(made.__dict__) == sorted(f.name for f in dataclasses.fields(Rendering))


def test_a_known_answer_gives_the_same_assignment_with_its_own_dictionaries() -> None:
    answers = AssignAnswers()
    first = new_assignment(answers.fields(ANSWER))
    first.params["temperature"] = 1.0  # a caller changing its answer
    first.metadata.clear()
    again = new_assignment(answers.fields(ANSWER.replace(b'"id":7', b'"id":8')))
    assert len(answers.known) == 1  # the second came from the table
    assert again == by_init(decode(ANSWER))
    shadow = new_assignment(answers.fields(SHADOW))
    shadow.shadow["params"]["t"] = 2
    assert new_assignment(answers.fields(SHADOW)).shadow["params"] == {"t": 1}


def test_error_answers_are_not_kept() -> None:
    answers = AssignAnswers()
    error = b'{"id":9,"ok":false,"error":{"code":"unknown_experiment","message":"no experiment named \'x\'"}}'
    for _ in range(2):
        try:
            answers.fields(error)
        except Exception as failure:  # noqa: BLE001
            assert getattr(failure, "code", None) == "unknown_experiment"
        else:
            raise AssertionError("an error answer gave an assignment")
    assert not answers.known


def whole(raw: bytes):
    """What the general path makes of a render answer with an experiment: the whole line decoded, then its fields."""
    try:
        answer = ok_answer(raw)
        return assignment_fields(answer), rendering_values(answer)
    except Failure as failure:
        return ("failure", failure.code, failure.message)


def split(answers: AssignAnswers, raw: bytes, keep: bool = True):
    try:
        return answers.rendering(raw, None, keep)
    except Failure as failure:
        return ("failure", failure.code, failure.message)


TEXTS = [
    "You help Ada.",
    "",
    'quotes " and \\ backslashes \\" and a ,"type":"chat" inside',
    "lines\nand\ttabs\r\n",
    "non-ASCII: Grüße, 東京, 🙂, \u2028",
    "\x00\x1f control characters, escaped",
    ',"warnings":[]}',
    "a long prompt, longer than a kept answer may be. " * 100,
] + [case["expected"] for case in RENDER_VECTORS["cases"]]

WARNINGS = [
    [],
    [{"code": "extra_variable", "variable": "tone"}],
    [{"code": "extra_variable", "variable": "a"}, {"code": "rule_warning", "rule": "budget", "message": "122 characters, \"over\" 100"}],
]


def render_answers():
    """Render answers as the daemon writes them and as another writer might (escaping all non-ASCII), each kind."""
    for text in TEXTS:
        for warnings in WARNINGS:
            for ensure_ascii in (False, True):
                members = json.dumps({"type": "text", "text": text, "warnings": warnings}, separators=(",", ":"), ensure_ascii=ensure_ascii)
                yield ANSWER[:-1] + b"," + members[1:].encode()
                yield SHADOW[:-1] + b"," + members[1:].encode()
    chat = {"type": "chat", "messages": [{"role": "system", "content": "You triage \"tickets\"."}, {"role": "user", "content": "Grüße"}], "warnings": WARNINGS[1]}
    yield ANSWER[:-1] + b"," + json.dumps(chat, separators=(",", ":"), ensure_ascii=False)[1:].encode()
    yield ANSWER.replace(b'"temperature":0.2}', b'"temperature":0.2,"type":"fast"}')[:-1] + b',"type":"text","text":"x","warnings":[]}'


ODD_ANSWERS = [
    ANSWER,  # an ok answer without its rendering
    ANSWER.replace(b'"temperature":0.2}', b'"temperature":0.2,"type":"fast"}'),  # and "type" in its params
    ANSWER[:-1] + b',"type":"text","warnings":[]}',  # a text rendering without its text
    ANSWER[:-1] + b',"type":"text","text":"x","warnings":[]',  # cut short
    ANSWER[:-1] + b',"type":"text","text":"x","warnings":[]}}',  # one brace too many
    ANSWER[:-1] + b',"type":"text","text":"x","warnings":[],"later":1}',  # a member after the warnings
    ANSWER[:-1] + b',"type":"text","text":"x","warnings":[1,"two"]}',  # warnings that are not objects
    ANSWER[:-1] + b',"type":"text","text":"x","warnings":[{"code":"a"}],"w":[{"b":1}]}',
    ANSWER[:-1] + b',"type":"text","text":"raw\tcontrol","warnings":[]}',  # a raw tab
    ANSWER[:-1] + b',"type":"text","text":"bad \xff byte","warnings":[]}',  # not UTF-8
    ANSWER[:-1] + b',"type":"text","text":"\\q","warnings":[]}',  # an invalid escape
    ANSWER[:-1] + b',"type":"text","text":"x","warnings":null}',
    ANSWER[:-1] + b',"type":"text","text":7,"warnings":[]}',
    ANSWER.replace(b'"reason":"assigned",', b"")[:-1] + b',"type":"text","text":"x","warnings":[]}',  # an assignment without its reason
    ANSWER.replace(b'"ok":true', b'"ok":1')[:-1] + b',"type":"text","text":"x","warnings":[]}',
    b'{"id":9,"ok":false,"error":{"code":"missing_variable","message":"missing \\"type\\""}}',
    b'{"id":9,"ok":false,"error":{"code":"rule_blocked","message":"rule \'no-card-numbers\' blocked the render: a variable matches /x/"}}',
    b'{"id":9,"ok":false,"error":{"code":"invalid_variables","message":"\'a\' is not a string, number or boolean"}}',
    b'{"id":9,"ok":false,"error":{"code":"unknown_experiment","message":"no experiment named \'x\'"},"type":"text","text":"x","warnings":[]}',
    b'{"id":9,"ok":false,"error":{"message":"no code"}}',
    b"<html>not json</html>",
    b'{"id":9,',
    b"[1,2]",
]


def test_the_render_decoder_gives_what_decoding_the_whole_answer_gives() -> None:
    answers = AssignAnswers()
    cases = list(render_answers()) + ODD_ANSWERS
    assert len(cases) > 100
    unkept = AssignAnswers()
    for raw in cases:
        expected = whole(raw)
        assert split(AssignAnswers(), raw) == expected, raw  # read with empty tables
        assert split(answers, raw) == expected, raw  # and with what the earlier answers left in them
        assert split(answers, raw) == expected, raw
        assert split(unkept, raw, keep=False) == expected, raw  # an answer to new variables: neither looked up nor kept
    assert not unkept.known_renderings
    # The tables were used: three assignments, two lists of warnings, every text answer but the long ones.
    assert len(answers.known) == 3 and len(answers.known_warnings) == 2
    assert len(answers.known_renderings) > 50
    assert all(len(key) <= protocol.KEPT_RENDERING_BYTES for key in answers.known_renderings)
    long = [raw for raw in cases if b"a long prompt" in raw]
    assert long and not any(AssignAnswers.key(raw) in answers.known_renderings for raw in long)


def test_a_kept_rendering_gives_each_rendering_its_own_warnings() -> None:
    answers = AssignAnswers()
    raw = ANSWER[:-1] + b',"type":"text","text":"x","warnings":[{"code":"extra_variable","variable":"tone"}]}'
    first = new_rendering(None, answers.rendering(raw)[1])
    first.warnings[0]["variable"] = "changed"
    first.warnings.append({})
    assert new_rendering(None, answers.rendering(raw)[1]).warnings == [{"code": "extra_variable", "variable": "tone"}]


def test_a_new_text_answer_of_a_known_assignment_is_read_without_the_json_decoder(monkeypatch) -> None:
    answers = AssignAnswers()
    with_warning = RENDER.replace(b'"warnings":[{"code":"extra_variable","variable":"x"}]', b'"warnings":[{"code":"extra_variable","variable":"tone"}]')
    without = RENDER.replace(b'"warnings":[{"code":"extra_variable","variable":"x"}]', b'"warnings":[]')
    expected = [whole(raw) for raw in (RENDER, with_warning, without)]
    answers.rendering(RENDER), answers.rendering(with_warning)  # the assignment and the warnings are now known

    def no_json(text: str) -> None:
        raise AssertionError("decoded with json")

    monkeypatch.setattr(protocol, "_decode", no_json)
    assert [answers.rendering(raw.replace(b'"text":"You help Ada."', b'"text":"You help Bob."')) for raw in (RENDER, with_warning, without)] == [
        (fields, dict(values, text="You help Bob.")) for fields, values in expected]


PROMPT = (b'{"id":8,"ok":true,"prompt":"checkout","prompt_version":2,"template":"You help {{customer_name}}.",'
          b'"variables":{"required":["customer_name"],"optional":["tone"]},"config_version":"sha256:0123456789abcdef"}')


def test_a_prompt_from_the_template_cache_equals_the_first_one_with_its_own_dictionaries() -> None:
    operations = Operations("/nonexistent/variantd.sock")
    assignment, complete = operations._prompt_assigned("checkout-prompt", ANSWER)
    assert not complete and assignment == by_init(decode(ANSWER))  # the template is not cached yet: it is asked for
    asked = operations._prompted(assignment, PROMPT)
    expected = dataclasses.replace(by_init(decode(ANSWER)), template="You help {{customer_name}}.",
                                   variables={"required": ["customer_name"], "optional": ["tone"]})
    assert asked == expected
    asked.params["temperature"] = 1.0
    asked.metadata.clear()
    for request_id in (9, 10):  # the first from the template cache, the second from what the answer's entry kept
        cached, complete = operations._prompt_assigned("checkout-prompt", ANSWER.replace(b'"id":7', b'"id":%d' % request_id))
        assert complete and cached == expected and sorted(cached.__dict__) == sorted(f.name for f in dataclasses.fields(Assignment))
        cached.params.clear()
    # Another config version's answer does not take this version's template.
    other = ANSWER.replace(b"sha256:0123456789abcdef", b"sha256:fedcba9876543210")
    assert operations._prompt_assigned("checkout-prompt", other) == (by_init(decode(other)), False)
    # Nothing to fill in: complete as assign makes it, the fallback's included.
    no_prompt = ANSWER.replace(b'"prompt":"checkout","prompt_version":2,"params"', b'"prompt":null,"prompt_version":null,"params"')
    assert operations._prompt_assigned("checkout-prompt", no_prompt) == (by_init(decode(no_prompt)), True)
    error = b'{"id":11,"ok":false,"error":{"code":"unknown_experiment","message":"no experiment named \'x\'"}}'
    fallback, complete = operations._prompt_assigned("checkout-prompt", error)
    assert complete and fallback.reason == "fallback" and fallback.error == "unknown_experiment"
