"""The outer loop's schedule, run by the real Controller and its actions with plain Python
stand-ins for the trainer, checkpointer, summary writer, WAV snapshots, evaluator and
workers: which action runs at which step, how host calls are cut, rollback and stop.

Every stand-in appends (step, what) to one list, so each test states the exact order of
events of a run.
"""

import itertools

import numpy as np
import pytest

from wavegan_dist.errors import UserError
from wavegan_dist.training import faults
from wavegan_dist.training.controller import Controller, Evaluate, Progress, Rollback, Schedule

METRICS = ("critic", "generator", "gradient_penalty", "wasserstein")


class FakeTrainer:
    """Made-up scalars (step / 100 for every metric). From step `nan_at` on, until the
    next restore, they are NaN, as diverged weights would give; the call that runs step
    `stop_at` asks `stop` to stop, as a signal arriving during that call would."""

    def __init__(self, events, stop, nan_at=None, stop_at=None):
        self.events, self.stop = events, stop
        self.nan_at, self.stop_at = nan_at, stop_at
        self.step, self.poisoned = 0, False

    def start(self, step):
        self.step = step
        self.events.append((step, "start"))

    def train(self, steps):
        first, self.step = self.step + 1, self.step + steps
        self.events.append((self.step, f"train {first}..{self.step}"))
        values = []
        for s in range(first, self.step + 1):
            self.poisoned = self.poisoned or s == self.nan_at
            values.append(np.nan if self.poisoned else s / 100)
        if self.stop_at is not None and first <= self.stop_at <= self.step:
            self.stop.request("a test")
        return {k: np.array(values, np.float32) for k in METRICS}

    def finish(self):
        pass

    def restored(self, noise_seed=None):
        self.poisoned, self.nan_at = False, None
        self.events.append((self.step, f"seed {noise_seed}"))

    def state(self):
        return []


class FakeCheckpointer:
    def __init__(self, events, trainer):
        self.events, self.trainer, self.saved = events, trainer, []

    @property
    def latest(self):
        return f"ckpt-{self.saved[-1]}" if self.saved else None

    def save(self):
        self.saved.append(self.trainer.step)
        self.events.append((self.trainer.step, "save"))
        return self.latest

    def restore_latest(self):
        self.trainer.step = self.saved[-1]
        self.events.append((self.trainer.step, "restore"))
        return self.trainer.step


class FakeWriter:
    def __init__(self, events):
        self.events = events

    def scalars(self, step, metrics, examples_per_sec):
        self.events.append((step, "log"))

    def audio(self, step, generated, real, pitches=None):
        self.events.append((step, "audio"))

    def evaluation(self, step, values):
        self.events.append((step, "eval"))

    def flush(self):
        pass


class FakeSnapshots:
    def __init__(self, events):
        self.events = events

    def write(self, step):
        self.events.append((step, "wavs"))
        return []


class FakeWorkers:
    """One worker, or (multi) a vote where this worker is the only one asked to stop."""

    def __init__(self, events, trainer, multi=False):
        self.events, self.trainer, self.multi = events, trainer, multi

    def any(self, flag):
        self.events.append((self.trainer.step, f"vote {flag}"))
        return flag

    def chief_says(self, flag):
        return flag

    def check_same_state(self, step, variables, model_dir):
        pass


class FakeEvaluator:
    """Scores the given Frechet distances in turn; records the checkpoints it keeps."""

    def __init__(self, events, scores):
        self.events, self.scores, self.best = events, list(scores), None

    def __call__(self, model):
        return {"frechet_distance": self.scores.pop(0)}

    def keep_if_best(self, step, metrics, path):
        self.best = {"frechet_distance": metrics["frechet_distance"]}
        self.events.append((step, f"best {path}"))
        return True


def _controller(
    schedule, start=0, on_nan="stop", max_rollbacks=3, multi=False, eval_scores=None, **trainer_kw
):
    events, logs = [], []
    stop = faults.StopRequest()  # not entered: no signal handlers, only the flag
    trainer = FakeTrainer(events, stop, **trainer_kw)
    trainer.step = start
    checkpointer = FakeCheckpointer(events, trainer)
    evaluate = None
    if eval_scores is not None:
        evaluate = Evaluate(
            evaluator=FakeEvaluator(events, eval_scores), model=trainer, chief=True, model_dir="run"
        )
    ctl = Controller(
        trainer=trainer,
        checkpointer=checkpointer,
        writer=FakeWriter(events),
        schedule=schedule,
        stop=stop,
        workers=FakeWorkers(events, trainer, multi),
        step=start,
        log=logs.append,
        progress=Progress(examples_per_step=8, clock=itertools.count().__next__),
        rollback=Rollback(on_nan=on_nan, max_rollbacks=max_rollbacks, seed=7, model_dir="run"),
        snapshots=FakeSnapshots(events),
        evaluate=evaluate,
    )
    return ctl, events, logs


