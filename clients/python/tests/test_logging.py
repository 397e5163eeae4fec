"""What the shims tell an operator: a fallback or a lost record is logged once per cause, with the reason, not
once per request; and a fallback file that cannot be loaded is logged, not raised from the constructor."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import List

import pytest

from test_fallback import FALLBACK, check_fallback
from variantd_client import AsyncVariantClient, VariantClient


def events(caplog: pytest.LogCaptureFixture, event: str) -> List[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "variantd_event", None) == event]


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_fallbacks_are_logged_once_per_cause_with_the_reason(short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="variantd_client")
    client = VariantClient(str(short_dir / "nothing.sock"), fallback=FALLBACK, retry_after=0)
    try:
        for _ in range(50):
            check_fallback(client.assign("checkout-prompt", "user-42"), "unreachable")
    finally:
        client.close()
    logged = events(caplog, "client.fallback")
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].levelno == logging.WARNING and logged[0].variantd_cause == "unreachable"
    assert "unreachable" in logged[0].getMessage() and "nothing.sock" in logged[0].getMessage()


def test_each_error_answer_is_logged_once_and_recovery_once(start_daemon, short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="variantd_client")
    client = VariantClient(str(short_dir / "variantd.sock"), fallback=FALLBACK, timeout=2, retry_after=0)
    try:
        for _ in range(10):
            check_fallback(client.assign("checkout-prompt", "user-42"), "unreachable")  # not started yet
        start_daemon()
        for _ in range(10):
            assert client.assign("no-such-experiment", "user-42").error == "unknown_experiment"
            assert client.assign("checkout-prompt", "user-42").reason == "assigned"
    finally:
        client.close()
    causes = [r.variantd_cause for r in events(caplog, "client.fallback")]
    assert causes == ["unreachable", "recovered", "unknown_experiment"]
    recovered = next(r for r in events(caplog, "client.fallback") if r.variantd_cause == "recovered")
    assert recovered.levelno == logging.INFO and "after 10 fallbacks" in recovered.getMessage()
    refused = events(caplog, "client.fallback")[-1].getMessage()
    assert "no-such-experiment" in refused  # the daemon's message says which experiment


def test_refused_records_are_logged_once_per_code_with_the_daemons_message(start_daemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="variantd_client")
    daemon = start_daemon()
    client = VariantClient(daemon.socket_path, timeout=2, flush_interval=0.01)
    try:
        for _ in range(5):
            assert client.record("checkout-prompt", "nope", error=True)
            assert client.flush(5)
        wait_until(lambda: client.rejected == 5, "five refusals are counted")
    finally:
        client.close()
    logged = events(caplog, "client.records_refused")
    assert len(logged) == 1 and logged[0].variantd_cause == "unknown_variant"
    assert "nope" in logged[0].getMessage()


def test_dropped_records_are_logged_once_per_cause(short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="variantd_client")
    client = VariantClient(str(short_dir / "nothing.sock"), record_buffer=10, flush_interval=60)
    try:
        accepted = sum(client.record("checkout-prompt", "concise", latency_ms=1.0) for _ in range(100))
        assert accepted == 10 and client.dropped == 90
        assert client.record("checkout-prompt", "concise", latency_ms=float("nan")) is False
    finally:
        client.close()
    causes = [r.variantd_cause for r in events(caplog, "client.records_dropped")]
    assert causes.count("buffer_full") == 1 and causes.count("unencodable") == 1
    assert causes.count("unreachable") == 1  # the ten buffered ones, when close() tried to send them


@pytest.mark.parametrize("problem", ["missing", "not JSON", "a typo"])
def test_a_fallback_file_that_cannot_be_loaded_is_logged_not_raised(short_dir: Path, caplog: pytest.LogCaptureFixture, problem: str) -> None:
    path = short_dir / "fallback.json"
    if problem == "not JSON":
        path.write_text("{not json")
    elif problem == "a typo":
        path.write_text('{"checkout-prompt": {"templat": "x"}}')
    client = VariantClient(str(short_dir / "nothing.sock"), fallback=str(path))
    async_client = AsyncVariantClient(str(short_dir / "nothing.sock"), fallback=path)
    try:
        answer = client.assign("checkout-prompt", "user-42")
        assert (answer.variant, answer.prompt, answer.template, answer.reason) == ("control", None, None, "fallback")
        answer = asyncio.run(async_client.assign("checkout-prompt", "user-42"))
        assert (answer.variant, answer.prompt, answer.reason) == ("control", None, "fallback")
    finally:
        client.close()
        asyncio.run(async_client.close())
    logged = events(caplog, "client.fallback_unreadable")
    assert len(logged) == 2 and all(r.levelno == logging.ERROR for r in logged)
    assert str(path) in logged[0].getMessage() and "restart" in logged[0].getMessage()


def test_a_fallback_mapping_with_a_typo_still_raises_at_start_up(short_dir: Path) -> None:
    with pytest.raises(ValueError, match="templat"):
        VariantClient(str(short_dir / "nothing.sock"), fallback={"checkout-prompt": {"templat": "x"}})
