"""The shims' benchmark runs, and checks every answer it times (a short run: the figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import HERE, daemon_binary


def test_the_roundtrip_benchmark_runs_and_reports_every_measurement() -> None:
    result = subprocess.run(
        [sys.executable, str(HERE.parent / "bench" / "roundtrip.py"), "--binary", str(daemon_binary()),
         "--rounds", "2", "--calls", "30", "--warmup", "10", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [pair["name"] for pair in report["pairs"]] == [
        "shim assign / raw assign", "shim prompt / raw assign", "shim render / raw render",
        "shim render distinct / raw render distinct", "async assign / raw assign",
    ]
    for pair in report["pairs"]:
        for figure in ("raw", "shim", "added", "ratio"):
            assert pair[figure]["low"] <= pair[figure]["median"] <= pair[figure]["high"], (pair["name"], figure)
        raw, shim = pair["rounds"]["raw"], pair["rounds"]["shim"]
        assert len(raw) == len(shim) == 2 and min(raw + shim) > 0
        # Each round's added time and ratio come from that round's medians, raw and shim.
        assert pair["added"]["low"] == pytest.approx(min(s - r for s, r in zip(shim, raw)))
        assert pair["ratio"]["high"] == pytest.approx(max(s / r for s, r in zip(shim, raw)))
        assert pair["raw"]["median"] == pytest.approx(sum(raw) / 2)


def test_the_roundtrip_benchmark_spaces_its_calls_when_asked() -> None:
    result = subprocess.run(
        [sys.executable, str(HERE.parent / "bench" / "roundtrip.py"), "--binary", str(daemon_binary()),
         "--rounds", "1", "--calls", "10", "--warmup", "5", "--gap-us", "200", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["gap_us"] == 200 and "a sleep of 200 µs before each call" in report["method"]
    assert len(report["pairs"]) == 5 and all(pair["raw"]["median"] > 0 and pair["shim"]["median"] > 0 for pair in report["pairs"])
