"""`python -m wavegan_dist.bench data` runs end to end and reports what it measured."""

import json
import os
import subprocess
import sys


def test_data_bench_json_reports_both_rates_and_their_ratio():
    proc = subprocess.run(
        [sys.executable, "-m", "wavegan_dist.bench", "data", "--json", "--slice_len=1024",
         "--batch_size=16", "--batches=20", "--dim=4", "--train_batch=8", "--n_critic=1",
         "--cpu_replicas=2"],
        capture_output=True, text=True, timeout=300, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["replicas"] == 2 and report["slice_len"] == 1024
    assert report["pipeline_examples_per_sec"] > 0 and report["train_consumed_examples_per_sec"] > 0
    ratio = report["pipeline_examples_per_sec"] / report["train_consumed_examples_per_sec"]
    assert abs(report["pipeline_to_train_ratio"] - ratio) < 1e-6 * ratio
    assert isinstance(report["meets_pipeline_target"], bool)
    assert report["pipeline_blocks_shuffle_examples_per_sec"] > 0


def test_unknown_benchmark_is_a_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "wavegan_dist.bench", "nope"],
                          capture_output=True, text=True, timeout=120, env=os.environ)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: usage")
