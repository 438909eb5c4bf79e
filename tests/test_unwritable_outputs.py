"""Output folders that cannot be written: a file, a read-only file system, a full disk.

Each is a one-line error from the command, and nothing the user had is lost. Root
ignores file permissions, so read-only folders are read-only bind mounts and full
disks small tmpfs mounts; those tests skip where mounting is not allowed.
"""

import contextlib
import functools
import os
import subprocess

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist.config import make_config
from wavegan_dist.run_folder.checkpoint_files import damage_of
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow

# Samples off: an audio summary makes TensorFlow log a line to stderr (oneDNN and DT_STRING).
FLAGS = {**TINY_TEST_FLAGS, "num_wavs": 0, "sample_every": 1000}
_generate = functools.partial(run_module, "generate")


def _train_cli(model_dir, *extra):
    return run_module(
        "train",
        "--preset=tiny",
        "--strategy=cpu",
        f"--model_dir={model_dir}",
        *[f"--{k}={v}" for k, v in FLAGS.items()],
        *extra,
    )


def _mount(*args):
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(
            f"needs mount privileges (root with CAP_SYS_ADMIN): mount {' '.join(args)}: "
            f"{proc.stderr.strip()}"
        )


@contextlib.contextmanager
def _mounted(target, *args):
    """Mounts with `args` at `target` for the block; always unmounted after."""
    target.mkdir(exist_ok=True)
    _mount(*args, str(target))
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@contextlib.contextmanager
def read_only_folder(tmp_path):
    """A folder (holding `inside/`) on a read-only bind mount of a tmp folder."""
    source = tmp_path / "source"
    (source / "inside").mkdir(parents=True)
    with _mounted(tmp_path / "read_only", "--bind", str(source)) as target:
        # A bind mount is made read-only by remounting it.
        _mount("-o", "remount,ro,bind", str(target))
        yield target


def small_disk(tmp_path, size):
    return _mounted(tmp_path / "disk", "-t", "tmpfs", "-o", f"size={size}", "tmpfs")


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache_dir):
    """A tiny run trained for 2 steps (ckpt-2)."""
    d = tmp_path_factory.mktemp("run")
    cfg = make_config("tiny", **{**FLAGS, "train_steps": 2, "model_dir": str(d)})
    run_training(cfg, tf.distribute.OneDeviceStrategy("/cpu:0"), log=lambda _: None)
    return d


def test_train_model_dir_that_is_a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("the user's file")
    line = error_line(_train_cli(path))
    assert f"--model_dir={path} is a file, not a folder" in line
    line = error_line(_train_cli(path / "run"))
    assert f"--model_dir={path / 'run'} cannot be created: {path} is a file" in line
    assert path.read_text() == "the user's file"


def test_read_only_model_dir_and_out(run, tmp_path):
    with read_only_folder(tmp_path) as ro:
        for model_dir in (ro / "inside", ro / "new_run"):
            line = error_line(_train_cli(model_dir))
            assert f"--model_dir={model_dir} " in line and "read-only file system" in line
        for flag in ("--out", "--export"):
            line = error_line(_generate(f"--model_dir={run}", f"{flag}={ro / 'inside'}"))
            assert f"{flag}={ro / 'inside'} is on a read-only file system" in line, line
        assert os.listdir(ro) == ["inside"] and os.listdir(ro / "inside") == []


def test_full_disk_while_checkpointing(tmp_path):
    """Room for two tiny checkpoints (540 kB each), not three: the third save fails,
    leaves no ckpt-N_temp folder or partial file, and the two before stay intact."""
    with small_disk(tmp_path, "1400k") as disk:
        model_dir = disk / "run"
        # (Not the last step: its audio summary logs a TensorFlow line to stderr.)
        line = error_line(_train_cli(model_dir, "--train_steps=8", "--ckpt_every=2"))
        ckpts = model_dir / "checkpoints"
        prefix = ckpts / "ckpt-6"
        assert (
            f"cannot write checkpoint {prefix}: No space left on device; its partial files "
            f"were removed and the last checkpoint {ckpts / 'ckpt-4'} is intact" in line
        ), line
        assert sorted(os.listdir(ckpts)) == [
            "checkpoint",
            "ckpt-2.data-00000-of-00001",
            "ckpt-2.index",
            "ckpt-4.data-00000-of-00001",
            "ckpt-4.index",
        ]
        assert os.path.basename(tf.train.latest_checkpoint(str(ckpts))) == "ckpt-4"
        assert damage_of(str(ckpts / "ckpt-2")) is None and damage_of(str(ckpts / "ckpt-4")) is None


def test_full_disk_while_generating(run, tmp_path):
    """Room for two small WAV files (a 4 kB page each), not five."""
    with small_disk(tmp_path, "8k") as disk:
        out = disk / "clips"
        line = error_line(_generate(f"--model_dir={run}", f"--out={out}", "--n=5"))
        assert (
            f"cannot write to --out={out}: No space left on device; the files written so "
            "far were removed" in line
        ), line
        assert os.listdir(out) == []


def test_full_disk_before_the_first_step(tmp_path):
    """The run's first file (its run.lock) cannot be written: one line, and no file left."""
    with small_disk(tmp_path, "8k") as disk:
        (disk / "filler").write_bytes(b"x" * 8192)
        model_dir = disk / "run"
        line = error_line(_train_cli(model_dir, "--train_steps=2"))
        assert line == (
            f"error: cannot write {model_dir / 'run.lock'}: No space left on "
            "device; free space or pass a --model_dir you can write to"
        ), line
        assert os.listdir(model_dir) == []
