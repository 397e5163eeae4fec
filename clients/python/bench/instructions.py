#!/usr/bin/env python3
"""The Python shims' own instructions per call, counted by valgrind (the same whatever the machine's load).

    python3 clients/python/bench/instructions.py                       # every call; .build/release/variantd
    python3 clients/python/bench/instructions.py --calls assign render --json
    PYTHONPATH=/path/to/another/copy python3 clients/python/bench/instructions.py   # another client, the same way

The answers are captured once from a release daemon this script starts; each count is then a run of this script
under ``valgrind --tool=callgrind`` (no daemon there) that makes its calls against a socketpair whose other end
already holds the answer (no wake-up, no waiting): before each call the harness writes the answer with the id the
call will use, after it reads the request. Only the calls themselves are counted: each is made through
``operator.call``, the one function callgrind collects in (``--toggle-collect``), after a warm-up made without it,
so start-up, warm-up and the harness's own ``send`` and ``recv`` are left out; a figure is the instructions
collected, per call. The socket timeouts are never re-armed (valgrind's slowness would re-arm them on every call),
and the blocking client's record sender sleeps throughout (its thread would wake as often as valgrind is slow).

- ``raw``: ``sendall`` of a line made in advance and ``recv`` to the newline, as ``roundtrip.py``'s raw round trip;
- ``assign``, ``prompt`` (template cached), ``render`` (the same variables each call), ``render distinct`` (the unit
  as the customer's name, so every answer differs): ``VariantClient``;
- ``async assign``: ``AsyncVariantClient``, each call run to completion on the loop (``run_until_complete``, whose
  own task per call is counted too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
sys.path.append(str(HERE.parent))  # after $PYTHONPATH, so another copy of the client can be measured
sys.path.append(str(HERE.parent / "tests"))

CONFIG = REPO / "examples" / "variantd.json"
EXPERIMENT = "checkout-prompt"
VARIABLES = {"store_name": "Acme", "customer_name": "Ada", "tone": "warm"}
CALLS = ["raw", "assign", "prompt", "render", "render distinct", "async assign"]
WARM_UP = 20
INFINITY = float("inf")
counted = operator.call
"""What callgrind counts in (``_operator_call``): the calls made through it, and nothing else."""


def unit_of(index: int) -> str:
    return f"user-{index}"


def capture(binary: Path, count: int) -> Dict[str, object]:
    """What the daemon answers to each call, the bytes after each answer's id (the id is the call's own)."""
    from daemon import Daemon  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="vd-count-") as directory:
        daemon = Daemon(binary, Path(directory), CONFIG, log_level="warning")
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(daemon.socket_path)
            reader = sock.makefile("rb")

            def ask(request: Dict[str, object]) -> bytes:
                sock.sendall(json.dumps({"id": 1, **request}, separators=(",", ":")).encode() + b"\n")
                answer = reader.readline().rstrip(b"\n")
                assert answer.startswith(b'{"id":1,') and b'"ok":true' in answer, answer
                return answer[len(b'{"id":1') :]

            assign = ask({"op": "assign", "experiment": EXPERIMENT, "unit": unit_of(0)})
            fields = json.loads(b"{" + assign[1:])
            template = ask({"op": "prompt", "prompt": fields["prompt"], "prompt_version": fields["prompt_version"]})
            render = ask({"op": "render", "experiment": EXPERIMENT, "unit": unit_of(0), "variables": VARIABLES})
            distinct = [
                ask({"op": "render", "experiment": EXPERIMENT, "unit": unit_of(i), "variables": {**VARIABLES, "customer_name": unit_of(i)}})
                for i in range(count)
            ]
            sock.close()
        finally:
            daemon.stop()
    # Every unit of the bench gets the same variant here only if their answers are alike; the counts need one answer
    # per call, and the assign answer does not name the unit.
    return {"assign": assign.decode(), "template": template.decode(), "render": render.decode(), "distinct": [d.decode() for d in distinct]}


def replay(answers: Dict[str, object], kind: str, calls: int) -> None:
    """Makes ``calls`` counted calls of ``kind`` (after a warm-up) against a socketpair that holds each answer
    already."""
    from variantd_client import AsyncVariantClient, VariantClient  # noqa: PLC0415
    from variantd_client.async_client import _Wire  # noqa: PLC0415
    from variantd_client.transport import Connection  # noqa: PLC0415

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    assign = answers["assign"].encode()  # type: ignore[union-attr]
    render = answers["render"].encode()  # type: ignore[union-attr]
    distinct = [d.encode() for d in answers["distinct"]]  # type: ignore[union-attr]
    send, recv = theirs.send, theirs.recv

    if kind == "raw":
        lines = [b'{"id":%d,"op":"assign","experiment":"%s","unit":"%s"}\n' % (i, EXPERIMENT.encode(), unit_of(i).encode()) for i in range(calls + WARM_UP)]
        sendall, receive = ours.sendall, ours.recv

        def round_trip(request: bytes) -> bytes:
            sendall(request)
            answer = receive(65536)
            while not answer.endswith(b"\n"):
                answer += receive(65536)
            return answer

        for i, request in enumerate(lines):
            send(b'{"id":%d%s\n' % (i, assign))
            round_trip(request) if i < WARM_UP else counted(round_trip, request)
            recv(65536)
        return

    if kind == "async assign":
        client = AsyncVariantClient("/nonexistent", timeout=1.0)
        loop = asyncio.new_event_loop()
        _, wire = loop.run_until_complete(loop.create_unix_connection(_Wire, sock=ours))
        client._bind(loop)
        client._wire = wire
        for i in range(calls + WARM_UP):
            send(b'{"id":%d%s\n' % (client._next_id, assign))
            call = client.assign(EXPERIMENT, unit_of(i))
            result = loop.run_until_complete(call) if i < WARM_UP else counted(loop.run_until_complete, call)
            recv(65536)
            if result.is_fallback:
                raise SystemExit(f"async assign: not the daemon's answer: {result!r}")
        wire.close()
        loop.close()
        return

    # The record sender sleeps throughout.
    client = VariantClient("/nonexistent", timeout=1.0, flush_interval=3600)
    connection = object.__new__(Connection)
    connection.sock, connection.buffer = ours, b""
    connection._armed, connection._armed_low = INFINITY, -INFINITY
    client._connection = connection
    if kind == "prompt":  # the template, as the first call of its version would have cached it
        from variantd_client import PromptVersion  # noqa: PLC0415

        version = PromptVersion.from_answer(json.loads("{" + answers["template"][1:]))  # type: ignore[index]
        client._templates[(version.config_version or "", version.prompt, version.version)] = version
    call: Callable[[int], object] = {
        "assign": lambda i: client.assign(EXPERIMENT, unit_of(i)),
        "prompt": lambda i: client.prompt(EXPERIMENT, unit_of(i)),
        "render": lambda i: client.render(EXPERIMENT, unit_of(i), VARIABLES),
        "render distinct": lambda i: client.render(EXPERIMENT, unit_of(i), {**VARIABLES, "customer_name": unit_of(i)}),
    }[kind]
    answer_of: Callable[[int], bytes] = {"render": lambda i: render, "render distinct": lambda i: distinct[i]}.get(kind, lambda i: assign)
    for i in range(calls + WARM_UP):
        send(b'{"id":%d%s\n' % (client._next_id, answer_of(i)))
        result = call(i) if i < WARM_UP else counted(call, i)
        recv(65536)
        if getattr(result, "error", None) is not None or getattr(result, "is_fallback", False):
            raise SystemExit(f"{kind}: not the daemon's answer: {result!r}")
    client._connection = None
    client.close(0)


def count(answers_path: str, kind: str, calls: int) -> float:
    """The instructions callgrind counts per call over ``calls`` counted calls of ``kind``."""
    with tempfile.TemporaryDirectory(prefix="vd-count-") as directory:
        out = os.path.join(directory, "callgrind.out")
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=_operator_call",
             f"--callgrind-out-file={out}", sys.executable, __file__, "--replay", answers_path, "--kind", kind,
             "--count", str(calls)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"{kind}: the replay failed:\n{result.stderr[-3000:]}")
        found = re.search(r"^totals:\s+(\d+)", Path(out).read_text(errors="replace"), re.M)
        if found is None:
            raise SystemExit(f"no instruction count in callgrind's output:\n{result.stderr[-2000:]}")
        return int(found.group(1)) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("VARIANTD_BINARY") or REPO / ".build" / "release" / "variantd"))
    parser.add_argument("--calls", nargs="+", choices=CALLS, default=CALLS)
    parser.add_argument("--count", type=int, default=1000, help="counted calls of each kind")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--replay", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.replay:
        replay(json.loads(Path(options.replay).read_text()), options.kind, options.count)
        return 0
    if not options.binary.is_file():
        raise SystemExit(f"no variantd binary at {options.binary}: run scripts/build-release variantd, or give --binary")
    figures: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vd-count-") as directory:
        answers_path = os.path.join(directory, "answers.json")
        Path(answers_path).write_text(json.dumps(capture(options.binary, options.count + WARM_UP)))
        for kind in options.calls:
            figures[kind] = count(answers_path, kind, options.count)
            if not options.json:
                print(f"{kind:16} {figures[kind]:10,.0f} instructions per call", flush=True)
    if options.json:
        print(json.dumps({"python": sys.version.split()[0], "instructions_per_call": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
