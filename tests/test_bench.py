"""`python -m wavegan_dist.bench data` runs end to end and reports what it measured."""

import functools
import json
import os

import pytest

from conftest import error_line, run_module

pytestmark = pytest.mark.slow


def test_data_bench_json_reports_both_rates_and_their_ratio():
    proc = run_module(
        "bench",
        "data",
        "--json",
        "--slice_len=1024",
        "--batch_size=16",
        "--batches=20",
        "--dim=4",
        "--train_batch=8",
        "--n_critic=1",
        "--cpu_replicas=2",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["replicas"] == 2 and report["slice_len"] == 1024
    assert report["pipeline_examples_per_sec"] > 0 and report["train_consumed_examples_per_sec"] > 0
    ratio = report["pipeline_examples_per_sec"] / report["train_consumed_examples_per_sec"]
    assert abs(report["pipeline_to_train_ratio"] - ratio) < 1e-6 * ratio
    assert isinstance(report["meets_pipeline_target"], bool)
    assert report["pipeline_blocks_shuffle_examples_per_sec"] > 0


def test_unknown_benchmark_is_a_one_line_error():
    proc = run_module("bench", "nope", timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: usage")


_bench = functools.partial(run_module, "bench", timeout=120)


def test_bad_bench_flags_are_one_line_errors(tmp_path):
    (tmp_path / "earlier_run").mkdir()
    cases = {
        ("data", "--batches=0"): "--batches=0 must be at least 1",
        ("data", "--n_critic=0"): "--n_critic=0 must be at least 1",
        ("data", "--train_steps=-1"): "--train_steps=-1 must be at least 0",
        ("data", "--cpu_replicas=2", "--batch_size=3"): "--batch_size=3 does not divide",
        ("learn", f"--workdir={tmp_path}"): "exists and is not an empty folder",
        ("learn", "--preset=quick", "--learn_steps=0"): "--learn_steps=0 must be at least 1",
        # A flag of another benchmark would be ignored: refused instead.
        ("train", "--learn_steps=5"): "--learn_steps is a flag of bench learn, not of bench train",
        ("data", "--slice_len=1000"): "--slice_len=1000 is not supported",
        ("data", "--slice_len=0"): "--slice_len=0 must be at least 1",
        ("learn", "--repeats=3"): "--repeats is a flag of bench data and bench train, not of "
        "bench learn",
        ("scale", "--rows=5"): "--rows is a flag of bench make-nsynth-size, not of bench scale",
        ("data", "--repeats=0"): "--repeats=0 must be at least 1",
        ("scale", "--utilization=0"): "--utilization=0.0 must be in (0, 1]",
        ("make-nsynth-size",): "--dest is required",
        ("train", "--data=builtin"): "--data is a flag of bench data and bench learn, not of "
        "bench train",
    }
    for flags, text in cases.items():
        line = error_line(_bench(*flags))
        assert text in line, (flags, line)
    assert os.listdir(tmp_path) == ["earlier_run"]
