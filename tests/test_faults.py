"""Runs that are interrupted or blow up: SIGTERM, kill -9, NaN losses (real processes,
real checkpoints on disk)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS
from wavegan_dist.config import make_config
from wavegan_dist.errors import UserError
from wavegan_dist.training.faults import StopRequest
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow

CPU = "/cpu:0"


def _cfg(model_dir, **kw):
    return make_config("tiny", **{**TINY_TEST_FLAGS, "model_dir": str(model_dir), **kw})


def _cli(model_dir, *extra):
    flags = {**TINY_TEST_FLAGS, "num_wavs": 0}
    return [
        sys.executable,
        "-u",
        "-m",
        "wavegan_dist.train",
        "--preset=tiny",
        "--strategy=cpu",
        f"--model_dir={model_dir}",
        *[f"--{k}={v}" for k, v in flags.items()],
        *extra,
    ]


def _start(cmd):
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ
    )


def _read_until(proc, predicate, timeout=240):
    """Lines of proc's output up to and including the first that satisfies predicate."""
    lines, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if predicate(lines[-1]):
            return lines
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no such line in time: {lines}")
    raise AssertionError(f"process ended first: {lines}")


def _finish(proc, timeout=240):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # no process outlives a failed test
        proc.communicate()
        raise
    return proc.returncode, out.splitlines()


def _checkpoint_steps(model_dir):
    state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
    return (
        []
        if state is None
        else [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths]
    )


