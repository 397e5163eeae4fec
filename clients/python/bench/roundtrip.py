#!/usr/bin/env python3
"""How much the Python shims add to a round trip to variantd: pairs of a raw socket round trip and a shim call, on
the shim's own connection, against a release daemon this script starts.

    python3 clients/python/bench/roundtrip.py                 # .build/release/variantd, or $VARIANTD_BINARY
    python3 clients/python/bench/roundtrip.py --rounds 15 --calls 4000 --json
    python3 clients/python/bench/roundtrip.py --gap-us 1000      # calls spaced as a service's are, caches gone cold

Each measurement is a *pair*: a shim call and the raw round trip it is compared with. A round runs every pair's
``--calls`` pairs of calls (pairs in an order that rotates from round to round); within a pair the two calls go
one after the other over the same connection, which of the two first alternating from pair to pair. Every call is
timed; a round's figures are the medians of its raw calls and of its shim calls, their difference (what the shim
adds) and their ratio. The report gives each as the median over the rounds with the lowest and highest round.

Why pairs on one connection: on these machines a round trip takes about 17-25 µs when the daemon's event-loop
thread runs on the client's core and 45-55 µs when it runs on the other one, and the scheduler moves between the
two from time to time. Blocks of calls of one kind (this script's method before) each fell in one mode or the
other, so a round's ratio ranged from 0.7 to 3.4 in one run. Both calls of a pair go through the same socket to
the same event-loop thread at the same moment, so they share the mode, and the shim's cost is what remains.

- ``raw``: a request line made before the clock starts, one ``sendall``, ``recv`` until the newline, no JSON:
  the floor a client in Python can reach. Its ids are its own (from 10**9), the shim's answers are untouched.
- ``shim assign / raw assign``, ``shim prompt / raw assign`` (a cached template costs no round trip),
  ``shim render / raw render``: ``VariantClient``, as a service calls it.
- ``shim render distinct / raw render distinct``: renders whose variables name the unit, so every answer differs;
  the shim keeps the decoding of answers it has seen, which serves the plain render's repeated answers but none of
  these.
- ``async assign / raw assign``: ``AsyncVariantClient``, one task awaiting its calls one after another (the loop's
  own overhead included), the raw round trips on its connection too; for information.

Every answer is checked after its round: ids and ``ok`` for raw answers, and each unit's variant (and the rendered
text's variant) against the decision computed here (``assign_locally``); a wrong answer stops the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
sys.path.append(str(HERE.parent))  # after $PYTHONPATH, so another copy of the client can be measured
sys.path.append(str(HERE.parent / "tests"))

from daemon import Daemon  # noqa: E402

from variantd_client import VariantClient, assign_locally  # noqa: E402

try:
    from variantd_client import AsyncVariantClient
except ImportError:  # a client from before the asyncio one, measured through $PYTHONPATH
    AsyncVariantClient = None

CONFIG = REPO / "examples" / "variantd.json"
EXPERIMENT = "checkout-prompt"
VARIABLES = {"store_name": "Acme", "customer_name": "Ada", "tone": "warm"}
PAIRS = [
    ("shim assign / raw assign", "shim assign", "raw assign"),
    ("shim prompt / raw assign", "shim prompt", "raw assign"),
    ("shim render / raw render", "shim render", "raw render"),
    ("shim render distinct / raw render distinct", "shim render distinct", "raw render distinct"),
    ("async assign / raw assign", "async assign", "raw assign"),
]
RAW_FIRST_ID = 10**9
"""The raw round trips' first id: far from the shim's, which count from 1."""


def variables_for(unit: str, distinct: bool) -> Dict[str, str]:
    """The render's variables: the same for every call, or with the unit as the customer's name, so that every
    answer differs (as a service's usually do) and no answer the shim kept can serve."""
    return {**VARIABLES, "customer_name": unit} if distinct else VARIABLES


def raw_lines(kind: str, units: List[str]) -> List[bytes]:
    """The raw request lines of ``kind`` for ``units``, ids from :data:`RAW_FIRST_ID` on."""
    render = kind.startswith("raw render")
    made = []
    for index, unit in enumerate(units):
        request = {"id": RAW_FIRST_ID + index, "op": "render" if render else "assign", "experiment": EXPERIMENT, "unit": unit}
        if render:
            request["variables"] = variables_for(unit, kind.endswith("distinct"))
        made.append(json.dumps(request, separators=(",", ":")).encode() + b"\n")
    return made


def raw_round_trip(sock: socket.socket, line: bytes) -> bytes:
    """The floor: one ``sendall`` of a line made in advance, ``recv`` until the newline."""
    sock.sendall(line)
    answer = sock.recv(65536)
    while not answer.endswith(b"\n"):
        answer += sock.recv(65536)
    return answer


def median_us(durations: List[int]) -> float:
    return statistics.median(durations) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("VARIANTD_BINARY") or REPO / ".build" / "release" / "variantd"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000, help="pairs of calls per measurement and round")
    parser.add_argument("--warmup", type=int, default=2000, help="pairs of each measurement before the first round")
    parser.add_argument("--gap-us", type=float, default=0.0,
                        help="sleep this many microseconds before each call, raw and shim alike, as a service's calls are spaced "
                        "(0: back to back, the target's measure)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--profile", choices=["pyinstrument"], help="profile the rounds of the shim's assign instead")
    options = parser.parse_args()
    if not options.binary.is_file():
        raise SystemExit(f"no variantd binary at {options.binary}: run scripts/build-release variantd, or give --binary")
    if options.calls < 1 or options.rounds < 1:
        raise SystemExit("--calls and --rounds must be at least 1")
    if options.gap_us < 0:
        raise SystemExit("--gap-us must not be negative")
    gap = options.gap_us / 1e6
    pause = (lambda: time.sleep(gap)) if gap else (lambda: None)

    config = json.loads(CONFIG.read_text())
    units = [f"user-{i}" for i in range(options.calls)]
    expected = {unit: assign_locally(config, EXPERIMENT, unit).variant for unit in units}
    lines = {kind: raw_lines(kind, units) for kind in ("raw assign", "raw render", "raw render distinct")}

    with tempfile.TemporaryDirectory(prefix="vd-bench-") as directory:
        daemon = Daemon(options.binary, Path(directory), CONFIG, log_level="warning")
        shim = VariantClient(daemon.socket_path, timeout=1.0)
        loop = asyncio.new_event_loop()
        aio = AsyncVariantClient(daemon.socket_path, timeout=1.0) if AsyncVariantClient else None
        try:
            def check_raw(kind: str, count: int, answers: List[bytes]) -> None:
                for index, (unit, answer) in enumerate(zip(units[:count], answers)):
                    parsed = json.loads(answer)
                    if parsed.get("id") != RAW_FIRST_ID + index or parsed.get("ok") is not True or parsed["variant"] != expected[unit]:
                        raise SystemExit(f"{kind}: wrong answer for {unit}: {answer!r}")

            def check_shim(kind: str, answers: List[object]) -> None:
                for unit, answer in zip(units, answers):
                    rendered = kind.startswith("shim render")
                    assignment = answer.assignment if rendered else answer  # type: ignore[attr-defined]
                    if assignment.reason != "assigned" or assignment.variant != expected[unit]:
                        raise SystemExit(f"{kind}: wrong answer for {unit}: {answer!r}")
                    if kind == "shim prompt" and not assignment.template:
                        raise SystemExit(f"{kind}: no template for {unit}: {answer!r}")
                    if rendered and ("Acme" not in (answer.text or "") or answer.error):  # type: ignore[attr-defined]
                        raise SystemExit(f"{kind}: not rendered for {unit}: {answer!r}")
                    if kind == "shim render distinct" and unit not in (answer.text or ""):  # type: ignore[attr-defined]
                        raise SystemExit(f"{kind}: not rendered with {unit}'s variables: {answer!r}")

            def shim_call(kind: str) -> Callable[[str], object]:
                if kind == "shim assign":
                    return lambda unit: shim.assign(EXPERIMENT, unit)
                if kind == "shim prompt":
                    return lambda unit: shim.prompt(EXPERIMENT, unit)
                distinct = kind.endswith("distinct")
                return lambda unit: shim.render(EXPERIMENT, unit, variables_for(unit, distinct))

            def blocking_pairs(shim_kind: str, raw_kind: str, count: int, round_index: int) -> Tuple[List[int], List[int]]:
                """``count`` pairs of a raw round trip on the shim's connection and a shim call."""
                call, requests = shim_call(shim_kind), lines[raw_kind]
                shim.assign(EXPERIMENT, units[0])  # the kept connection, if a failure had dropped it
                connection = shim._connection
                if connection is None:
                    raise SystemExit(f"{shim_kind}: the shim has no connection to {daemon.socket_path}")
                sock = connection.sock
                raw_durations, shim_durations = [0] * count, [0] * count
                raw_answers: List[bytes] = [b""] * count
                answers: List[object] = [None] * count
                clock = time.perf_counter_ns

                def raw_pair_half(i: int) -> None:
                    pause()
                    started = clock()
                    raw_answers[i] = raw_round_trip(sock, requests[i])
                    raw_durations[i] = clock() - started

                for i in range(count):
                    raw_first = (i + round_index) % 2 == 0
                    if raw_first:
                        raw_pair_half(i)
                    pause()
                    started = clock()
                    answers[i] = call(units[i])
                    shim_durations[i] = clock() - started
                    if not raw_first:
                        raw_pair_half(i)
                if shim._connection is not connection:
                    raise SystemExit(f"{shim_kind}: the shim's connection changed during the measurement")
                check_raw(raw_kind, count, raw_answers)
                check_shim(shim_kind, answers)
                return raw_durations, shim_durations

            async def async_pairs(count: int, round_index: int) -> Tuple[List[int], List[int]]:
                """``count`` pairs of a raw round trip on the asyncio client's connection and an ``assign`` awaited.
                The raw round trips are made in the task, the loop held: its socket is made blocking for them (the
                flag is the connection's, shared with the loop's descriptor) and non-blocking again, off the clock."""
                requests = lines["raw assign"]
                await aio.assign(EXPERIMENT, units[0])  # type: ignore[union-attr]  # the connection
                wire = aio._wire  # type: ignore[union-attr]
                if wire is None or wire.transport is None:
                    raise SystemExit(f"async assign: no connection to {daemon.socket_path}")
                sock = socket.socket(fileno=os.dup(wire.transport.get_extra_info("socket").fileno()))
                raw_durations, shim_durations = [0] * count, [0] * count
                raw_answers: List[bytes] = [b""] * count
                answers: List[object] = [None] * count
                clock = time.perf_counter_ns

                def raw_pair_half(i: int) -> None:
                    sock.setblocking(True)
                    pause()
                    started = clock()
                    raw_answers[i] = raw_round_trip(sock, requests[i])
                    raw_durations[i] = clock() - started
                    sock.setblocking(False)

                try:
                    for i in range(count):
                        raw_first = (i + round_index) % 2 == 0
                        if raw_first:
                            raw_pair_half(i)
                        pause()
                        started = clock()
                        answers[i] = await aio.assign(EXPERIMENT, units[i])  # type: ignore[union-attr]
                        shim_durations[i] = clock() - started
                        if not raw_first:
                            raw_pair_half(i)
                finally:
                    sock.setblocking(False)
                    sock.close()  # the duplicate descriptor; the loop's stays open
                if aio._wire is not wire:  # type: ignore[union-attr]
                    raise SystemExit("async assign: the connection changed during the measurement")
                check_raw("raw assign", count, raw_answers)
                check_shim("async assign", answers)
                return raw_durations, shim_durations

            def measure(shim_kind: str, raw_kind: str, count: int, round_index: int) -> Tuple[List[int], List[int]]:
                if shim_kind == "async assign":
                    return loop.run_until_complete(async_pairs(count, round_index))
                return blocking_pairs(shim_kind, raw_kind, count, round_index)

            pairs = [pair for pair in PAIRS if aio or not pair[1].startswith("async")]
            for _, shim_kind, raw_kind in pairs:
                measure(shim_kind, raw_kind, min(options.warmup, options.calls) or 1, 0)

            if options.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0001)
                profiler.start()
                for round_index in range(options.rounds):
                    measure("shim assign", "raw assign", options.calls, round_index)
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False, show_all=False))
                return 0

            medians: Dict[str, Tuple[List[float], List[float]]] = {name: ([], []) for name, _, _ in pairs}
            gc.disable()  # a collection inside one measurement would land on it alone
            try:
                for round_index in range(options.rounds):
                    shift = round_index % len(pairs)
                    for name, shim_kind, raw_kind in pairs[shift:] + pairs[:shift]:
                        raw_durations, shim_durations = measure(shim_kind, raw_kind, options.calls, round_index)
                        medians[name][0].append(median_us(raw_durations))
                        medians[name][1].append(median_us(shim_durations))
                    gc.collect()
            finally:
                gc.enable()
        finally:
            shim.close()
            if aio is not None:
                loop.run_until_complete(aio.close())
            loop.close()
            daemon.stop()

    def spread(values: List[float]) -> Dict[str, float]:
        return {"median": statistics.median(values), "low": min(values), "high": max(values)}

    report = {
        "rounds": options.rounds,
        "calls": options.calls,
        "python": sys.version.split()[0],
        "gap_us": options.gap_us,
        "method": f"Python {sys.version.split()[0]}, {options.rounds} rounds of {options.calls} pairs of calls (raw round trip and shim "
        "call, alternating which goes first) on the shim's connection, pairs in rotating order"
        + (f", a sleep of {options.gap_us:g} µs before each call" if options.gap_us else ", back to back"),
        "pairs": [
            {
                "name": name,
                "raw": spread(raw),
                "shim": spread(shim_us),
                "added": spread([s - r for s, r in zip(shim_us, raw)]),
                "ratio": spread([s / r for s, r in zip(shim_us, raw)]),
                "rounds": {"raw": raw, "shim": shim_us},
            }
            for name, (raw, shim_us) in medians.items()
        ],
    }
    if options.json:
        print(json.dumps(report, indent=2))
        return 0
    print(report["method"])
    print("each figure: the median over the rounds of a round's median (lowest – highest round)")
    print(f"{'pair':44} {'raw µs':>20} {'shim µs':>20} {'added µs':>18} {'shim / raw':>18}")

    def text(figures: Dict[str, float], decimals: int) -> str:
        return f"{figures['median']:.{decimals}f} ({figures['low']:.{decimals}f} – {figures['high']:.{decimals}f})"

    for pair in report["pairs"]:
        print(f"{pair['name']:44} {text(pair['raw'], 1):>20} {text(pair['shim'], 1):>20} {text(pair['added'], 1):>18} {text(pair['ratio'], 2):>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
