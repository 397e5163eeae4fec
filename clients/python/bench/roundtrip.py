#!/usr/bin/env python3
"""How much the Python shims add to a round trip to variantd: a raw socket round trip and the shim's calls,
measured in the same run against a release daemon this script starts, in interleaved rounds.

    python3 clients/python/bench/roundtrip.py                 # .build/release/variantd, or $VARIANTD_BINARY
    python3 clients/python/bench/roundtrip.py --rounds 15 --calls 4000 --json

Each round runs every measurement once, ``--calls`` sequential calls each over one kept connection, in an order
that rotates from round to round, so drift (another process, the CPU's clock) falls on all of them alike. Every
call is timed; a measurement's figure for a round is the median of its calls. The report gives, per measurement,
the median of its round figures with their spread (lowest to highest), and per shim call its ratio to the raw
round trip of the same kind, taken round by round (shim / raw in the same round), as a median with its spread.

- ``raw assign`` / ``raw render`` / ``raw render distinct``: a plain blocking socket, a request line made before the clock starts, one
  ``sendall``, ``recv`` until the newline. No JSON either way: the floor a client in Python can reach.
- ``shim assign``, ``shim prompt`` (compared with raw assign: a cached template costs no round trip),
  ``shim render``: ``VariantClient``, as a service calls it.
- ``render distinct`` (raw and shim): renders whose variables name the unit, so every answer differs; the shim keeps
  the decoding of answers it has seen, which serves the plain ``render``'s repeated answers but none of these.
- ``async assign``: ``AsyncVariantClient``, one task awaiting its calls one after another (the loop's own
  overhead included), for information.

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
RAW_OF = {
    "shim assign": "raw assign",
    "shim prompt": "raw assign",
    "shim render": "raw render",
    "shim render distinct": "raw render distinct",
    "async assign": "raw assign",
}


def variables_for(unit: str, distinct: bool) -> Dict[str, str]:
    """The render's variables: the same for every call, or with the unit as the customer's name, so that every
    answer differs (as a service's usually do) and no answer the shim kept can serve."""
    return {**VARIABLES, "customer_name": unit} if distinct else VARIABLES


class Raw:
    """The floor: a blocking socket, lines made in advance, no JSON."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.next_id = 1

    def lines(self, units: List[str], render: bool, distinct: bool = False) -> List[bytes]:
        made = []
        for unit in units:
            request = {"id": self.next_id, "op": "render" if render else "assign", "experiment": EXPERIMENT, "unit": unit}
            if render:
                request["variables"] = variables_for(unit, distinct)
            made.append(json.dumps(request, separators=(",", ":")).encode() + b"\n")
            self.next_id += 1
        return made

    def round_trip(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        answer = self.sock.recv(65536)
        while not answer.endswith(b"\n"):
            answer += self.sock.recv(65536)
        return answer


def timed(calls: List[Callable[[], object]]) -> Tuple[List[int], List[object]]:
    """Runs each call, timing it; the answers come back for checking after the clock stops."""
    durations = [0] * len(calls)
    answers: List[object] = [None] * len(calls)
    clock = time.perf_counter_ns
    for i, call in enumerate(calls):
        started = clock()
        answers[i] = call()
        durations[i] = clock() - started
    return durations, answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("VARIANTD_BINARY") or REPO / ".build" / "release" / "variantd"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement and round")
    parser.add_argument("--warmup", type=int, default=2000, help="calls of each kind before the first round")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--profile", choices=["pyinstrument"], help="profile one round of the shim's assign instead")
    options = parser.parse_args()
    if not options.binary.is_file():
        raise SystemExit(f"no variantd binary at {options.binary}: run scripts/build-release variantd, or give --binary")

    config = json.loads(CONFIG.read_text())
    units = [f"user-{i}" for i in range(options.calls)]
    expected = {unit: assign_locally(config, EXPERIMENT, unit).variant for unit in units}

    with tempfile.TemporaryDirectory(prefix="vd-bench-") as directory:
        daemon = Daemon(options.binary, Path(directory), CONFIG, log_level="warning")
        raw = Raw(daemon.socket_path)
        shim = VariantClient(daemon.socket_path, timeout=1.0)
        loop = asyncio.new_event_loop()
        aio = AsyncVariantClient(daemon.socket_path, timeout=1.0) if AsyncVariantClient else None
        try:
            def check_raw(answers: List[object], lines: List[bytes]) -> None:
                for unit, line, answer in zip(units, lines, answers):
                    request_id = json.loads(line)["id"]
                    parsed = json.loads(answer)  # type: ignore[arg-type]
                    if parsed.get("id") != request_id or parsed.get("ok") is not True or parsed["variant"] != expected[unit]:
                        raise SystemExit(f"raw: wrong answer for {unit}: {answer!r}")

            def check_shim(answers: List[object], kind: str) -> None:
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

            async def async_assigns() -> Tuple[List[int], List[object]]:
                durations, answers = [0] * len(units), [None] * len(units)
                clock = time.perf_counter_ns
                for i, unit in enumerate(units):
                    started = clock()
                    answers[i] = await aio.assign(EXPERIMENT, unit)
                    durations[i] = clock() - started
                return durations, answers  # type: ignore[return-value]

            def measure(kind: str) -> List[int]:
                if kind.startswith("raw"):
                    lines = raw.lines(units, render=kind.startswith("raw render"), distinct=kind.endswith("distinct"))
                    durations, answers = timed([lambda line=line: raw.round_trip(line) for line in lines])
                    check_raw(answers, lines)
                    return durations
                if kind == "async assign":
                    durations, answers = loop.run_until_complete(async_assigns())
                    check_shim(answers, "shim assign")
                    return durations
                call = {"shim assign": shim.assign, "shim prompt": shim.prompt}.get(kind)
                if call is not None:
                    durations, answers = timed([lambda unit=unit: call(EXPERIMENT, unit) for unit in units])
                else:
                    distinct = kind.endswith("distinct")
                    durations, answers = timed(
                        [lambda unit=unit: shim.render(EXPERIMENT, unit, variables_for(unit, distinct)) for unit in units]
                    )
                check_shim(answers, kind)
                return durations

            kinds = ["raw assign", "shim assign", "shim prompt", "raw render", "shim render", "raw render distinct", "shim render distinct"]
            kinds += ["async assign"] if aio else []
            warm = options.calls
            options.calls = min(options.warmup, options.calls) or 1
            for kind in kinds:
                measure(kind)
            options.calls = warm

            if options.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0001)
                profiler.start()
                for _ in range(options.rounds):
                    measure("shim assign")
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False, show_all=False))
                return 0

            medians: Dict[str, List[float]] = {kind: [] for kind in kinds}
            gc.disable()  # a collection inside one measurement's block would land on it alone
            try:
                for round_index in range(options.rounds):
                    shift = round_index % len(kinds)
                    for kind in kinds[shift:] + kinds[:shift]:
                        medians[kind].append(statistics.median(measure(kind)) / 1000)
                    gc.collect()
            finally:
                gc.enable()
        finally:
            shim.close()
            if aio is not None:
                loop.run_until_complete(aio.close())
            loop.close()
            daemon.stop()

    report = {
        "rounds": options.rounds,
        "calls": options.calls,
        "python": sys.version.split()[0],
        "us": {kind: {"median": statistics.median(values), "low": min(values), "high": max(values)} for kind, values in medians.items()},
        "ratio": {},
    }
    for kind, raw_kind in RAW_OF.items():
        if kind not in medians:
            continue
        ratios = [shim / base for shim, base in zip(medians[kind], medians[raw_kind])]
        report["ratio"][f"{kind} / {raw_kind}"] = {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}
    if options.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{options.rounds} rounds of {options.calls} sequential calls each, one connection per client, Python {report['python']}")
    print(f"{'':20} {'median µs':>10}  {'spread (round medians)':>24}")
    for kind, figures in report["us"].items():
        print(f"{kind:20} {figures['median']:10.1f}  {figures['low']:10.1f} – {figures['high']:<10.1f}")
    print()
    print(f"{'ratio, round by round':42} {'median':>7}  spread")
    for name, figures in report["ratio"].items():
        print(f"{name:42} {figures['median']:7.2f}  {figures['low']:.2f} – {figures['high']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
