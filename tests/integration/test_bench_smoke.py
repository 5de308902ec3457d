"""`celltrail bench` at toy sizes: the whole system starts, all three measurements run and
report sane numbers, and everything is stopped again. About 40 s, most of it start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_runs_end_to_end_at_tiny_sizes(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env["CELLTRAIL_BENCH_JSON"] = str(out)  # `celltrail bench` has no --json-out (yet); the env var does it
    proc = subprocess.run(
        [sys.executable, "-m", "infra.tooling.cli", "bench", "--raw-messages", "500", "--subjects", "5", "--events", "2000"],
        env=env, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for label in ("(a) raw produce+consume (baseline)", "(b) commands -> projection", "(c) projection rebuild",
                  "ratio (b)/(a)", "ratio (c)/(a)"):
        assert label in proc.stdout

    r = json.loads(out.read_text())
    raw, e2e, rebuild = r["raw"], r["end_to_end"], r["rebuild"]
    assert raw["messages"] == 500 and 400 <= raw["message_bytes"] <= 1000
    for key in ("produce_msgs_per_s", "consume_msgs_per_s", "combined_msgs_per_s"):
        assert raw[key] > 0

    assert e2e["failed"] == 0 and e2e["http_check"]["not_assessed"] == []
    assert e2e["commands"] == e2e["events"] == 25
    assert e2e["commands_per_s"] > 0 and e2e["events_per_s"] > 0
    lat = e2e["latency_ms"]
    assert lat["n"] == 25 and 0 < lat["p50"] <= lat["p99"] < 60_000
    assert e2e["on_topic_ms"]["n"] == 25
    assert e2e["outcomes"] == 5  # every subject's day-28 outcome reached celltrail.outcomes.v1

    # at least the requested events were on the topics, and the rebuild replayed them all
    assert rebuild["events"] >= 2000 and rebuild["events_per_s"] > 0 and rebuild["seconds"] > 0
    assert rebuild["subject_views"] >= 5 + rebuild["generated"] // 6

    assert r["ratios"]["end_to_end_events_vs_raw"] > 0 and r["ratios"]["rebuild_events_vs_raw"] > 0
