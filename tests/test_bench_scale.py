"""`bench scale`'s table, `bench make-nsynth-size`'s dataset and `bench data --prepared`'s
side-by-side report, on tiny inputs."""

import json

import numpy as np
import pytest

from conftest import error_line, run_module
from wavegan_dist.bench import diversity, nsynth_size, scale
from wavegan_dist.data import schema
from wavegan_dist.data.source import load_source

QUIET = dict(log=lambda _: None)


def test_scale_table_arithmetic():
    params = {"generator": 1000, "critic": 500}
    rows = {r["accelerator"]: r for r in scale.table(3000.0, 2e10, params, 0.1, 100.0)}
    assert list(rows) == ["v4-8", "v4-32", "v5e-64", "1x8 A100", "8x8 A100"]
    v4 = rows["v4-32"]
    assert v4["needed_examples_per_sec"] == pytest.approx(0.1 * 275e12 * 16 / 2e10)  # 22,000
    assert v4["needed_examples_per_sec_per_host"] == pytest.approx(22000 / 4)
    assert v4["headroom"] == pytest.approx(3000 / 5500)
    assert (v4["global_batch"], v4["per_device_batch"]) == (256, 16)
    gpu = rows["1x8 A100"]
    assert (gpu["global_batch"], gpu["per_device_batch"], gpu["hosts"]) == (64, 8, 1)
    assert gpu["needed_examples_per_sec"] == pytest.approx(0.1 * 312e12 * 8 / 2e10)
    # Generator, critic, generator EMA, Adam's two moments of both: 4 x (4G + 3D) bytes.
    assert v4["checkpoint_mb"] == pytest.approx(4 * (4 * 1000 + 3 * 500) / 1e6)
    assert v4["checkpoint_write_seconds"] == pytest.approx(v4["checkpoint_mb"] / 100.0)
    # 6.49 TFLOP per generator step at batch 64, n_critic 5 (the analytic count).
    assert scale.flops_per_real_example() * 320 == pytest.approx(6.49e12, rel=0.01)


@pytest.mark.slow
def test_scale_cli_takes_the_host_rate_from_a_bench_data_report(tmp_path):
    report = tmp_path / "data.json"
    report.write_text(
        json.dumps(
            {
                "prepared_examples_per_sec_1_pipeline": 24000.0,
                "dataset_rows": 289205,
                "slice_len": 16384,
                "side_by_side_rounds": 3,
            }
        )
    )
    proc = run_module("bench", "scale", f"--from_json={report}", "--utilization=0.05", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["generator_parameters"] > 1e7 and out["critic_parameters"] > 1e7
    v4 = out["rows"][0]
    assert v4["measured_examples_per_sec_per_host"] == 24000.0
    assert v4["needed_examples_per_sec"] == pytest.approx(
        0.05 * 275e12 * 4 / out["flops_per_real_example"]
    )
    (tmp_path / "other.json").write_text("{}")
    line = error_line(run_module("bench", "scale", f"--from_json={tmp_path / 'other.json'}"))
    assert "has no prepared_examples_per_sec_1_pipeline" in line


def test_expected_distinct_is_exact_on_small_cases():
    assert diversity.expected_distinct([1, 1, 1], 2) == pytest.approx(2)
    # Two pairs, draw 2: both from one pair with probability 2 * (2/4 * 1/3) = 1/3.
    assert diversity.expected_distinct([2, 2], 2) == pytest.approx(2 - 1 / 3)
    assert diversity.mean_distinct([np.array([1, 1, 2]), np.array([3, 3, 3])]) == 1.5


def test_nsynth_sized_plan_has_nsynths_shape():
    instruments = nsynth_size.plan_instruments(289205)
    counts = np.array([i["notes"] for i in instruments])
    assert len(instruments) == 1000 and counts.sum() == 289205 and counts.min() >= 1
    assert len({i["name"] for i in instruments}) == 1000
    assert {i["family"] for i in instruments} == set(range(len(schema.FAMILIES)))


@pytest.mark.slow
def test_make_nsynth_size_writes_notes_sorted_by_instrument(tmp_path):
    dest = tmp_path / "n"
    proc = run_module("bench", "make-nsynth-size", f"--dest={dest}", "--rows=700", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"] == 700
    source = load_source(str(dest), **QUIET)  # the trainer's own loader and schema check
    ds = source.dataset
    assert len(source.rows) == 700 and source.num_samples == 64000
    instrument = np.asarray(ds["instrument"][:])
    assert len(np.unique(instrument)) == 3 and np.all(np.diff(instrument) >= 0)
    names = [str(n) for n in ds["note_str"][:]]
    assert names == sorted(names) and len(set(names)) == 700
    assert set(np.asarray(ds["velocity"][:]).tolist()) == set(schema.VELOCITIES)
    audio = np.asarray(ds["audio"][0:50])
    assert audio.dtype == np.int16 and np.abs(audio).max() > 1000
    assert len({a.tobytes() for a in audio}) == 50
    line = error_line(run_module("bench", "make-nsynth-size", f"--dest={dest}", "--rows=5"))
    assert "exists and is not an empty folder" in line


@pytest.mark.slow
def test_data_bench_with_prepared_reports_both_paths_side_by_side(tmp_path):
    prepared = tmp_path / "p"
    flags = [
        "--slice_len=1024",
        "--batch_size=16",
        "--batches=5",
        "--prepared_batches=8",
        "--train_steps=0",
        f"--prepared={prepared}",
        "--repeats=1",
        "--diversity_batches=30",
        "--json",
    ]
    proc = run_module("bench", "data", *flags)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert (prepared / "manifest.json").exists()
    assert (r["side_by_side_batches_deeplake"], r["side_by_side_batches_prepared"]) == (5, 8)
    for path in ("deeplake", "prepared"):
        for p in ("1_pipeline", "2_pipelines"):
            assert r[f"{path}_examples_per_sec_{p}"] > 0
            assert len(r[f"{path}_examples_per_sec_{p}_runs"]) == 1
    assert r["numpy_copy_examples_per_sec_1_thread"] > 0
    assert r["instruments"] == 33 and 1 < r["batch_distinct_instruments_random_permutation"] < 16
    for name in (
        "deeplake_rows_shuffle",
        "deeplake_blocks_shuffle",
        "prepared_1_pipeline",
        "prepared_2_pipelines",
    ):
        assert 1 < r[f"batch_distinct_instruments_{name}"] <= 16
    assert isinstance(r["meets_prepared_target"], bool)
    # A folder prepared at another slice length is refused in one line, before any
    # measurement (after the "using built-in dataset" line).
    proc = run_module(
        "bench", "data", *flags[1:5], "--slice_len=2048", f"--prepared={prepared}", "--repeats=1"
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: --data={prepared} was prepared with --slice_len=1024, but this run asks "
            "for --slice_len=2048"
        )
    )
    assert len(proc.stderr.strip().splitlines()) == 2
