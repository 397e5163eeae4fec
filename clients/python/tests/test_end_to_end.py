"""The Python shim against the real variantd binary."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import EXAMPLE_CONFIG, HERE
from variantd_client import VariantClient, VariantdError, assign_locally, metadata, trace_attributes

CONFIG = json.loads(EXAMPLE_CONFIG.read_text())


def test_assign_prompt_record_and_events_against_the_daemon(start_daemon) -> None:
    daemon = start_daemon()
    client = VariantClient(daemon.socket_path, timeout=2, flush_interval=0.01)
    try:
        health = client.health()
        assert health["status"] == "serving"

        units = [f"user-{i}" for i in range(40)]
        answers = [client.assign("checkout-prompt", unit) for unit in units]
        for unit, answer in zip(units, answers):
            assert answer.reason == "assigned" and answer.enrolled
            assert answer.config_version == health["config_version"]
            local = assign_locally(CONFIG, "checkout-prompt", unit)
            assert (answer.variant, answer.prompt_version) == (local.variant, local.prompt_version)
            assert answer.metadata["variant"] == answer.variant
            assert trace_attributes(answer)["variantd.config_version"] == health["config_version"]
        assert {a.variant for a in answers} == {"control", "concise"}

        concise = next(a for a in answers if a.variant == "concise")
        prompted = client.prompt("checkout-prompt", units[answers.index(concise)])
        assert prompted.template is not None and prompted.template.startswith("You help {{customer_name}}")
        assert prompted.params == {"model": "gpt-4o-mini", "temperature": 0.2}
        assert metadata(prompted)["prompt_version"] == 2

        pipelined = client.assign_many([("checkout-prompt", u, None) for u in units])
        assert [a.variant for a in pipelined] == [a.variant for a in answers]

        targeted = client.assign("support-reply", "ticket-1", {"language": "de", "plan": "free"})
        assert targeted.reason == "not_targeted" and targeted.variant == "control"

        version = client.template("support-reply", 3)
        assert version is not None and "{{language}}" in version.template and not version.from_fallback

        for answer in answers:
            assert client.record(answer, latency_ms=100.0, error=False, success=answer.variant == "concise", tokens=12)
        assert client.record("checkout-prompt", "nope", error=True)  # rejected by the daemon, counted
        assert client.flush(5)
        deadline = time.monotonic() + 5
        while client.rejected < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.sent == 41 and client.rejected == 1 and client.dropped == 0
        stats = client.stats("checkout-prompt")
        records = {v["name"]: v["records"] for v in stats["variants"]}
        assert records["concise"] == sum(a.variant == "concise" for a in answers)
        assert records["control"] + records["concise"] == 40
        assert stats["recommendation"]["verdict"] in {"needs_more_samples", "no_difference", "winner"}
    finally:
        client.close()

    assert daemon.stop() == 0
    # The experiment's phases, the current (and here only) one last.
    experiments = daemon.state()["experiments"]["checkout-prompt"][-1]["variants"]
    assert experiments["control"]["records"] + experiments["concise"]["records"] == 40
    assert experiments["concise"]["records"] == sum(a.variant == "concise" for a in answers)


def _count_records(state: dict, experiment: str) -> int:
    """The records of an experiment's current phase in a state.json snapshot (``experiments.E[-1].variants.V.records``)."""
    phases = state["experiments"].get(experiment, [])
    return sum(int(variant["records"]) for variant in (phases[-1]["variants"] if phases else {}).values())


def test_disable_enable_and_events(start_daemon) -> None:
    daemon = start_daemon()
    client = VariantClient(daemon.socket_path, timeout=2)
    try:
        unit = next(u for u in (f"user-{i}" for i in range(100)) if client.assign("checkout-prompt", u).variant == "concise")
        try:
            answer = client.disable("checkout-prompt", "concise", reason="python shim test")
        except VariantdError as error:  # not root, not the daemon's user: the daemon runs as us, so never
            raise AssertionError(f"disable refused: {error}")
        assert answer["disabled"] is True and answer["changed"] is True
        disabled = client.assign("checkout-prompt", unit)
        assert (disabled.variant, disabled.reason) == ("control", "disabled")
        events = client.events(limit=10)
        assert events[-1]["kind"] == "disabled" and events[-1]["message"] == "python shim test"
        client.enable("checkout-prompt", "concise")
        assert client.assign("checkout-prompt", unit).variant == "concise"
        assert [e["kind"] for e in client.events(limit=2)] == ["disabled", "enabled"]
        try:
            client.disable("checkout-prompt", "control")
        except VariantdError as error:
            assert error.code == "control_cannot_be_disabled"
        else:
            raise AssertionError("the control was disabled")
    finally:
        client.close()


def test_reconnects_after_the_daemon_restarts(start_daemon, short_dir) -> None:
    daemon = start_daemon()
    client = VariantClient(daemon.socket_path, timeout=2, retry_after=0)
    try:
        assert client.assign("checkout-prompt", "user-1").reason == "assigned"
        daemon.stop()
        down = client.assign("checkout-prompt", "user-1")
        assert down.reason == "fallback"
        start_daemon()
        assert client.assign("checkout-prompt", "user-1").reason == "assigned"
    finally:
        client.close()


def test_example_service_runs_against_the_daemon(start_daemon) -> None:
    daemon = start_daemon()
    result = subprocess.run(
        [sys.executable, str(HERE.parent / "example_service.py"), "--socket", daemon.socket_path, "--requests", "30"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "sent 30 records" in result.stdout and "dropped 0" in result.stdout, result.stdout
    daemon.stop()
    assert _count_records(daemon.state(), "checkout-prompt") == 30


def test_example_service_runs_without_the_daemon(short_dir) -> None:
    result = subprocess.run(
        [sys.executable, str(HERE.parent / "example_service.py"), "--socket", str(short_dir / "none.sock"), "--requests", "5"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "fallback" in result.stdout
