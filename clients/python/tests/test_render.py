"""Rendering: the daemon renders and checks prompts; the shim renders its fallback's control with the same rules
and never papers over a refusal."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from conftest import EXAMPLE_CONFIG
from test_protocol import split, whole
from variantd_client import Fallback, TemplateError, VariantClient, render_template, template_value_text
from variantd_client.protocol import REFUSALS, AssignAnswers, new_assignment, new_rendering

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "protocol" / "test-vectors" / "render.json").read_text())
CONFIG = json.loads(EXAMPLE_CONFIG.read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_templates_render_as_the_shared_vectors_say(case) -> None:
    assert render_template(case["template"], case["variables"]) == case["expected"]


@pytest.mark.parametrize(
    "template",
    ["{{> partial}}", "{{=<% %>=}}", "{{%PRAGMA}}", "{{a.b}}", "{{#open}}never closed", "{{/stray}}", "{{{unclosed}}"],
)
def test_templates_outside_the_subset_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        render_template(template, {"a": "x", "open": True, "stray": True, "unclosed": "x"})


def test_values_render_as_the_daemon_writes_numbers() -> None:
    assert [template_value_text(v) for v in (3, 3.0, -0.5, 1e100, 2**60, True, "x")] == [
        "3", "3", "-0.5", "1e+100", "1.152921504606847e+18", "true", "x"]


def test_render_text_and_chat_against_the_daemon(start_daemon) -> None:
    daemon = start_daemon()
    client = VariantClient(daemon.socket_path, timeout=2)
    try:
        variables = {"store_name": "Acme", "customer_name": "Ada", "tone": "warm", "unused": 1}
        renderings = {u: client.render("checkout-prompt", f"user-{u}", variables) for u in range(20)}
        for unit, rendering in renderings.items():
            assert rendering.ok and rendering.type == "text" and not rendering.is_fallback
            assignment = client.assign("checkout-prompt", f"user-{unit}")
            assert (rendering.assignment.variant, rendering.prompt_version) == (assignment.variant, assignment.prompt_version)
            assert "Acme" in rendering.text and "Ada" in rendering.text and "{{" not in rendering.text
            # Version 1 does not declare `tone`; version 2 does. Neither declares `unused`.
            extra = ["tone", "unused"] if rendering.prompt_version == 1 else ["unused"]
            assert rendering.warnings == [{"code": "extra_variable", "variable": name} for name in extra]
        assert {r.assignment.variant for r in renderings.values()} == {"control", "concise"}

        chat = client.render_prompt("ticket-triage", {"product": "Widgets", "ticket": "It broke.", "language": "de"})
        assert chat.type == "chat" and chat.prompt_version == 1
        assert [m["role"] for m in chat.messages] == ["system", "user"]
        assert chat.messages[0]["content"].endswith("The ticket is in de.") and chat.messages[1]["content"] == "It broke."
        # The daemon and the shim's own renderer agree on the same version.
        version = client.template("ticket-triage")
        assert version is not None and version.messages is not None and version.template is None
        local = Fallback(CONFIG).prompt_version("ticket-triage")
        assert [render_template(m["content"], {"product": "Widgets", "ticket": "It broke.", "language": "de"}) for m in local.messages] == [
            m["content"] for m in chat.messages]

        # Refusals are answered, not replaced by the fallback.
        blocked = client.render_prompt("ticket-triage", {"product": "Widgets", "ticket": "card 4111 1111 1111 1111"})
        assert not blocked.ok and blocked.error == "rule_blocked" and "no-card-numbers" in blocked.message
        missing = client.render("checkout-prompt", "user-1", {"store_name": "Acme"})
        assert not missing.ok and missing.error == "missing_variable" and "customer_name" in missing.message
        assert client.fallbacks == 0
    finally:
        client.close()


def test_only_the_answers_to_variables_sent_before_are_kept(start_daemon) -> None:
    daemon = start_daemon()
    client = VariantClient(daemon.socket_path, timeout=2)
    try:
        # Every render names its user: new variables each time, so new answers, read and not kept.
        fresh = {u: client.render("checkout-prompt", f"user-{u}", {"store_name": "Acme", "customer_name": f"Customer {u}"}) for u in range(40)}
        assert not client._answers.known_renderings
        # The same variables again (a new dictionary, equal to one sent before): now looked up and kept.
        again = {u: client.render("checkout-prompt", f"user-{u}", {"store_name": "Acme", "customer_name": f"Customer {u}"}) for u in range(40)}
        assert 0 < len(client._answers.known_renderings) <= 40
        kept = {u: client.render("checkout-prompt", f"user-{u}", {"store_name": "Acme", "customer_name": f"Customer {u}"}) for u in range(40)}
        for unit in range(40):
            assignment = client.assign("checkout-prompt", f"user-{unit}")
            assert fresh[unit] == again[unit] == kept[unit], unit
            assert fresh[unit].ok and f"Customer {unit}" in fresh[unit].text
            assert fresh[unit].assignment.variant == assignment.variant
        # Each call's result is its own, wherever it came from.
        kept[0].warnings.append({"code": "changed"})
        assert client.render("checkout-prompt", "user-0", {"store_name": "Acme", "customer_name": "Customer 0"}) == again[0]
        assert client.fallbacks == 0
    finally:
        client.close()


def test_a_down_daemon_renders_the_fallbacks_control_here(short_dir: Path) -> None:
    client = VariantClient(str(short_dir / "nothing.sock"), fallback=CONFIG)
    try:
        rendering = client.render("checkout-prompt", "user-42", {"store_name": "Acme", "customer_name": "Ada"})
        assert rendering.ok and rendering.is_fallback and rendering.error == "unreachable"
        assert rendering.assignment.variant == "control" and rendering.prompt_version == 1
        control = Fallback(CONFIG).prompt_version("checkout", 1)
        assert rendering.text == render_template(control.template, {"store_name": "Acme", "customer_name": "Ada"})

        chat = client.render_prompt("ticket-triage", {"product": "Widgets", "ticket": "Help"})
        assert chat.type == "chat" and chat.error == "unreachable"
        assert chat.messages[1] == {"role": "user", "content": "Help"}

        missing = client.render("checkout-prompt", "user-42", {"store_name": "Acme"})
        assert not missing.ok and missing.error == "missing_variable"
        unknown = client.render("no-such-experiment", "user-42", {})
        assert not unknown.ok and unknown.assignment.is_fallback and unknown.assignment.variant == "control"
    finally:
        client.close()


def decoder_config() -> dict:
    """Every shared render vector as an experiment's prompt, a text prompt with a block and a warn prompt rule, a chat
    prompt and a shadow experiment: every kind of render answer the daemon writes."""
    prompts = {
        f"vector-{i}": {"versions": [{"version": 1, "template": case["template"], "variables": {"required": [], "optional": case["declared"]}}]}
        for i, case in enumerate(VECTORS["cases"])
    }
    prompts["guarded"] = {
        "rules": [
            {"name": "no-card-numbers", "type": "regex", "action": "block", "target": "variables", "pattern": "\\b(?:\\d[ -]?){13,16}\\b"},
            {"name": "budget", "type": "max_length", "action": "warn", "max_characters": 30},
        ],
        "versions": [{"version": 1, "template": "Hello {{name}}, \"welcome\" back.", "variables": {"required": ["name"], "optional": []}}],
    }
    prompts["triage"] = {"versions": [{"version": 1, "messages": [{"role": "system", "content": "Triage for {{product}}."}, {"role": "user", "content": "{{ticket}}"}],
                                       "variables": {"required": ["product", "ticket"], "optional": []}}]}

    def experiment(name: str, prompt: str, **extra) -> dict:
        variants = [{"name": "control", "control": True, "weight": 50, "prompt": prompt, "prompt_version": 1},
                    {"name": "treatment", "weight": 50, "prompt": prompt, "prompt_version": 1, "params": {"type": "fast", "t": 0.5}}]
        return {"name": name, "salt": f"{name}-salt", "status": "running", "variants": variants, **extra}

    experiments = [experiment(name, name) for name in prompts]
    experiments.append(experiment("shadowed", "guarded", mode="shadow"))
    return {"schema_version": 1, "prompts": prompts, "experiments": experiments}


def test_the_render_decoder_reads_the_daemons_answers_as_decoding_them_whole_does(start_daemon, short_dir: Path) -> None:
    config_path = short_dir / "decoder.json"
    config_path.write_text(json.dumps(decoder_config()))
    daemon = start_daemon(config_path)
    requests = []
    for i, case in enumerate(VECTORS["cases"]):
        for unit in ("user-1", "user-2", "user-3"):
            requests.append((f"vector-{i}", unit, case["variables"]))
            requests.append((f"vector-{i}", unit, {**case["variables"], "undeclared": "x"}))  # an extra_variable warning
    requests += [
        ("guarded", "user-1", {"name": "Ada"}),
        ("guarded", "user-2", {"name": "Ada Lovelace, Countess of Lovelace"}),  # a rule_warning
        ("guarded", "user-3", {"name": "4111 1111 1111 1111"}),  # rule_blocked
        ("guarded", "user-1", {}),  # missing_variable
        ("guarded", "user-1", {"name": {"first": "Ada"}}),  # invalid_variables
        ("triage", "user-1", {"product": "Widgets", "ticket": "It \"broke\"\nGrüße"}),
        ("shadowed", "user-1", {"name": "Ada"}),
        ("shadowed", "user-2", {"name": "Ada", "x": 1}),
        ("no-such-experiment", "user-1", {"name": "Ada"}),
    ]
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(daemon.socket_path)
    client = VariantClient(daemon.socket_path, timeout=5)
    answers = AssignAnswers()
    seen = set()
    try:
        for request_id, (experiment, unit, variables) in enumerate(requests, 1):
            line = {"id": request_id, "op": "render", "experiment": experiment, "unit": unit, "variables": variables}
            raw.sendall(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                answer += raw.recv(65536)
            answer = answer[:-1]
            expected = whole(answer)
            assert split(AssignAnswers(), answer) == expected, answer
            assert split(answers, answer) == expected, answer
            shim = client.render(experiment, unit, variables)
            if expected[0] == "failure":
                _, code, message = expected
                seen.add(code)
                if code in REFUSALS:
                    assert (shim.ok, shim.error, shim.message) == (False, code, message)
                else:
                    assert shim.is_fallback and shim.assignment.error == code
                continue
            fields, values = expected
            assert shim == new_rendering(new_assignment(fields), values)
            seen.update([values["type"], fields["reason"]] + [warning["code"] for warning in values["warnings"]])
            if experiment.startswith("vector-"):
                assert values["text"] == VECTORS["cases"][int(experiment.split("-")[1])]["expected"]
        assert seen == {"text", "chat", "assigned", "shadow", "extra_variable", "rule_warning", "rule_blocked",
                        "missing_variable", "invalid_variables", "unknown_experiment"}
        assert client.fallbacks == 1  # the unknown experiment
    finally:
        raw.close()
        client.close()
