"""Shared test set-up: two logical CPU devices, a private dataset cache, small configs.

The CPU must be split before TensorFlow initialises its runtime, so it happens at
import time here, before any test module runs a TensorFlow op. Tests then get
one-device strategies on /cpu:0 and two-replica MirroredStrategy on /cpu:0,/cpu:1
from the same process.
"""

import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Subprocesses (CLI tests) inherit this, so nothing is written to ~/.cache.
os.environ["WAVEGAN_DIST_CACHE"] = tempfile.mkdtemp(prefix="wavegan_dist_test_cache_")

import pytest  # noqa: E402

from wavegan_dist import strategy as strategies  # noqa: E402

strategies.configure_cpu_devices(2)

# Small but real: the full WaveGAN structure (3 layers at slice 1024) with a narrow width.
TINY_TEST_FLAGS = dict(
    slice_len=1024,
    dim=4,
    batch_size=8,
    n_critic=2,
    log_every=1,
    sample_every=2,
    ckpt_every=2,
    num_wavs=2,
)


def checkpoint_weights(model_dir, prefix="models/", min_keys=10):
    """{variable key: array} of the latest checkpoint's float variables under `prefix`.

    "models/" holds the networks' weights; "optimizers/" holds Adam's moments, whose
    first moment scales with the gradient (Adam's update itself nearly cancels a
    gradient scale error, so comparing weights alone would hide one);
    "generator_ema/" the generator's moving average (fewer variables: min_keys=6).
    """
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    keys = [
        k
        for k in reader.get_variable_to_shape_map()
        if k.startswith(prefix) and reader.get_variable_to_dtype_map()[k].is_floating
    ]
    assert len(keys) >= min_keys
    return {k: reader.get_tensor(k) for k in keys}


def max_diff(a, b):
    """Largest absolute difference between two {key: array} dicts with the same keys."""
    import numpy as np

    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def run_module(module, *flags, timeout=300):
    """Runs `python -m wavegan_dist.<module> <flags>` as a user would; returns the
    CompletedProcess (text stdout and stderr captured)."""
    return subprocess.run(
        [sys.executable, "-m", f"wavegan_dist.{module}", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ,
    )


def kill_when(module, flags, ready, timeout=120):
    """Starts `python -m wavegan_dist.<module> <flags>` and SIGKILLs it as soon as
    ready() is true; asserts it was killed rather than finished first."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", f"wavegan_dist.{module}", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"


def error_line(proc):
    """The one `error: ...` line a CLI printed on a user error (exit 2, no traceback)."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="session")
def cache_dir():
    """The session's dataset cache folder (WAVEGAN_DIST_CACHE)."""
    return os.environ["WAVEGAN_DIST_CACHE"]


@pytest.fixture(scope="session")
def builtin_root(cache_dir):
    """Root of the default built-in dataset in the session cache (built once)."""
    from wavegan_dist.data import builtin

    return builtin.ensure_builtin_dataset(cache_dir, log=lambda _: None)


@pytest.fixture(scope="session")
def instruments_root(cache_dir):
    """Root of the built-in instruments dataset in the session cache (rendered once)."""
    from wavegan_dist.data import instruments

    return instruments.ensure_instruments_dataset(cache_dir, log=lambda _: None)
