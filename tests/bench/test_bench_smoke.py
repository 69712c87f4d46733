"""Each benchmark runs in --quick mode on tiny inputs and writes valid JSON; the report draws its table.

These check that the suite works, never how fast anything is (no timing is asserted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str, *args: str, tmp_path: Path, timeout: int = 300) -> dict[str, Any]:
    out = tmp_path / f"{module.rsplit('.', 1)[-1].removeprefix('bench_')}.json"
    env = dict(os.environ, LOADER_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["machine"]["cpus"] >= 1 and data["started"]
    for row in data.get("summary", []):
        assert {"part", "benchmark", "value", "measured", "reference", "target", "met"} <= row.keys()
    return data


def test_pipeline_quick(tmp_path: Path) -> None:
    data = run_bench("bench.bench_pipeline", "--quick", "--fake", "--docs", "3", tmp_path=tmp_path)
    assert data["chunks"] > 0 and data["load"]["vectors_written"] == data["chunks"]
    assert data["ratio_to_pure_embedding"] > 0
    stages = data["stages"]
    assert stages["wall"] > 0 and stages["hidden_by_overlap"] >= 0 and stages["embed"] >= 0


def test_peer_quick(tmp_path: Path) -> None:
    data = run_bench(
        "bench.bench_peer",
        "--quick",
        "--fake",
        "--docs",
        "2",
        "--vectors",
        "400",
        "--latency-ms",
        "5",
        tmp_path=tmp_path,
    )
    wp, e2e = data["write_path"], data["end_to_end"]
    assert wp["loader_stored"] == wp["peer_stored"] == 400
    assert e2e["loader_vectors"] == e2e["peer_vectors"] == e2e["chunks"] > 0
    assert data["peer"]["add_texts_batch_size"] == 200


def test_memory_quick(tmp_path: Path) -> None:
    data = run_bench("bench.bench_memory", "--sizes", "150,400", tmp_path=tmp_path)
    small, large = data["sizes"]["150"], data["sizes"]["400"]
    assert large["chunks_embedded"] > small["chunks_embedded"] > 0
    assert large["peak_rss_mb"] >= large["baseline_rss_mb"] > 0
    assert small["rss_samples"] and data["peak_rss_ratio"] > 0


def test_write_quick(tmp_path: Path) -> None:
    data = run_bench(
        "bench.bench_write",
        "--quick",
        "--vectors",
        "1500",
        "--sweep-vectors",
        "500",
        "--in-flight",
        "1,2",
        "--requests",
        "1",
        "--latency-ms",
        "5",
        tmp_path=tmp_path,
    )
    assert set(data["client_cost"]["variants"]) == {
        "boto3_defaults",
        "tolist_once",
        "tolist_no_validation",
        "loader_encoded_body",
    }
    throttled = data["throttled"]
    assert throttled["lost_vectors"] == throttled["unexpected_vectors"] == 0
    assert throttled["stored_vectors"] == 1500
    assert all(r["lost_vectors"] == 0 for r in data["latency"]["runs"])


def test_rerun_quick(tmp_path: Path) -> None:
    data = run_bench("bench.bench_rerun", "--quick", "--fake", "--docs", "3", tmp_path=tmp_path)
    assert data["first_load"]["chunks"]["embedded"] > 0
    assert data["reruns_embedded_nothing"] is True
    assert data["rerun"]["documents"]["unchanged"] == data["first_load"]["documents"]["new"]
    assert data["rerun"]["chunks"]["embedded"] == 0 and data["speedup"] > 0
    local = data["local"]  # through --local, when the synthesized template is there (cdk.out/)
    if local is not None:
        assert local["first_load"]["chunks"]["embedded"] > 0 and local["reruns_embedded_nothing"] is True
        assert local["rerun"]["documents"]["unchanged"] == local["first_load"]["documents"]["new"]
    assert len(data["summary"]) == 1 + (local is not None)


def test_report_writes_the_table_and_the_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = tmp_path / "results"
    run_bench("bench.bench_pipeline", "--quick", "--fake", "--docs", "2", tmp_path=results)
    run_bench("bench.bench_memory", "--sizes", "100,200", tmp_path=results)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.report", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    table = (results / "summary.md").read_text()
    assert table.startswith("| # | Benchmark | Ratio |")
    assert "End-to-end load vs pure embedding" in table and "Peak RSS" in table
    assert "(not run)" in table  # the benchmarks that were not run are listed as such
    assert (results / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_suite_lists_every_benchmark() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for name in ("pipeline", "write", "peer", "rerun", "endpoint", "memory", "--quick"):
        assert name in proc.stdout
