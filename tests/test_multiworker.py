"""Multi-worker training through launch/local_multiworker.py: real worker processes on
127.0.0.1 (MultiWorkerMirroredStrategy, one CPU replica each), real data and checkpoints.

The launcher is run as a user runs it (`python launch/local_multiworker.py ... -- <train
flags>`); its output is read line by line while it runs.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, checkpoint_weights, max_diff
from wavegan_dist import strategy as strategies
from wavegan_dist.config import make_config
from wavegan_dist.errors import UserError
from wavegan_dist.training import faults
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(REPO, "launch", "local_multiworker.py")
# A survivor notices a dead peer at once if they were in a collective together, else after
# the coordination service's heartbeat timeout (plus its 1 s check); then it has to exit.
# Measured here: 2-12 s from the kill to the launcher's exit. The margin is for a loaded
# machine (the two workers already share its 2 cores).
DEAD_WORKER_BOUND_S = strategies.MULTIWORKER_HEARTBEAT_TIMEOUT_S + 15


def _train_flags(model_dir, **kw):
    flags = {**TINY_TEST_FLAGS, **kw}
    return ["--strategy=multiworker", "--preset=tiny", f"--model_dir={model_dir}"] + [
        f"--{k}={v}" for k, v in flags.items()
    ]


class Launch:
    """The launcher as a child process; collects its merged output, line by line."""

    def __init__(self, launcher_args, train_flags):
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        self.proc = subprocess.Popen(
            [sys.executable, LAUNCHER, *launcher_args, "--", *train_flags],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        self._new_line = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()

    def wait_for_line(self, pattern, timeout):
        """The first output line matching `pattern` (a regex); fails after `timeout` s."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                found = next((ln for ln in self.lines if regex.search(ln)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    self.kill()
                    pytest.fail(
                        f"no line matching {pattern!r} in {timeout} s; output:\n"
                        + "\n".join(self.lines[-40:])
                    )
                self._new_line.wait(min(left, 1.0))

    def wait(self, timeout):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"launcher still running after {timeout} s; output:\n" + "\n".join(self.lines[-40:])
            )
        self._reader.join(10)
        return code

    def worker_pids(self):
        """{worker index: pid}: the launcher's children, matched to its `worker I is pid P` lines."""
        children = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
        named = dict(
            (int(m.group(1)), int(m.group(2)))
            for m in (re.match(r"\[launcher\] worker (\d+) is pid (\d+)$", ln) for ln in self.lines)
            if m
        )
        assert sorted(named.values()) == sorted(int(c) for c in children)
        return named

    def kill(self):
        # The kernel kills the launcher's workers when it dies (it sets PDEATHSIG).
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def text(self):
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("mw")
    run = Launch(["--workers=2"], _train_flags(d, train_steps=4))
    code = run.wait(240)
    return d, code, run.lines


def test_two_workers_train_and_the_chief_writes_the_run(two_worker_run):
    d, code, lines = two_worker_run
    out = "\n".join(lines)
    assert code == 0, out[-4000:]
    for i in (0, 1):
        assert any(ln.startswith(f"[worker {i}] step 4/4  critic") for ln in lines), out[-4000:]
        assert any(
            ln.startswith(f"[worker {i}] strategy ") and "2 replica(s) in sync" in ln
            for ln in lines
        )
    assert lines[-1] == "[launcher] all 2 worker(s) exited 0"
    names = os.listdir(d)
    assert "config.json" in names
    assert any(n.startswith("events.out.tfevents.") for n in names)
    assert os.path.exists(d / "checkpoints" / "ckpt-4.index")
    assert sorted(os.listdir(d / "samples" / "step_0000004")) == [
        "generated_00.wav",
        "generated_01.wav",
    ]
    # Worker 1 saved its throwaway checkpoints in a local temporary folder, removed at exit.
    scratch = [ln.split()[3] for ln in lines if ln.startswith("[worker 1] checkpoint ")]
    assert scratch and all(
        p.startswith(tempfile.gettempdir() + "/wavegan_dist_worker-1_") for p in scratch
    ), out[-4000:]
    assert not os.path.exists(os.path.dirname(os.path.dirname(scratch[0])))
    assert sorted(names) == sorted(
        [
            "config.json",
            "checkpoints",
            "samples",
            *(n for n in names if n.startswith("events.out.tfevents.")),
        ]
    ), names


