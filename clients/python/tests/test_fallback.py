"""The fallback contract: assign and prompt never raise; unreachable, slow or erring daemons give the control."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from conftest import EXAMPLE_CONFIG
from variantd_client import Assignment, Fallback, VariantClient, metadata, trace_attributes

FALLBACK = {
    "checkout-prompt": {
        "variant": "control",
        "prompt": "checkout",
        "prompt_version": 1,
        "template": "You are a friendly checkout assistant.",
        "params": {"model": "local-default"},
    }
}


def check_fallback(answer: Assignment, error: str) -> None:
    assert answer.reason == "fallback"
    assert answer.error == error
    assert answer.variant == "control"
    assert answer.prompt == "checkout" and answer.prompt_version == 1
    assert answer.template == "You are a friendly checkout assistant."
    assert answer.params == {"model": "local-default"}
    assert answer.enrolled is False and answer.config_version is None


def test_missing_socket_gives_the_fallback_at_once(short_dir: Path) -> None:
    client = VariantClient(str(short_dir / "nothing.sock"), fallback=FALLBACK)
    try:
        # "unreachable", not "timeout": the missing socket was known at once, no deadline was waited for.
        check_fallback(client.assign("checkout-prompt", "user-42"), "unreachable")
        check_fallback(client.prompt("checkout-prompt", "user-42", {"country": "US"}), "unreachable")
        assert client.fallbacks == 2
    finally:
        client.close()


def test_unknown_experiment_without_fallback_entry_is_a_bare_control(short_dir: Path) -> None:
    client = VariantClient(str(short_dir / "nothing.sock"))
    try:
        answer = client.assign("never-heard-of", "user-1")
        assert (answer.variant, answer.prompt, answer.template, answer.reason) == ("control", None, None, "fallback")
    finally:
        client.close()


def test_hung_daemon_gives_the_fallback_within_the_timeout(line_server) -> None:
    server = line_server(lambda line: None)  # accepts, reads, never answers
    client = VariantClient(server.path, fallback=FALLBACK, timeout=0.05, retry_after=0)
    try:
        for _ in range(3):
            started = time.monotonic()
            answer = client.assign("checkout-prompt", "user-42")
            elapsed = time.monotonic() - started
            check_fallback(answer, "timeout")
            # Not before the deadline; and well before a test runner would give up (a bound 200 times the
            # timeout, which no load makes the client miss, where a deadline not kept would wait forever).
            assert 0.05 <= elapsed < 10, elapsed
        assert len(server.received) == 3  # each request really went out and waited
    finally:
        client.close()


def test_after_a_timeout_the_client_falls_back_without_waiting_during_retry_after(line_server) -> None:
    server = line_server(lambda line: None)
    client = VariantClient(server.path, fallback=FALLBACK, timeout=0.2, retry_after=30)
    try:
        check_fallback(client.assign("checkout-prompt", "u"), "timeout")
        # At once: "unreachable" (the back-off's answer), not a second "timeout", and nothing sent.
        check_fallback(client.assign("checkout-prompt", "u"), "unreachable")
        assert len(server.received) == 1
    finally:
        client.close()


def error_answer(line: bytes) -> bytes:
    request = json.loads(line)
    return json.dumps({"id": request["id"], "ok": False, "error": {"code": "internal", "message": "boom"}}).encode() + b"\n"


def test_error_answer_gives_the_fallback_with_the_code(line_server) -> None:
    server = line_server(error_answer)
    client = VariantClient(server.path, fallback=FALLBACK, timeout=1)
    try:
        check_fallback(client.assign("checkout-prompt", "user-42"), "internal")
        check_fallback(client.prompt("checkout-prompt", "user-42"), "internal")
    finally:
        client.close()


def test_garbage_answer_gives_the_fallback(line_server) -> None:
    server = line_server(lambda line: b"<html>not json</html>\n")
    client = VariantClient(server.path, fallback=FALLBACK, timeout=1)
    try:
        check_fallback(client.assign("checkout-prompt", "user-42"), "invalid_answer")
    finally:
        client.close()


def test_daemon_closing_the_connection_gives_the_fallback(line_server) -> None:
    server = line_server(lambda line: None)
    client = VariantClient(server.path, fallback=FALLBACK, timeout=1, retry_after=0)
    try:
        server.close()
        answer = client.assign("checkout-prompt", "user-42")
        assert answer.reason == "fallback" and answer.error in ("closed", "unreachable", "timeout")
    finally:
        client.close()


def test_error_from_the_real_daemon_gives_the_fallback(start_daemon) -> None:
    daemon = start_daemon()
    client = VariantClient(daemon.socket_path, fallback=FALLBACK, timeout=2)
    try:
        answer = client.assign("no-such-experiment", "user-42")
        assert answer.reason == "fallback" and answer.error == "unknown_experiment"
        answer = client.assign("checkout-prompt", "")  # an empty unit is invalid
        check_fallback(answer, "invalid_field")
        assert client.assign("checkout-prompt", "user-42").reason == "assigned"  # the connection survived
    finally:
        client.close()


def test_no_config_serves_the_fallback_control_with_the_daemons_reason(start_daemon) -> None:
    daemon = start_daemon(config=None)
    client = VariantClient(daemon.socket_path, fallback=FALLBACK, timeout=2)
    try:
        answer = client.prompt("checkout-prompt", "user-42")
        assert answer.reason == "no_config"
        assert answer.template == "You are a friendly checkout assistant."
        assert answer.variant == "control"
        assert client.record(answer, latency_ms=1.0) is False  # nothing to attribute it to
    finally:
        client.close()


def test_fallback_from_a_config_document_serves_each_control_and_its_template(short_dir: Path) -> None:
    client = VariantClient(str(short_dir / "nothing.sock"), fallback=EXAMPLE_CONFIG)
    try:
        answer = client.prompt("support-reply", "ticket-1")
        assert (answer.variant, answer.prompt, answer.prompt_version, answer.reason) == ("control", "support-reply", 1, "fallback")
        assert answer.template == "Draft a reply to this support ticket:\n{{ticket}}"
        assert answer.variables == {"required": ["ticket"], "optional": []}
        latest = client.template("checkout")
        assert latest is not None and latest.version == 2 and latest.from_fallback
        assert client.template("checkout", 7) is None
    finally:
        client.close()


def test_fallback_file_enrolleds_shape(short_dir: Path) -> None:
    path = short_dir / "fallback.json"
    path.write_text(json.dumps(FALLBACK))
    client = VariantClient(str(short_dir / "nothing.sock"), fallback=str(path))
    try:
        check_fallback(client.assign("checkout-prompt", "user-42"), "unreachable")
    finally:
        client.close()


def test_fallback_rejects_typos() -> None:
    try:
        Fallback({"checkout-prompt": {"templat": "x"}})
    except ValueError as error:
        assert "templat" in str(error)
    else:
        raise AssertionError("a misspelt fallback field was accepted")


def test_metadata_for_langfuse_and_opentelemetry(short_dir: Path) -> None:
    client = VariantClient(str(short_dir / "nothing.sock"), fallback=FALLBACK)
    try:
        answer = client.assign("checkout-prompt", "user-42")
    finally:
        client.close()
    assert metadata(answer) == {
        "experiment": "checkout-prompt", "variant": "control", "prompt": "checkout", "prompt_version": 1,
        "config_version": None, "reason": "fallback", "enrolled": False,
    }
    assert trace_attributes(answer) == {
        "variantd.experiment": "checkout-prompt", "variantd.variant": "control", "variantd.prompt": "checkout",
        "variantd.prompt_version": 1, "variantd.reason": "fallback", "variantd.enrolled": False,
    }


def test_record_never_blocks_and_counts_drops_when_the_daemon_is_down(short_dir: Path) -> None:
    client = VariantClient(str(short_dir / "nothing.sock"), record_buffer=100, flush_interval=0.01)
    try:
        started = time.monotonic()
        accepted = sum(client.record("checkout-prompt", "concise", latency_ms=5.0) for _ in range(1000))
        assert time.monotonic() - started < 0.5
        assert 100 <= accepted < 1000
        assert client.flush(2)
        assert client.dropped == 1000  # either refused by the full buffer or not deliverable
        assert client.sent == 0
    finally:
        client.close()


def test_record_with_unencodable_values_is_dropped_not_raised(short_dir: Path) -> None:
    client = VariantClient(str(short_dir / "nothing.sock"))
    try:
        assert client.record("checkout-prompt", "concise", latency_ms=math.nan) is False
        assert client.record("checkout-prompt", "concise", custom={"x": object()}) is False  # type: ignore[dict-item]
        assert client.dropped == 2
    finally:
        client.close()


def test_operator_calls_raise_a_clear_error(short_dir: Path) -> None:
    from variantd_client import VariantdError

    client = VariantClient(str(short_dir / "nothing.sock"))
    try:
        client.events()
    except VariantdError as error:
        assert error.code == "unreachable" and "nothing.sock" in error.message
    else:
        raise AssertionError("events() on a missing socket did not raise")
    finally:
        client.close()
