"""One training per --model_dir: real training processes on one folder, and the remote
(heartbeat) kind of lock exercised through tf.io.gfile on a local folder."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist.errors import UserError
from wavegan_dist.training.run_lock import LOCK_FILE, RunLock


def _train_flags(model_dir, *extra):
    flags = {**TINY_TEST_FLAGS, "num_wavs": 0}
    return [
        "--preset=tiny",
        "--strategy=cpu",
        f"--model_dir={model_dir}",
        *[f"--{k}={v}" for k, v in flags.items()],
        *extra,
    ]


@pytest.mark.slow
def test_a_second_training_on_the_model_dir_is_refused_and_kill_9_does_not_block(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "wavegan_dist.train",
            *_train_flags(
                run, "--train_steps=100000", "--ckpt_every=100000", "--sample_every=100000"
            ),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ,
    )
    try:
        for line in first.stdout:
            if line.startswith("strategy "):
                break
        else:
            pytest.fail("the first run ended before its strategy line")
        second = run_module("train", *_train_flags(run, "--train_steps=2"))
        assert first.poll() is None  # still training
        line = error_line(second)
        assert line.startswith(
            f"error: --model_dir={run} is in use by another training (host "
            f"{socket.gethostname()}, pid {first.pid}, since "
        ), line
        assert line.endswith("wait for it to end or use another --model_dir")
        assert "strategy" not in second.stdout and "data " not in second.stdout
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    # The killed run's lock file is still there, but the kernel released its lock.
    assert (run / LOCK_FILE).exists()
    third = run_module("train", *_train_flags(run, "--train_steps=2"))
    assert third.returncode == 0, third.stderr
    assert "done at step 2:" in third.stdout
    assert not (run / LOCK_FILE).exists()


def _contents(folder):
    with open(folder / LOCK_FILE) as f:
        return json.load(f)


def test_heartbeat_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path):
    folder = tmp_path / "remote"
    holder = RunLock(str(folder), kind="heartbeat", heartbeat_seconds=0.2)
    holder.acquire()
    written = _contents(folder)
    assert written["pid"] == os.getpid() and written["host"] == socket.gethostname()
    with pytest.raises(
        UserError,
        match=r"is in use by another training \(host .*, pid "
        rf"{os.getpid()}, since .*\); wait for it",
    ):
        RunLock(str(folder), kind="heartbeat").acquire()
    # The heartbeat is refreshed while the holder lives.
    deadline = time.monotonic() + 30
    while _contents(folder)["heartbeat"] == written["heartbeat"]:
        assert time.monotonic() < deadline, "heartbeat never refreshed"
        time.sleep(0.1)
    holder.release()
    assert not (folder / LOCK_FILE).exists()

    # A holder that died without releasing: its heartbeat stops. Within the bound it
    # still blocks; past it the lock is taken over.
    dead = {
        "host": "elsewhere",
        "pid": 1,
        "since": "then",
        "token": "x",
        "heartbeat": time.time() - 100,
    }
    (folder / LOCK_FILE).write_text(json.dumps(dead))
    with pytest.raises(UserError, match=r"host elsewhere, pid 1, since then"):
        RunLock(str(folder), kind="heartbeat", stale_seconds=300).acquire()
    taker = RunLock(str(folder), kind="heartbeat", stale_seconds=60)
    taker.acquire()
    assert _contents(folder)["pid"] == os.getpid()
    taker.release()
    assert not (folder / LOCK_FILE).exists()


def test_flock_lock_is_held_per_run_and_names_a_folder_it_cannot_use(tmp_path):
    first = RunLock(str(tmp_path / "run"))
    with first:
        with pytest.raises(UserError, match=rf"pid {os.getpid()}"):
            RunLock(str(tmp_path / "run")).acquire()
        assert RunLock(str(tmp_path / "run"), enabled=False).acquire() is None  # workers
    with RunLock(str(tmp_path / "run")):
        pass  # free again once released
    (tmp_path / "file").write_text("")
    with pytest.raises(
        UserError,
        match=r"cannot create .*file/run.lock: .*; --model_dir "
        r"must be a folder this user can write",
    ):
        RunLock(str(tmp_path / "file")).acquire()