def test_two_workers_match_one_process_with_two_replicas(two_worker_run, tmp_path):
    d, code, _ = two_worker_run
    assert code == 0
    two = strategies.mirrored(["/cpu:0", "/cpu:1"])
    cfg = make_config("tiny", **{**TINY_TEST_FLAGS, "model_dir": str(tmp_path), "train_steps": 4})
    result = run_training(cfg, two, log=lambda _: None)
    assert result.step == 4
    weights = max_diff(checkpoint_weights(d), checkpoint_weights(tmp_path))
    # Adam's moments carry the gradient scale: equal moments mean equal gradients.
    moments = max_diff(
        checkpoint_weights(d, "optimizers/"), checkpoint_weights(tmp_path, "optimizers/")
    )
    ema = max_diff(*(checkpoint_weights(x, "generator_ema/", min_keys=6) for x in (d, tmp_path)))
    print(
        f"2 workers vs 1 process x 2 replicas: max weight difference {weights:.3g}, "
        f"max Adam moment difference {moments:.3g}, max generator EMA difference {ema:.3g}"
    )
    assert weights < 1e-5 and moments < 1e-5 and ema < 1e-5


def test_two_workers_resume_exactly(two_worker_run, tmp_path):
    d, code, _ = two_worker_run
    assert code == 0
    first = Launch(["--workers=2"], _train_flags(tmp_path, train_steps=2))
    assert first.wait(240) == 0, first.text()[-4000:]
    second = Launch(["--workers=2"], _train_flags(tmp_path, train_steps=4))
    assert second.wait(240) == 0, second.text()[-4000:]
    for i in (0, 1):  # every worker restores from the chief's checkpoint
        assert any(
            ln.startswith(f"[worker {i}] resumed from step 2 (")
            and ln.endswith("/checkpoints/ckpt-2)")
            for ln in second.lines
        )
    assert max_diff(checkpoint_weights(d), checkpoint_weights(tmp_path)) < 1e-6
    assert (
        max_diff(checkpoint_weights(d, "optimizers/"), checkpoint_weights(tmp_path, "optimizers/"))
        < 1e-6
    )
    assert (
        max_diff(
            checkpoint_weights(d, "generator_ema/", min_keys=6),
            checkpoint_weights(tmp_path, "generator_ema/", min_keys=6),
        )
        < 1e-6
    )


def test_rerunning_a_finished_run_trains_nothing(two_worker_run, tmp_path):
    d, code, _ = two_worker_run
    assert code == 0
    copy = tmp_path / "run"
    shutil.copytree(d, copy)
    again = Launch(["--workers=2"], _train_flags(copy, train_steps=4))
    assert again.wait(240) == 0, again.text()[-4000:]
    for i in (0, 1):
        assert f"[worker {i}] already at step 4 >= --train_steps=4: nothing to train" in again.lines


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, cache_dir):
    """A pitch classifier for --eval_every (one epoch: only the decisions matter here)."""
    out = tmp_path_factory.mktemp("cls") / "cls"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wavegan_dist.evaluate",
            "train-classifier",
            f"--out={out}",
            "--slice_len=2048",
            "--epochs=1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_eval_every_with_generator_batch_norm_keeps_the_best_on_every_worker_alike(
    tmp_path, classifier
):
    """Only the chief knows the best score; if the other worker decided for itself it would
    save (a collective with batch norm) at steps where the chief trains on: the run failed
    with unmatched collectives. The chief's decision is shared, so both save together."""
    run = Launch(
        ["--workers=2"],
        _train_flags(
            tmp_path,
            train_steps=8,
            eval_every=2,
            ckpt_every=10,
            eval_examples=16,
            eval_classifier=classifier,
            gen_batchnorm=True,
            num_wavs=0,
        ),
    )
    code = run.wait(300)
    out = run.text()
    assert code == 0, out[-4000:]
    for i in (0, 1):
        evals = [
            ln.split()[5].rstrip(":")
            for ln in run.lines
            if ln.startswith(f"[worker {i}] eval at step ")
        ]
        assert evals == ["2", "4", "6", "8"], out[-4000:]
        assert any(ln.startswith(f"[worker {i}] done at step 8:") for ln in run.lines)
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["step"] in (2, 4, 6, 8)