def _calls(schedule, step=0):
    lengths = []
    while step < schedule.train_steps:
        lengths.append(schedule.call_length(step))
        step += lengths[-1]
    return lengths


def test_one_step_per_call_logs_samples_and_saves_on_their_steps_and_at_the_end():
    ctl, events, logs = _controller(
        Schedule(train_steps=5, log_every=2, ckpt_every=4, sample_every=3)
    )
    ctl.run()
    assert events == [
        (0, "start"),
        (1, "train 1..1"),
        (1, "log"),  # the first step is always logged
        (2, "train 2..2"),
        (2, "log"),
        (3, "train 3..3"),
        (3, "wavs"),
        (4, "train 4..4"),
        (4, "log"),
        (4, "save"),
        (5, "train 5..5"),
        (5, "log"),
        (5, "save"),
        (5, "wavs"),  # the last step: all
    ]
    assert (ctl.step, ctl.stopped, ctl.rollbacks) == (5, False, 0)
    assert ctl.metrics == {k: pytest.approx(0.05) for k in METRICS}
    assert logs[1] == "step 1: first call of 1 step(s) (tracing and compiling) took 1.0 s"
    assert logs[2].startswith("step 1/5  critic +0.0100  generator +0.0100  gp 0.0100")
    assert logs[-1] == "checkpoint ckpt-5"


def test_steps_per_loop_calls_are_cut_at_every_checkpoint_sample_and_evaluation():
    schedule = Schedule(
        train_steps=13, steps_per_loop=4, log_every=4, ckpt_every=5, sample_every=3, eval_every=6
    )
    assert _calls(schedule) == [3, 2, 1, 3, 1, 2, 1]
    assert _calls(schedule, step=7) == [2, 1, 2, 1]  # a resumed run cuts at the same steps
    assert _calls(Schedule(train_steps=10, steps_per_loop=4, ckpt_every=100, sample_every=100)) == [
        4,
        4,
        2,
    ]
    ctl, events, _ = _controller(schedule, eval_scores=[9.0, 8.0])
    ctl.run()
    assert events == [
        (0, "start"),
        (3, "train 1..3"),
        (1, "log"),
        (3, "wavs"),
        (5, "train 4..5"),
        (4, "log"),
        (5, "save"),
        (6, "train 6..6"),
        (6, "wavs"),
        (6, "eval"),
        (6, "save"),
        (6, "best ckpt-6"),
        (9, "train 7..9"),
        (8, "log"),
        (9, "wavs"),
        (10, "train 10..10"),
        (10, "save"),
        (12, "train 11..12"),
        (12, "log"),
        (12, "wavs"),
        (12, "eval"),
        (12, "save"),
        (12, "best ckpt-12"),
        (13, "train 13..13"),
        (13, "log"),
        (13, "save"),
        (13, "wavs"),
    ]


def test_each_logged_step_of_a_long_call_is_written():
    ctl, events, logs = _controller(
        Schedule(train_steps=6, steps_per_loop=6, log_every=2, ckpt_every=6, sample_every=6)
    )
    ctl.run()
    assert events == [
        (0, "start"),
        (6, "train 1..6"),
        (1, "log"),
        (2, "log"),
        (4, "log"),
        (6, "log"),
        (6, "save"),
        (6, "wavs"),
    ]
    assert [line.split()[1] for line in logs if "critic" in line] == ["1/6", "2/6", "4/6", "6/6"]


def test_a_resumed_run_logs_its_first_step_and_an_ended_one_trains_nothing():
    ctl, events, _ = _controller(
        Schedule(train_steps=9, log_every=4, ckpt_every=4, sample_every=4), start=7
    )
    ctl.run()
    assert events == [
        (7, "start"),
        (8, "train 8..8"),
        (8, "log"),
        (8, "save"),
        (8, "wavs"),
        (9, "train 9..9"),
        (9, "log"),
        (9, "save"),
        (9, "wavs"),
    ]
    ctl, events, logs = _controller(Schedule(train_steps=9), start=9)
    ctl.run()
    assert events == [] and logs == ["already at step 9 >= --train_steps=9: nothing to train"]


