"""The shims' benchmark runs, and checks every answer it times (a short run: the figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import HERE, daemon_binary


def test_the_roundtrip_benchmark_runs_and_reports_every_measurement() -> None:
    result = subprocess.run(
        [sys.executable, str(HERE.parent / "bench" / "roundtrip.py"), "--binary", str(daemon_binary()),
         "--rounds", "2", "--calls", "30", "--warmup", "10", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["us"]) == {
        "raw assign", "shim assign", "shim prompt", "raw render", "shim render", "raw render distinct",
        "shim render distinct", "async assign",
    }
    assert set(report["ratio"]) == {
        "shim assign / raw assign", "shim prompt / raw assign", "shim render / raw render",
        "shim render distinct / raw render distinct", "async assign / raw assign",
    }
    assert all(figures["low"] <= figures["median"] <= figures["high"] for figures in report["us"].values())