def _start_worker(index, addresses, flags):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )
    return subprocess.Popen(
        [sys.executable, "-m", "wavegan_dist.train", *flags],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _bn_checkpoint(model_dir, seed):
    """A --gen_batchnorm run's checkpoint at step 2, trained in this process."""
    flags = dict(TINY_TEST_FLAGS, gen_batchnorm=True, num_wavs=0, seed=seed)
    run_training(
        make_config("tiny", **flags, train_steps=2, model_dir=str(model_dir)),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=lambda _: None,
    )


def _run_two_workers(model_dirs, **flags):
    """Worker i of a 2-worker cluster on loopback trains in model_dirs[i]; returns
    [(exit status, stdout, stderr)] per worker."""
    sock = [socket.socket() for _ in range(2)]
    for s_ in sock:
        s_.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{s_.getsockname()[1]}" for s_ in sock]
    for s_ in sock:
        s_.close()
    procs = [
        _start_worker(i, addresses, _train_flags(d, **flags)) for i, d in enumerate(model_dirs)
    ]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        results.append((proc.returncode, out, err))
    return results


def _one_error_line(result):
    code, out, err = result
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, (out[-2000:], err[-4000:])
    return errors[0]


_SAME_DIR_ADVICE = (
    "every worker must see the chief's checkpoints in the same --model_dir "
    "(this worker's is {}): use one shared path (for example gs://...) on "
    "every host"
)


def test_workers_that_see_different_checkpoints_stop_with_one_line(tmp_path, cache_dir):
    """Worker 0's --model_dir has a checkpoint at step 2, worker 1's is empty (a local folder
    on each host). With --gen_batchnorm restoring is itself collective, so this is checked
    before restoring: both stop with one line naming each worker's checkpoint."""
    dirs = [tmp_path / "chief", tmp_path / "other"]
    _bn_checkpoint(dirs[0], seed=0)
    dirs[1].mkdir()
    results = _run_two_workers(dirs, train_steps=4, gen_batchnorm=True, num_wavs=0)
    for d, result in zip(dirs, results):
        assert _one_error_line(result) == (
            "error: the workers would resume from different checkpoints (worker 0 ckpt-2, "
            "worker 1 no checkpoint); " + _SAME_DIR_ADVICE.format(d)
        )
    assert not (dirs[1] / "checkpoints").exists()


def test_workers_that_restored_different_weights_stop_with_one_line(tmp_path, cache_dir):
    """Both --model_dirs hold a ckpt-2, of different runs (seeds): the weights' checksums
    differ after the restore."""
    dirs = [tmp_path / "chief", tmp_path / "other"]
    for seed, d in enumerate(dirs):
        _bn_checkpoint(d, seed)
    results = _run_two_workers(dirs, train_steps=4, gen_batchnorm=True, num_wavs=0)
    for d, result in zip(dirs, results):
        line = _one_error_line(result)
        assert re.fullmatch(
            r"error: the workers restored different states \(weights differs: worker 0 step 2 "
            r"\(weights crc32 [0-9a-f]{8}\), worker 1 step 2 \(weights crc32 [0-9a-f]{8}\)\); "
            + re.escape(_SAME_DIR_ADVICE.format(d)),
            line,
        ), line
    first, second = re.findall(r"crc32 ([0-9a-f]{8})", line)
    assert first != second


def test_sigterm_stops_every_worker_at_the_same_voted_step(tmp_path, cache_dir):
    """The workers vote on a stop only after the host calls that reach a multiple of
    STOP_VOTE_STEPS steps (one step per call here), so both save that step."""
    run = Launch(
        ["--workers=2", "--timeout=120"],
        _train_flags(tmp_path, train_steps=1000, ckpt_every=1000, sample_every=1000),
    )
    try:
        run.wait_for_line(r"^\[worker 0\] step 3/1000 ", timeout=180)
        run.proc.send_signal(signal.SIGTERM)
        code = run.wait(240)
    finally:
        run.kill()
    out = run.text()
    assert code == 128 + signal.SIGTERM, out[-4000:]
    stops = [
        re.match(r"\[worker (\d)\] stopped by SIGTERM at step (\d+): checkpoint ", ln)
        for ln in run.lines
    ]
    steps = {int(m.group(1)): int(m.group(2)) for m in stops if m}
    assert steps.keys() == {0, 1} and steps[0] == steps[1], out[-4000:]
    step = steps[0]
    assert step % faults.STOP_VOTE_STEPS == 0 and step >= faults.STOP_VOTE_STEPS, step
    assert os.path.exists(tmp_path / "checkpoints" / f"ckpt-{step}.index")


@pytest.mark.parametrize("victim", [1, 0])
def test_a_killed_worker_stops_the_run_within_the_bound(tmp_path, cache_dir, victim):
    """SIGKILL one worker once training runs: the survivor fails by itself (its collectives
    are aborted), and the launcher exits non-zero naming the dead worker. Worker 0 also
    runs the coordination service, so losing it is the other case."""
    run = Launch(["--workers=2", "--timeout=60"], _train_flags(tmp_path, train_steps=1000))
    try:
        run.wait_for_line(r"^\[worker \d\] step \d+/1000 ", timeout=180)
        pid = run.worker_pids()[victim]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        code = run.wait(DEAD_WORKER_BOUND_S + 60)
        elapsed = time.monotonic() - killed
    finally:
        run.kill()
    out = run.text()
    survivor = 1 - victim
    print(f"worker {victim} killed: the launcher exited {elapsed:.1f} s later")
    assert code == 1, out[-4000:]
    assert elapsed < DEAD_WORKER_BOUND_S, f"{elapsed:.1f} s\n{out[-4000:]}"
    assert f"[launcher] worker {victim} (pid {pid}) was killed by signal SIGKILL (9)" in out
    # The survivor exited by itself (the launcher would wait 60 s before stopping it).
    assert run.lines[-1] == (
        f"error: worker {victim} was killed by signal SIGKILL (9); "
        f"worker {survivor} exited with status 1"
    ), out[-4000:]
    assert "sending SIGTERM" not in out
    # ... because TensorFlow told it that its peer is gone, naming the peer.
    said = "\n".join(ln for ln in run.lines if ln.startswith(f"[worker {survivor}] "))
    assert f"[worker {survivor}] error: lost contact with worker {victim}" in said, said[-4000:]
    assert "Traceback" not in said


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers=0", "--", "--strategy=multiworker"], "--workers must be >= 1, got 0"),
        (["--workers=2"], "no train flags: put them after `--`"),
        (["--workers=2", "--"], "no train flags after `--`"),
        (
            ["--workers=2", "--", "--model_dir=x"],
            "the train flags have no --strategy; add --strategy=multiworker",
        ),
        (
            ["--workers=2", "--", "--strategy=mirrored", "--model_dir=x"],
            "the train flags have --strategy=mirrored; add --strategy=multiworker",
        ),
        (
            ["--workers=two", "--", "--strategy=multiworker"],
            "argument --workers: invalid int value",
        ),
        (
            ["--workers=2", "--bogus", "--", "--strategy=multiworker"],
            "unrecognized arguments: --bogus",
        ),
        (["--", "--strategy=multiworker"], "the following arguments are required: --workers"),
        (["--workers=2", "--timeout=0", "--", "--strategy=multiworker"], "--timeout must be > 0"),
    ],
)
def test_bad_launcher_arguments_are_one_error_line(args, message):
    proc = subprocess.run(
        [sys.executable, LAUNCHER, *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_multiworker_needs_a_fresh_runtime_and_a_task_in_its_cluster(monkeypatch):
    tf.zeros([1]).numpy()  # the test process's runtime is up
    cluster = '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
    monkeypatch.setenv("TF_CONFIG", cluster + '"task": {"type": "worker", "index": 2}}')
    with pytest.raises(UserError, match=r"task worker:2 is not in its cluster \(worker: 2"):
        strategies.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", cluster + '"task": {}}')
    with pytest.raises(UserError, match="'task' must name this process"):
        strategies.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", cluster + '"task": {"type": "worker", "index": 1}}')
    with pytest.raises(UserError, match="before TensorFlow runs its first op"):
        strategies.make_strategy("multiworker")


# What TensorFlow 2.17 raised in a surviving worker (recorded from the runs above).
_PEER_ERRORS = {
    "reset": (
        "Collective ops is aborted by: Socket closed\nAdditional GRPC error information "
        "from remote target /job:worker/replica:0/task:1 while calling "
        '/tensorflow.WorkerService/RecvBuf:\n:{"grpc_status":14}\nThe error could be '
        "from a previous operation. Restart your program to reset."
    ),
    "heartbeat": (
        "Collective ops is aborted by: Error reported from /job:worker/task:1: Task "
        "/job:worker/replica:0/task:1 heartbeat timeout. This indicates that the "
        "remote task has failed, got preempted, or crashed unexpectedly."
    ),
    "leader": (
        "Collective ops is aborted by: failed to connect to all addresses\nAdditional "
        "GRPC error information from remote target /job:worker/replica:0/task:0 while "
        "calling /tensorflow.CoordinationService/Heartbeat:\n:{}"
    ),
}


def test_lost_peer_errors_become_one_line():
    say = strategies.cluster_failure_message
    reset = say(tf.errors.UnavailableError(None, None, _PEER_ERRORS["reset"]))
    assert reset.startswith(
        "lost contact with worker 1 of the multi-worker cluster (Socket closed); "
    )
    assert "resume from the last checkpoint" in reset and "\n" not in reset
    beat = say(tf.errors.UnavailableError(None, None, _PEER_ERRORS["heartbeat"]))
    assert beat.startswith(
        "lost contact with worker 1 of the multi-worker cluster "
        f"(no heartbeat for {strategies.MULTIWORKER_HEARTBEAT_TIMEOUT_S} s)"
    )
    leader = say(tf.errors.UnavailableError(None, None, _PEER_ERRORS["leader"]))
    assert leader.startswith(
        "lost contact with worker 0 of the multi-worker cluster "
        "(failed to connect to all addresses)"
    )
    assert say(tf.errors.InvalidArgumentError(None, None, "x")) is None
    assert say(ValueError("x")) is None
