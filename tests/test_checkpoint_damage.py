"""A damaged newest checkpoint: one line naming it and the newest intact one, and
--resume_from to continue from that one (real runs, real files damaged on disk)."""

import concurrent.futures
import functools
import os
import shutil

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist.config import make_config
from wavegan_dist.run_folder.checkpoint_files import damage_of
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow

CPU = "/cpu:0"
FLAGS = {**TINY_TEST_FLAGS, "num_wavs": 0, "sample_every": 1000}
DATA = "ckpt-4.data-00000-of-00001"


def _cfg(model_dir, **kw):
    return make_config("tiny", **{**FLAGS, "model_dir": str(model_dir), **kw})


def _train_cli(model_dir, *extra):
    return run_module(
        "train",
        "--preset=tiny",
        "--strategy=cpu",
        f"--model_dir={model_dir}",
        *[f"--{k}={v}" for k, v in FLAGS.items()],
        *extra,
    )


def _truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


def _garble(path, start, stop):
    data = bytearray(path.read_bytes())
    data[start:stop] = bytes(255 - b for b in data[start:stop])
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated_data": lambda d: _truncate(d / DATA, 1000),
    "garbled_data": lambda d: _garble(d / DATA, 100, 5000),
    "truncated_index": lambda d: _truncate(d / "ckpt-4.index", 500),
    "garbled_index": lambda d: _garble(d / "ckpt-4.index", 100, 2000),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache_dir):
    """A tiny run with intact checkpoints ckpt-2 and ckpt-4."""
    d = tmp_path_factory.mktemp("run")
    run_training(_cfg(d, train_steps=4), tf.distribute.OneDeviceStrategy(CPU), log=lambda _: None)
    return d


def _damaged_copy(run, folder, kind):
    shutil.copytree(run, folder)
    DAMAGE[kind](folder / "checkpoints")
    return folder


def _files(folder):
    return {
        name: (folder / name).read_bytes()
        for name in sorted(os.listdir(folder))
        if (folder / name).is_file()
    }


def test_damaged_newest_is_one_line_naming_the_newest_intact(run, tmp_path):
    folders = {kind: _damaged_copy(run, tmp_path / kind, kind) for kind in DAMAGE}
    before = {kind: _files(d / "checkpoints") for kind, d in folders.items()}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        procs = dict(
            zip(folders, pool.map(lambda d: _train_cli(d, "--train_steps=6"), folders.values()))
        )
    for kind, proc in procs.items():
        # One stderr line: no TensorFlow warnings about unrestored values after it.
        line = error_line(proc)
        assert "checkpoints/ckpt-4: it is damaged (" in line, (kind, line)
        assert "the newest intact one is ckpt-2: add --resume_from=ckpt-2" in line, (kind, line)
        assert "the flags the run was started with" not in line
        assert _files(folders[kind] / "checkpoints") == before[kind], kind  # nothing touched


def test_resume_from_an_older_checkpoint_sets_the_newer_ones_aside(run, tmp_path):
    damaged = _damaged_copy(run, tmp_path / "garbled", "garbled_data")
    ckpts = damaged / "checkpoints"
    bad = {name: (ckpts / name).read_bytes() for name in ("ckpt-4.index", DATA)}
    proc = _train_cli(damaged, "--train_steps=6", "--resume_from=ckpt-2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    moved = [
        line
        for line in out
        if line.startswith("moved ckpt-4 (newer than step 2) and the old state file to ")
    ]
    assert len(moved) == 1, out
    aside = moved[0].split(" to ")[1].split(";")[0]
    assert os.path.dirname(aside) == str(ckpts)
    assert f"resumed from step 2 ({ckpts / 'ckpt-2'})" in out
    # The damaged files are kept byte for byte beside a copy of the old state file ...
    assert {name: (ckpts / aside / name).read_bytes() for name in bad} == bad
    assert tf.train.latest_checkpoint(aside) == os.path.join(aside, "ckpt-4")
    # ... and the run's own ckpt-4 and ckpt-6 are new and intact.
    state = tf.train.get_checkpoint_state(str(ckpts))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        "ckpt-2",
        "ckpt-4",
        "ckpt-6",
    ]
    assert all(damage_of(str(ckpts / f"ckpt-{n}")) is None for n in (2, 4, 6))

    # Later runs never pick the set-aside one, and rotating old checkpoints out
    # (--keep_checkpoints) leaves the set-aside folder alone.
    aside_files = _files(ckpts / aside)
    logs = []
    run_training(
        _cfg(damaged, train_steps=10, keep_checkpoints=2),
        tf.distribute.OneDeviceStrategy(CPU),
        log=logs.append,
    )
    assert f"resumed from step 6 ({ckpts / 'ckpt-6'})" in logs
    assert sorted(p.name for p in ckpts.glob("ckpt-*.index")) == ["ckpt-10.index", "ckpt-8.index"]
    assert _files(ckpts / aside) == aside_files


