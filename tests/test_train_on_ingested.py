"""End to end: ingest NSynth json/wav, then train on a filtered subset of it,
through the CLIs and the distributed pipeline."""

import os
import subprocess
import sys

import deeplake
import pytest

from conftest import TINY_TEST_FLAGS
from test_ingest import make_notes, write_jsonwav

pytestmark = pytest.mark.slow


def _cli(module, *flags):
    return subprocess.run(
        [sys.executable, "-m", module, *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsynth")
    # 48 notes of every source and a spread of pitches; ingest stores them by note_str.
    src = write_jsonwav(root / "nsynth-valid", make_notes(48, 64000))
    dest = root / "ds"
    out = _cli(
        "wavegan_dist.ingest", "--format=nsynth-jsonwav", f"--source={src}", f"--dest={dest}"
    )
    assert out.returncode == 0, out.stderr
    return dest


def _train_flags(model_dir, **extra):
    flags = {**TINY_TEST_FLAGS, "batch_size": 4, "log_every": 1, **extra}
    return [
        "--strategy=mirrored",
        "--cpu_replicas=2",
        "--preset=tiny",
        "--train_steps=2",
        f"--model_dir={model_dir}",
        *[f"--{k}={v}" for k, v in flags.items()],
    ]


def test_training_on_the_gansynth_subset_of_an_ingested_dataset(ingested, tmp_path):
    ds = deeplake.open_read_only(str(ingested))
    head = [(int(s), int(p)) for s, p in zip(ds["instrument_source"][0:36], ds["pitch"][0:36])]
    expected = sum(1 for s, p in head if s == 0 and 24 <= p <= 84)
    assert 4 <= expected < 36  # the filter keeps some rows, not all
    out = _cli(
        "wavegan_dist.train",
        *_train_flags(tmp_path, data=ingested, subset="gansynth", num_samples=36),
    )
    assert out.returncode == 0, out.stderr
    assert f"data {ingested}: {expected} rows" in out.stdout
    assert "2 replica(s) in sync on CPU:0, CPU:1" in out.stdout
    assert (
        "done at step 2: 2 replica(s) in sync (max weight difference between replicas 0)"
        in out.stdout
    )


def test_an_empty_filter_and_a_wrong_schema_are_one_line_errors(ingested, tmp_path):
    out = _cli(
        "wavegan_dist.train",
        *_train_flags(tmp_path / "a", data=ingested, subset="gansynth", velocity=1),
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("error: no rows of") and "--velocity=1 " in lines[0]
    other = deeplake.create(str(tmp_path / "other"))
    other.add_column("audios", deeplake.types.Array("float32", shape=[8]))
    other.commit("not nsynth")
    out = _cli("wavegan_dist.train", *_train_flags(tmp_path / "b", data=tmp_path / "other"))
    assert out.returncode == 2 and "not in the NSynth schema" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