@pytest.mark.parametrize(
    "sig, exit_code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_sigterm_and_ctrl_c_checkpoint_at_the_step_reached_and_resume(tmp_path, sig, exit_code):
    run = tmp_path / "run"
    proc = _start(
        _cli(run, "--train_steps=500", "--ckpt_every=1000", "--sample_every=1000", "--log_every=1")
    )
    before = _read_until(proc, lambda line: line.startswith("step 3/500"))
    # The wait for the first step is announced before it.
    first = next(i for i, line in enumerate(before) if line.startswith("step 1: first call"))
    assert before[first - 1].startswith(
        "building and compiling the training step: step 1 follows in roughly"
    ), before
    proc.send_signal(sig)
    code, lines = _finish(proc)
    assert code == exit_code, lines
    stopped = [line for line in lines if line.startswith(f"stopped by {sig.name} at step ")]
    assert len(stopped) == 1, lines
    step = int(stopped[0].split()[5].rstrip(":"))
    assert step >= 3 and _checkpoint_steps(run) == [step]
    assert f"checkpoint {run}/checkpoints/ckpt-{step}" in lines
    assert not (run / "run.lock").exists()  # released for the next run
    # The restart continues from that checkpoint and finishes.
    code, lines = _finish(_start(_cli(run, f"--train_steps={step + 2}", "--log_every=1")))
    assert code == 0, lines
    assert any(line.startswith(f"resumed from step {step} ") for line in lines)
    assert f"step {step + 1}/{step + 2}" in " ".join(lines)
    assert any(line.startswith(f"done at step {step + 2}:") for line in lines)


def test_kill_9_at_several_moments_always_resumes_from_a_complete_checkpoint(tmp_path):
    """SIGKILL just after a checkpoint line, a moment later (likely mid-step or mid-save),
    and during start-up; every restart must restore a complete checkpoint."""
    run = tmp_path / "run"
    total = 40
    cmd = _cli(
        run,
        f"--train_steps={total}",
        "--ckpt_every=1",
        "--log_every=1",
        "--sample_every=1000",
        "--keep_checkpoints=2",
    )
    resumed = []
    for delay, after in [(0.0, 2), (0.15, 1), (0.4, 1), (None, 0)]:
        proc = _start(cmd)
        lines = []
        if after:
            seen = []
            lines = _read_until(
                proc,
                lambda line: (
                    line.startswith("checkpoint ") and (seen.append(line) or len(seen) >= after)
                ),
            )
            time.sleep(delay)
        else:
            time.sleep(3.0)  # still importing or building: nothing written yet this time
        proc.kill()
        proc.wait(timeout=60)
        lines += proc.stdout.read().splitlines()
        resumed += [int(line.split()[3]) for line in lines if line.startswith("resumed from step")]
        steps = _checkpoint_steps(run)
        assert steps, lines
        # Whatever the moment, the newest recorded checkpoint restores in full.
        reader = tf.train.load_checkpoint(os.path.join(run, "checkpoints", f"ckpt-{steps[-1]}"))
        assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == steps[-1]
    code, lines = _finish(_start(cmd))
    assert code == 0, lines
    resumed += [int(line.split()[3]) for line in lines if line.startswith("resumed from step")]
    # Runs 2, 3 and the last resume (the one killed during start-up may not get that far).
    assert len(resumed) >= 3 and resumed == sorted(resumed), resumed
    assert any(line.startswith(f"done at step {total}:") for line in lines)


def test_ctrl_c_while_compiling_exits_at_once_with_nothing_saved(tmp_path):
    """A first call of 10,000 steps at batch 64: waiting for it to end would take many
    minutes."""
    run = tmp_path / "run"
    long = "10000"
    proc = _start(
        _cli(
            run,
            f"--train_steps={long}",
            f"--steps_per_loop={long}",
            f"--ckpt_every={long}",
            f"--sample_every={long}",
            "--batch_size=64",
        )
    )
    _read_until(proc, lambda line: line.startswith("building and compiling the training step"))
    time.sleep(5.0)  # into the call (tracing, compiling or stepping; all must stop)
    proc.send_signal(signal.SIGINT)
    code, lines = _finish(proc, timeout=60)
    assert code == 130 and lines[-1] == "error: interrupted", lines
    assert _checkpoint_steps(run) == [] and not (run / "run.lock").exists()


_LONG_CALL = """
import tensorflow as tf
from wavegan_dist.training.faults import StopRequest

@tf.function
def spin(n):
    return tf.while_loop(lambda i, x: i < n, lambda i, x: (i + 1, x * 1.0000001), (0, 1.0))[1]

spin(tf.constant(1))  # traced now, so the call below is TensorFlow's alone
with StopRequest(exit_at_once=True) as stop:
    stop.graceful = True  # as after the first training step
    print("spinning", flush=True)
    spin(tf.constant(2**31 - 1))  # hours of one TensorFlow call
    print("finished", flush=True)
"""


def test_a_second_ctrl_c_ends_a_long_host_call_at_once():
    proc = _start([sys.executable, "-u", "-c", _LONG_CALL])
    _read_until(proc, lambda line: line == "spinning")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(2.0)
    assert proc.poll() is None  # the first Ctrl-C waits for the call, to save after it
    proc.send_signal(signal.SIGINT)
    code, lines = _finish(proc, timeout=60)
    assert code == 130 and lines[-1] == "error: interrupted", lines
    assert "finished" not in lines and not any("Traceback" in line for line in lines)


def test_without_exit_at_once_ctrl_c_requests_a_stop_then_raises_keyboard_interrupt():
    """Library use (a notebook's kernel must survive): nothing ends the process."""
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when started in the background
    with StopRequest():
        with pytest.raises(KeyboardInterrupt):  # nothing trained yet: no reason to wait
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    with StopRequest() as stop:
        stop.graceful = True  # as after the first training step
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        assert stop.requested and stop.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is before


def _finite_weights(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    values = {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith("models/")
    }
    assert all(np.all(np.isfinite(v)) for v in values.values())
    return path, values


def test_nan_loss_stops_with_the_last_checkpoint_intact(tmp_path):
    cpu = tf.distribute.OneDeviceStrategy(CPU)
    with pytest.raises(
        UserError,
        match=r"training diverged at step 3 \(.*generator nan.*\); the "
        r"last checkpoint is intact: .*ckpt-2; --on_nan=rollback would",
    ):
        run_training(_cfg(tmp_path, train_steps=4, debug_nan_at_step=3), cpu, log=lambda _: None)
    path, before = _finite_weights(tmp_path)
    assert path.endswith("ckpt-2")
    # Resuming (still poisoned at step 3) stops the same way and leaves it untouched.
    with pytest.raises(UserError, match="training diverged at step 3"):
        run_training(_cfg(tmp_path, train_steps=4, debug_nan_at_step=3), cpu, log=lambda _: None)
    path_after, after = _finite_weights(tmp_path)
    assert path_after == path and all(np.array_equal(before[k], after[k]) for k in before)


def test_nan_loss_rolls_back_with_a_fresh_seed_a_bounded_number_of_times(tmp_path):
    cpu = tf.distribute.OneDeviceStrategy(CPU)
    logs = []
    result = run_training(
        _cfg(tmp_path / "roll", train_steps=6, debug_nan_at_step=3, on_nan="rollback"),
        cpu,
        log=logs.append,
    )
    assert result.step == 6 and result.rollbacks == 1
    assert all(np.isfinite(v) for v in result.metrics.values())
    line = [x for x in logs if x.startswith("rollback 1/3: non-finite loss at step 3")]
    assert len(line) == 1 and "ckpt-2 (step 2), continuing with noise seed" in line[0]
    _finite_weights(tmp_path / "roll")
    # The new seed is saved with the run, so a resumed run keeps it.
    reader = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(str(tmp_path / "roll" / "checkpoints"))
    )
    assert int(reader.get_tensor("noise_seed/.ATTRIBUTES/VARIABLE_VALUE")) != 0
    # With no rollbacks allowed, the same blow-up stops the run.
    with pytest.raises(UserError, match="--max_rollbacks=0 used up"):
        run_training(
            _cfg(
                tmp_path / "none",
                train_steps=4,
                debug_nan_at_step=3,
                on_nan="rollback",
                max_rollbacks=0,
            ),
            cpu,
            log=lambda _: None,
        )
    # Before any checkpoint there is nothing to go back to.
    with pytest.raises(UserError, match="no checkpoint to roll back to yet"):
        run_training(
            _cfg(tmp_path / "early", train_steps=4, debug_nan_at_step=1, on_nan="rollback"),
            cpu,
            log=lambda _: None,
        )