def test_a_nan_rolls_back_to_the_last_checkpoint_and_restarts_the_data_there():
    """The NaN at step 3 is not fetched (nothing is logged or saved at 3); the save at 4
    fetches it first, so ckpt-4 is never written: back to ckpt-2, with a new noise
    seed, and the input restarts at step 2."""
    ctl, events, logs = _controller(
        Schedule(train_steps=6, log_every=100, ckpt_every=2, sample_every=100),
        on_nan="rollback",
        nan_at=3,
    )
    ctl.run()
    seed = faults.rollback_seed(7, 1)
    assert events == [
        (0, "start"),
        (1, "train 1..1"),
        (1, "log"),
        (2, "train 2..2"),
        (2, "save"),
        (3, "train 3..3"),
        (4, "train 4..4"),
        (2, "restore"),
        (2, f"seed {seed}"),
        (2, "start"),
        (3, "train 3..3"),
        (3, "log"),  # a new segment logs its first step
        (4, "train 4..4"),
        (4, "save"),
        (5, "train 5..5"),
        (6, "train 6..6"),
        (6, "log"),
        (6, "save"),
        (6, "wavs"),
    ]
    assert (ctl.step, ctl.rollbacks) == (6, 1)
    assert (
        f"rollback 1/3: non-finite loss at step 4 (critic nan, generator nan, "
        f"gradient_penalty nan, wasserstein nan); restored ckpt-2 (step 2), continuing "
        f"with noise seed {seed}"
    ) in logs


@pytest.mark.parametrize(
    "nan_at, kw, why",
    [
        (3, {}, r"at step 3 .*intact: ckpt-2; --on_nan=rollback would restore it"),
        (
            3,
            {"on_nan": "rollback", "max_rollbacks": 0},
            r"intact: ckpt-2; --max_rollbacks=0 used up",
        ),
        (
            1,
            {"on_nan": "rollback"},
            r"intact: none \(no checkpoint was written\); no checkpoint to",
        ),
    ],
)
def test_a_nan_that_is_not_rolled_back_stops_with_one_line(nan_at, kw, why):
    ctl, events, _ = _controller(
        Schedule(train_steps=6, log_every=1, ckpt_every=2, sample_every=100), nan_at=nan_at, **kw
    )
    with pytest.raises(UserError, match="training diverged .*" + why):
        ctl.run()
    assert events[-1] == (nan_at, f"train {nan_at}..{nan_at}")  # nothing after the NaN


def test_a_stop_request_saves_at_the_end_of_the_call_it_arrived_in():
    ctl, events, _ = _controller(
        Schedule(train_steps=20, steps_per_loop=4, log_every=100, ckpt_every=100, sample_every=100),
        stop_at=6,
    )
    assert not ctl.stop.graceful
    ctl.run()
    assert events == [(0, "start"), (4, "train 1..4"), (1, "log"), (8, "train 5..8"), (8, "save")]
    assert (ctl.step, ctl.stopped) == (8, True) and not ctl.stop.graceful


@pytest.mark.parametrize(
    "steps_per_loop, votes, saved",
    [
        (1, [10, 20], 20),  # one step per call: votes only at multiples of 10
        (3, [12, 21], 21),  # the calls that pass a multiple of 10
        (10, [10, 20], 20),  # calls of 10 steps or more vote every call, so act at once
    ],
)
def test_workers_vote_on_stopping_only_after_calls_that_pass_a_multiple_of_10(
    steps_per_loop, votes, saved
):
    ctl, events, _ = _controller(
        Schedule(
            train_steps=50,
            steps_per_loop=steps_per_loop,
            log_every=100,
            ckpt_every=100,
            sample_every=100,
            vote_every=faults.STOP_VOTE_STEPS,
        ),
        multi=True,
        stop_at=13,
    )
    ctl.run()
    assert [(s, what) for s, what in events if what.startswith("vote")] == [
        (votes[0], "vote False"),
        (votes[1], "vote True"),
    ]
    assert events[-2:] == [(saved, "vote True"), (saved, "save")]
    assert (ctl.step, ctl.stopped) == (saved, True)
    assert Schedule.of(_Flags(), multi_worker=True).vote_every == faults.STOP_VOTE_STEPS
    assert Schedule.of(_Flags()).vote_every == 0


class _Flags:
    """The Config fields a Schedule reads."""

    train_steps, steps_per_loop, log_every, ckpt_every, sample_every, eval_every = 10, 2, 5, 5, 5, 0


def test_evaluation_keeps_the_best_saving_only_where_the_step_had_no_checkpoint():
    ctl, events, logs = _controller(
        Schedule(train_steps=6, log_every=100, ckpt_every=4, sample_every=100, eval_every=2),
        eval_scores=[5.0, 3.0, 4.0],
    )
    ctl.run()
    assert [e for e in events if e[1] not in ("start", "log") and "train" not in e[1]] == [
        (2, "eval"),
        (2, "save"),
        (2, "best ckpt-2"),  # the best is kept as a checkpoint
        (4, "save"),
        (4, "eval"),
        (4, "best ckpt-4"),  # the step's own checkpoint
        (6, "save"),
        (6, "wavs"),
        (6, "eval"),  # not better: nothing kept
    ]
    assert "best Frechet distance so far: kept ckpt-4 in run/best" in logs
