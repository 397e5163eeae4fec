"""The asyncio client against the real variantd binary: pipelined requests matched by id, the daemon killed and
restarted under load, cancellation, and the same answers and fallbacks as the blocking client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Callable, List

from conftest import EXAMPLE_CONFIG
from test_fallback import FALLBACK, check_fallback
from variantd_client import Assignment, AsyncVariantClient, VariantClient, assign_locally

CONFIG = json.loads(EXAMPLE_CONFIG.read_text())


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Waits until ``condition()`` holds (checked every 10 ms), failing with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


def expected(experiment: str, unit: str, attributes: dict) -> Assignment:
    return assign_locally(CONFIG, experiment, unit, attributes)


# The requests of the pipelining tests: two experiments, targeted and untargeted units, so that an answer handed to
# the wrong caller shows as a wrong variant, prompt or reason.
REQUESTS = [
    ("checkout-prompt", f"user-{i}", {}) if i % 3 else ("support-reply", f"ticket-{i}", {"language": ["en", "de", "fr"][i % 3], "plan": ["pro", "free"][i % 2]})
    for i in range(1000)
]


def test_a_thousand_tasks_assign_at_once_over_one_connection(start_daemon) -> None:
    daemon = start_daemon()

    async def scenario() -> None:
        client = AsyncVariantClient(daemon.socket_path, timeout=10)
        try:
            answers = await asyncio.gather(*(client.assign(e, u, a) for e, u, a in REQUESTS))
            assert client.connections == 1
            for (experiment, unit, attributes), answer in zip(REQUESTS, answers):
                local = expected(experiment, unit, attributes)
                assert (answer.experiment, answer.variant, answer.prompt_version, answer.reason) == (
                    experiment, local.variant, local.prompt_version, local.reason), unit
            assert {a.reason for a in answers} == {"assigned", "not_targeted", "outside_exposure"}
            assert {a.variant for a in answers} == {"control", "concise", "engineer", "localised"}
            assert client.fallbacks == 0
        finally:
            await client.close()

    asyncio.run(scenario())


def test_answers_equal_the_blocking_clients(start_daemon) -> None:
    daemon = start_daemon()
    blocking = VariantClient(daemon.socket_path, timeout=5)
    variables = {"store_name": "Acme", "customer_name": "Ada", "tone": "warm"}
    units = [f"user-{i}" for i in range(20)]

    async def scenario() -> None:
        client = AsyncVariantClient(daemon.socket_path, timeout=5)
        try:
            prompts = await asyncio.gather(*(client.prompt("checkout-prompt", u) for u in units))
            renders = await asyncio.gather(*(client.render("checkout-prompt", u, variables) for u in units))
            assert prompts == [blocking.prompt("checkout-prompt", u) for u in units]
            assert renders == [blocking.render("checkout-prompt", u, variables) for u in units]
            assert all(p.template for p in prompts) and all(r.ok for r in renders)
            assert await client.assign_many([("checkout-prompt", u, None) for u in units]) == blocking.assign_many(
                [("checkout-prompt", u, None) for u in units])
            assert await client.template("checkout", 2) == blocking.template("checkout", 2)
            chat = {"product": "Widgets", "ticket": "It broke.", "language": "de"}
            assert await client.render_prompt("ticket-triage", chat) == blocking.render_prompt("ticket-triage", chat)
            blocked = await client.render_prompt("ticket-triage", {"product": "W", "ticket": "card 4111 1111 1111 1111"})
            assert blocked.error == "rule_blocked" and not blocked.ok
            assert (await client.health())["status"] == "serving"
            assert (await client.assign("no-such-experiment", "u")).error == "unknown_experiment"
        finally:
            await client.close()
            blocking.close()

    asyncio.run(scenario())


def test_the_daemon_killed_and_restarted_mid_run_gives_fallbacks_then_recovers(start_daemon) -> None:
    daemon = start_daemon()

    async def scenario() -> None:
        client = AsyncVariantClient(daemon.socket_path, fallback=FALLBACK, timeout=1, retry_after=0.02)
        seen: List[Assignment] = []
        stop = asyncio.Event()

        async def worker(index: int) -> None:
            while not stop.is_set():
                experiment, unit, attributes = REQUESTS[(index * 37 + len(seen)) % len(REQUESTS)]
                answer = await client.assign(experiment, unit, attributes)
                seen.append(answer)
                if answer.reason == "fallback":
                    assert answer.variant == "control" and answer.error in ("closed", "unreachable", "timeout")
                else:
                    assert answer.variant == expected(experiment, unit, attributes).variant
                client.record(answer, latency_ms=1.0)
                await asyncio.sleep(0)

        workers = [asyncio.ensure_future(worker(i)) for i in range(50)]
        try:
            await until(lambda: sum(a.reason == "assigned" for a in seen) >= 200, "200 answers before the kill")
            daemon.process.kill()  # SIGKILL: no goodbye, the connections just break
            await asyncio.get_running_loop().run_in_executor(None, daemon.process.wait)
            killed_at = len(seen)
            await until(lambda: sum(a.reason == "fallback" for a in seen[killed_at:]) >= 50, "50 fallbacks while it is down")
            await asyncio.get_running_loop().run_in_executor(None, start_daemon)
            restarted_at = len(seen)
            await until(lambda: sum(a.reason == "assigned" for a in seen[restarted_at:]) >= 200, "200 answers after the restart")
        finally:
            stop.set()
            await asyncio.gather(*workers)  # an exception that escaped a call fails the test here
            await client.close()
        reasons = [a.reason for a in seen]
        assert "assigned" in reasons[: reasons.index("fallback")]
        fallback = next(a for a in seen[killed_at:] if a.reason == "fallback" and a.experiment == "checkout-prompt")
        check_fallback(fallback, fallback.error)

    asyncio.run(scenario())


def test_cancelling_waiting_tasks_leaves_the_connection_usable(start_daemon) -> None:
    daemon = start_daemon()

    async def scenario() -> None:
        client = AsyncVariantClient(daemon.socket_path, timeout=10)
        try:
            await client.assign("checkout-prompt", "user-0")  # connected
            tasks = [asyncio.ensure_future(client.assign(e, u, a)) for e, u, a in REQUESTS[:200]]
            # One turn of the loop runs each task until it waits for its answer: each has written its request, and
            # no answer can have been read yet (the loop reads the socket only after the tasks' steps of this turn).
            await asyncio.sleep(0)
            assert len(client._wire.waiting) == 200
            for task in tasks[::2]:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for index, ((experiment, unit, attributes), result) in enumerate(zip(REQUESTS, results)):
                if index % 2 == 0:
                    assert isinstance(result, asyncio.CancelledError)
                else:
                    assert result.variant == expected(experiment, unit, attributes).variant, unit
            # The cancelled requests' answers come and are dropped; the connection carries on.
            await until(lambda: not client._wire.waiting, "no answer is waited for")
            later = await asyncio.gather(*(client.assign(e, u, a) for e, u, a in REQUESTS[200:300]))
            assert [a.variant for a in later] == [expected(e, u, a).variant for e, u, a in REQUESTS[200:300]]
            assert client.connections == 1 and client.fallbacks == 0
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_missing_socket_gives_the_fallback_at_once(short_dir) -> None:
    async def scenario() -> None:
        client = AsyncVariantClient(str(short_dir / "nothing.sock"), fallback=FALLBACK)
        try:
            # "unreachable", not "timeout": the missing socket was known at once, no deadline was waited for.
            check_fallback(await client.assign("checkout-prompt", "user-42"), "unreachable")
            check_fallback(await client.prompt("checkout-prompt", "user-42"), "unreachable")
            rendering = await client.render("checkout-prompt", "user-42", {})
            assert rendering.ok and rendering.is_fallback and rendering.text == "You are a friendly checkout assistant."
            assert rendering.assignment.error == "unreachable"
            assert client.fallbacks == 3
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_render_whose_request_cannot_be_made_falls_back_in_both_clients(start_daemon) -> None:
    daemon = start_daemon()
    variables = {"store_name": "Acme", "customer_name": float("nan")}  # JSON has no NaN

    async def scenario() -> None:
        client = AsyncVariantClient(daemon.socket_path, fallback=FALLBACK, timeout=2)
        try:
            rendering = await client.render("checkout-prompt", "user-42", variables)
            assert rendering.is_fallback and rendering.assignment.error == "client_error"
            assert client.fallbacks == 1
            assert (await client.render("checkout-prompt", "user-42", {"store_name": "Acme", "customer_name": "Ada"})).ok
        finally:
            await client.close()

    asyncio.run(scenario())
    blocking = VariantClient(daemon.socket_path, fallback=FALLBACK, timeout=2)
    try:
        rendering = blocking.render("checkout-prompt", "user-42", variables)
        assert rendering.is_fallback and rendering.assignment.error == "client_error"
        assert blocking.render("checkout-prompt", "user-42", {"store_name": "Acme", "customer_name": "Ada"}).ok
    finally:
        blocking.close()


def test_a_hung_daemon_gives_the_fallback_within_the_timeout_and_a_cancelled_wait_raises_nothing_else(line_server) -> None:
    server = line_server(lambda line: None)  # accepts, reads, never answers

    async def scenario() -> None:
        client = AsyncVariantClient(server.path, fallback=FALLBACK, timeout=0.05, retry_after=0)
        try:
            for _ in range(3):
                started = time.monotonic()
                check_fallback(await client.assign("checkout-prompt", "user-42"), "timeout")
                # Not before the deadline; and well before a test runner would give up (a bound 200 times the
                # timeout, which no load makes the loop miss, where a deadline not kept would wait forever).
                assert 0.05 <= time.monotonic() - started < 10
            await until(lambda: len(server.received) == 3, "each request reached the server")
            assert client.connections == 1  # a timeout does not cost the connection: answers are matched by id
            waiting = asyncio.ensure_future(client.assign("checkout-prompt", "user-42"))
            await until(lambda: len(server.received) == 4, "the fourth request reached the server")
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            assert waiting.cancelled()
            check_fallback(await client.assign("checkout-prompt", "user-42"), "timeout")
            assert client.connections == 1 and len(server.received) == 5
        finally:
            await client.close()

    asyncio.run(scenario())


def test_records_are_buffered_without_waiting_and_reach_the_daemon(start_daemon) -> None:
    daemon = start_daemon()

    async def scenario() -> None:
        client = AsyncVariantClient(daemon.socket_path, timeout=5, flush_interval=0.01)
        try:
            answers = await asyncio.gather(*(client.assign("checkout-prompt", f"user-{i}") for i in range(100)))
            assert all(client.record(a, latency_ms=10.0, success=True) for a in answers)
            assert client.record("checkout-prompt", "nope", error=True)  # refused by the daemon, counted
            assert await client.flush(10)
            await until(lambda: client.rejected == 1, "the refusal is counted")
            assert client.sent == 101 and client.dropped == 0
            stats = await client.stats("checkout-prompt")
            assert sum(v["records"] for v in stats["variants"]) == 100
        finally:
            await client.close()

    asyncio.run(scenario())


def test_one_timer_per_connection_keeps_each_requests_deadline(line_server) -> None:
    server = line_server(lambda line: None)  # accepts, reads, never answers

    async def scenario() -> None:
        client = AsyncVariantClient(server.path, fallback=FALLBACK, timeout=5, retry_after=0)
        try:
            slow = asyncio.ensure_future(client.assign("checkout-prompt", "user-1"))
            await until(lambda: len(server.received) == 1, "the first request reached the server")
            # A later request with an earlier deadline: the connection's one timer is armed for it.
            client.timeout = 0.05
            check_fallback(await client.assign("checkout-prompt", "user-2"), "timeout")
            # The later request timed out while the earlier one, 5 s from its start, still waits: the timer was
            # armed for the later deadline (armed only for the first, both would have ended together).
            assert not slow.done() and client.connections == 1
            slow.cancel()
            await asyncio.gather(slow, return_exceptions=True)
        finally:
            await client.close()

    asyncio.run(scenario())


def test_answered_requests_do_not_pile_up_in_the_connections_deadlines(start_daemon) -> None:
    daemon = start_daemon()

    async def scenario() -> None:
        client = AsyncVariantClient(daemon.socket_path, timeout=60)
        try:
            for i in range(500):
                assert not (await client.assign("checkout-prompt", f"user-{i}")).is_fallback
            assert len(client._wire.deadlines) <= 2 * len(client._wire.waiting) + 65
        finally:
            await client.close()

    asyncio.run(scenario())


def test_answers_cut_in_pieces_or_arriving_together_each_reach_their_request() -> None:
    from variantd_client.async_client import _Wire

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wire = _Wire()
        futures = {request_id: loop.create_future() for request_id in (1, 2, 3, 4)}
        wire.waiting.update(futures)
        wire.data_received(b'{"id":1,"ok":true,"n":1}\n{"id":2,')  # one whole answer and the start of the next
        assert futures[1].result() == b'{"id":1,"ok":true,"n":1}' and not futures[2].done()
        wire.data_received(b'"ok":true,"n":2}\n')  # the rest of it
        assert futures[2].result() == b'{"id":2,"ok":true,"n":2}'
        wire.data_received(b'{"id":3,"ok":true,"n":3}\n')  # one whole answer alone, the usual case
        assert futures[3].result() == b'{"id":3,"ok":true,"n":3}' and not futures[4].done()
        wire.data_received(b'{"id":4,"ok":true,"n":4}\n{"id":9,"ok":true}\n')  # and one for no one, dropped
        assert futures[4].result() == b'{"id":4,"ok":true,"n":4}'
        assert wire.buffer == b"" and not wire.waiting

    asyncio.run(scenario())
