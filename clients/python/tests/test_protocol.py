"""The answer decoding the hot path takes: its shortcuts give what the plain way gives."""

from __future__ import annotations

import dataclasses

from variantd_client import Assignment, Rendering
from variantd_client.protocol import AssignAnswers, assignment_fields, decode, new_assignment, rendering

ANSWER = (b'{"id":7,"ok":true,"experiment":"checkout-prompt","variant":"concise","prompt":"checkout","prompt_version":2,'
          b'"params":{"model":"gpt-4o-mini","temperature":0.2},"in_experiment":true,"reason":"assigned",'
          b'"config_version":"sha256:0123456789abcdef","metadata":{"experiment":"checkout-prompt","variant":"concise",'
          b'"prompt":"checkout","prompt_version":2,"config_version":"sha256:0123456789abcdef"}}')
SHADOW = ANSWER.replace(b'"reason":"assigned"', b'"reason":"shadow","shadow":{"variant":"concise","prompt":"checkout","prompt_version":2,"params":{"t":1}}')
RENDER = ANSWER[:-1] + b',"type":"text","text":"You help Ada.","warnings":[{"code":"extra_variable","variable":"x"}]}'


def by_init(answer: dict) -> Assignment:
    return Assignment(
        experiment=answer["experiment"], variant=answer["variant"], prompt=answer["prompt"],
        prompt_version=answer["prompt_version"], params=answer["params"], in_experiment=answer["in_experiment"],
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


def test_a_render_answer_splits_into_the_assignment_and_the_rendering_as_a_whole_decode_gives() -> None:
    with_type_param = RENDER.replace(b'"temperature":0.2}', b'"temperature":0.2,"type":"fast"}')
    for raw in (RENDER, with_type_param, RENDER.replace(b'"text":"You help Ada."', b'"text":"a \\",\\"type\\":\\"x"')):
        fields, tail = AssignAnswers().rendered(raw)
        whole = decode(raw)
        assert new_assignment(fields) == new_assignment(assignment_fields(whole))
        assert rendering(tail, None) == rendering(whole, None)
    error = b'{"id":9,"ok":false,"error":{"code":"missing_variable","message":"missing \\"type\\""}}'
    assert AssignAnswers().rendered(error) is None