def test_resume_from_an_intact_older_checkpoint_on_purpose(run, tmp_path):
    """By name and by path; the newer intact checkpoint is set aside, not overwritten."""
    cpu = tf.distribute.OneDeviceStrategy(CPU)
    for how in ("ckpt-2", "path"):
        d = tmp_path / how
        shutil.copytree(run, d)
        newer = _files(d / "checkpoints")
        newer = {k: v for k, v in newer.items() if k.startswith("ckpt-4")}
        logs = []
        resume_from = "ckpt-2" if how == "ckpt-2" else str(d / "checkpoints" / "ckpt-2")
        result = run_training(_cfg(d, train_steps=3, resume_from=resume_from), cpu, log=logs.append)
        assert result.start_step == 2 and result.step == 3, how
        assert f"resumed from step 2 ({d / 'checkpoints' / 'ckpt-2'})" in logs, how
        aside = [p for p in (d / "checkpoints").iterdir() if p.name.startswith("set_aside-")]
        assert len(aside) == 1 and _files(aside[0]).items() >= newer.items(), how
        assert os.path.basename(tf.train.latest_checkpoint(str(d / "checkpoints"))) == "ckpt-3"


def test_resume_from_a_missing_or_damaged_checkpoint_is_one_line(run, tmp_path):
    # Two copies: one training per --model_dir at a time, and the two run side by side.
    damaged = _damaged_copy(run, tmp_path / "damaged", "truncated_data")
    other = _damaged_copy(run, tmp_path / "other", "truncated_data")
    before = _files(damaged / "checkpoints")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        missing, bad = pool.map(
            lambda args: _train_cli(args[0], "--train_steps=6", args[1]),
            [(other, "--resume_from=ckpt-9"), (damaged, "--resume_from=ckpt-4")],
        )
    line = error_line(missing)
    assert "--resume_from=ckpt-9: there is no checkpoint" in line
    assert "the run has ckpt-2, ckpt-4 in" in line
    line = error_line(bad)
    assert "--resume_from=ckpt-4: cannot restore checkpoint" in line and "damaged" in line
    assert "--resume_from=ckpt-2" in line
    assert _files(damaged / "checkpoints") == before == _files(other / "checkpoints")


_generate = functools.partial(run_module, "generate")


def test_generate_names_a_damaged_checkpoint_and_the_intact_one(run, tmp_path):
    """The run's newest (by default) and one given with --checkpoint."""
    jobs = {}
    for kind in ("garbled_data", "garbled_index"):
        d = _damaged_copy(run, tmp_path / kind, kind)
        jobs[kind] = (f"--model_dir={d}", f"--out={tmp_path / 'o'}")
        jobs[kind + "_flag"] = (*jobs[kind], f"--checkpoint={d / 'checkpoints' / 'ckpt-4'}")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        procs = dict(zip(jobs, pool.map(lambda flags: _generate(*flags), jobs.values())))
    for name, proc in procs.items():
        line = error_line(proc)
        d = tmp_path / name.replace("_flag", "")
        assert f"{d / 'checkpoints' / 'ckpt-4'}: the checkpoint is damaged (" in line, line
        assert line.endswith(f"pass --checkpoint={d / 'checkpoints' / 'ckpt-2'}"), line
    assert not (tmp_path / "o").exists()
