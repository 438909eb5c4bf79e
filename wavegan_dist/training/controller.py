"""The outer training loop: a Controller that runs host calls of steps, and its actions.

A `Schedule` says, from the step numbers alone, how long the next host call is and what
follows it; the `Controller` runs the calls and, after each, the actions due: the loss
log (with the NaN check), the audio summary, the checkpoint, the WAV files, the
evaluation and the stop vote; when a loss is not finite, the rollback. Everything here
reaches TensorFlow only through the objects it is given (trainer, checkpointer,
summary writer, workers), so the whole schedule runs with plain Python stand-ins in
milliseconds (tests/test_controller.py); training/loop.py builds the real ones.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Protocol

import numpy as np

from wavegan_dist.errors import UserError
from wavegan_dist.training import faults


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Which steps end a host call and which actions follow it: arithmetic on steps only.

    Checkpoints, audio summaries and evaluations happen between host calls, so a call
    is cut short before each of them, and before the last step.

    Attributes:
      train_steps: the step the run ends at.
      steps_per_loop: most generator steps in one host call.
      log_every, ckpt_every, sample_every: steps between logged losses, checkpoints,
        audio summaries (and WAV files).
      eval_every: steps between evaluations; 0 for none.
      vote_every: 0 when one process decides alone (its own stop flag is read after
        every call). A multi-worker run votes on stopping (one small all-reduce) only
        after a call that reaches or passes a multiple of this many steps, the same
        calls on every worker, so the vote is not a round trip on every call; a stop
        is then acted on fewer than vote_every + steps_per_loop - 1 steps later (at
        once when every call is vote_every steps or longer).
    """

    train_steps: int
    steps_per_loop: int = 1
    log_every: int = 100
    ckpt_every: int = 1000
    sample_every: int = 1000
    eval_every: int = 0
    vote_every: int = 0

    @classmethod
    def of(cls, cfg, multi_worker: bool = False) -> "Schedule":
        """The schedule of a run's Config (its fields of the same names).

        Args:
          multi_worker: the run has several workers, which vote every
            faults.STOP_VOTE_STEPS steps.
        """
        return cls(
            train_steps=cfg.train_steps,
            steps_per_loop=cfg.steps_per_loop,
            log_every=cfg.log_every,
            ckpt_every=cfg.ckpt_every,
            sample_every=cfg.sample_every,
            eval_every=cfg.eval_every,
            vote_every=faults.STOP_VOTE_STEPS if multi_worker else 0,
        )

    def call_length(self, step: int) -> int:
        """Steps of the host call that starts after `step`: --steps_per_loop, cut at the
        next checkpoint, audio summary, evaluation or the last step."""
        cuts = [self.ckpt_every, self.sample_every] + ([self.eval_every] if self.eval_every else [])
        return min([self.steps_per_loop, self.train_steps - step] + [c - step % c for c in cuts])

    def logged(self, first: int, step: int, end: int) -> list[int]:
        """Steps step+1..end whose losses are logged: every --log_every, the last, and
        the first step after `first` (where the run, or its segment after a rollback,
        started)."""
        return [
            s
            for s in range(step + 1, end + 1)
            if s == first + 1 or s % self.log_every == 0 or s == self.train_steps
        ]

    def votes(self, step: int, end: int) -> bool:
        """True if the workers vote on stopping after the call from `step` to `end`."""
        return bool(self.vote_every) and end // self.vote_every != step // self.vote_every

    def saves(self, end: int) -> bool:
        """True if a checkpoint is due at `end` (a stop saves as well)."""
        return end % self.ckpt_every == 0 or end == self.train_steps

    def samples(self, end: int) -> bool:
        """True if audio summaries and WAV files are due at `end`."""
        return end % self.sample_every == 0 or end == self.train_steps

    def evaluates(self, end: int) -> bool:
        """True if an evaluation is due at `end`."""
        return bool(self.eval_every) and end % self.eval_every == 0


class Trainer(Protocol):
    """What the Controller asks of a trainer (training/loop.PipelineTrainer is the real one)."""

    def start(self, step: int) -> None:
        """Opens the input at `step` (again after a rollback, so that the data restart
        exactly where an uninterrupted run would be)."""

    def train(self, steps: int) -> dict:
        """Runs `steps` steps; returns {metric: array [steps]}, fetched only when read."""

    def finish(self) -> None:
        """Releases the input opened by start."""

    def restored(self, noise_seed: int | None = None) -> None:
        """Called after the checkpointer restored a checkpoint; `noise_seed` replaces the
        restored one if given."""

    def state(self) -> list:
        """The trained variables, in the same order on every worker."""


@dataclasses.dataclass(frozen=True)
class HostCall:
    """One host call that has returned.

    Attributes:
      first: the step the segment started at (the run's start, or a rollback's).
      step, end: the steps before and after the call.
      logged: the steps whose losses are logged.
      values: {metric: float array [end - step]}, fetched and finite, or None if
        nothing needed them.
    """

    first: int
    step: int
    end: int
    logged: list
    values: dict | None


def fetched(out: dict, step: int) -> dict:
    """The host values of a call's scalars {metric: array [n]}, run from `step`.

    Fetching waits for the device, so it happens only when a value is needed, and
    always before a save, so no checkpoint ever holds diverged weights.

    Raises:
      faults.Diverged at the first step with a NaN or infinite scalar.
    """
    values = {k: np.asarray(v) for k, v in out.items()}
    bad = faults.first_non_finite(values)
    if bad is not None:
        raise faults.Diverged(step + bad + 1, {k: float(v[bad]) for k, v in values.items()})
    return values


def format_eta(seconds: float) -> str:
    """'H:MM:SS', or '?' when not finite."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """The loss action: each logged step's scalars to the summary writer and one log line,
    with throughput and time to go measured between logged calls.

    Args:
      examples_per_step: real examples one generator step reads (n_critic * batch).
      clock: seconds, monotonic.
    """

    def __init__(self, examples_per_step: int, clock: Callable[[], float] = time.perf_counter):
        self.examples_per_step = examples_per_step
        self.clock = clock
        self._rate: float | None = None
        self.restart(0)

    def restart(self, step: int) -> None:
        """Starts timing at `step` (a segment's first call includes tracing and compiling,
        so it gives no rate)."""
        self._mark, self._rate = (self.clock(), step), None

    def __call__(self, ctl: "Controller", call: HostCall) -> None:
        now = self.clock()
        mark_time, mark_step = self._mark
        train_steps = ctl.schedule.train_steps
        if call.step == call.first:
            ctl.log(
                f"step {call.first + 1}: first call of {call.end - call.step} step(s) "
                f"(tracing and compiling) took {now - mark_time:.1f} s"
            )
        else:
            self._rate = (call.end - mark_step) * self.examples_per_step / (now - mark_time)
        self._mark = (now, call.end)
        assert call.values is not None, "a call with logged steps has fetched its values"
        for s in call.logged:
            at = {k: float(v[s - call.step - 1]) for k, v in call.values.items()}
            ctl.writer.scalars(s, at, self._rate)
            speed = ""
            if self._rate:
                eta = (train_steps - s) * self.examples_per_step / self._rate
                speed = f"  {self._rate:.1f} examples/s  ETA {format_eta(eta)}"
            classifier = ""
            if "classifier_real" in at:
                classifier = (
                    f"  classifier real {at['classifier_real']:.4f} "
                    f"fake {at['classifier_fake']:.4f}"
                )
            ctl.log(
                f"step {s}/{train_steps}  critic {at['critic']:+.4f}  "
                f"generator {at['generator']:+.4f}  gp {at['gradient_penalty']:.4f}  "
                f"wasserstein {at['wasserstein']:+.4f}{classifier}{speed}"
            )


@dataclasses.dataclass
class AudioSummary:
    """The audio action: generated clips beside real ones in the summaries.

    Attributes:
      generate: () -> float32 [K, T, 1], the current generator's clips (fixed inputs).
      real: float32 [K, T, 1], real clips as the critic sees them.
      pitches: int [K], each generated clip's requested MIDI pitch (a pitch-conditional
        run), which marks its spectrogram; None otherwise.
    """

    generate: Callable[[], Any]
    real: Any
    pitches: Any = None

    def __call__(self, ctl: "Controller") -> None:
        ctl.writer.audio(ctl.step, self.generate(), self.real, self.pitches)


@dataclasses.dataclass
class Evaluate:
    """The evaluation action: scores the generator, writes eval/ scalars, keeps the best.

    Only the chief tracks the best score, so it decides, and every worker follows (a
    save is collective): all save at the same steps.

    Attributes:
      evaluator: a training.evaluator.TrainingEvaluator (called with `model`; has
        `best` and keep_if_best).
      model: what the evaluator scores (the WganGpTrainer).
      chief: this process keeps the best checkpoint.
      model_dir: the run's folder, for the log line.
    """

    evaluator: Any
    model: Any
    chief: bool
    model_dir: str

    def __call__(self, ctl: "Controller", saved: str | None) -> None:
        """Args: saved: the checkpoint written at this step, or None."""
        started = time.perf_counter()
        values = self.evaluator(self.model)
        ctl.writer.evaluation(ctl.step, values)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items() if v is not None)
        ctl.log(f"eval at step {ctl.step}: {shown}  ({time.perf_counter() - started:.1f} s)")
        best = self.evaluator.best
        better = best is None or values["frechet_distance"] < best["frechet_distance"]
        if ctl.workers.chief_says(better):
            # The best is kept as a checkpoint, so one is written here if the step had none.
            path = saved or ctl.checkpointer.save()
            if self.chief and self.evaluator.keep_if_best(ctl.step, values, path):
                ctl.log(f"best Frechet distance so far: kept {path} in {self.model_dir}/best")


@dataclasses.dataclass(frozen=True)
class Rollback:
    """The rollback action (--on_nan): restores the last checkpoint with a new noise seed.

    Attributes:
      on_nan: "stop" or "rollback".
      max_rollbacks: rollbacks allowed in one process.
      seed: the run's --seed, from which rollback seeds are derived.
      model_dir: the run's folder, for messages.
    """

    on_nan: str
    max_rollbacks: int
    seed: int
    model_dir: str

    def __call__(self, ctl: "Controller", bad: faults.Diverged) -> int:
        """Rolls `ctl` back after ctl.rollbacks rollbacks (this one included); returns
        the restored step.

        Raises:
          UserError when --on_nan=stop, the rollbacks are used up, or there is no
          checkpoint to go back to.
        """
        losses = faults.describe_metrics(bad.metrics)
        kept = ctl.checkpointer.latest
        if self.on_nan != "rollback" or ctl.rollbacks > self.max_rollbacks or kept is None:
            if self.on_nan == "rollback" and kept is None:
                why = "; no checkpoint to roll back to yet"
            elif self.on_nan == "rollback":
                why = f"; --max_rollbacks={self.max_rollbacks} used up"
            else:
                why = "; --on_nan=rollback would restore it and continue with a fresh noise seed"
            raise UserError(
                f"training diverged at step {bad.step} ({losses}); the last "
                f"checkpoint is intact: {kept or 'none (no checkpoint was written)'}"
                f"{why}"
            )
        step = ctl.checkpointer.restore_latest()  # the generator EMA too
        seed = faults.rollback_seed(self.seed, ctl.rollbacks)
        ctl.trainer.restored(noise_seed=seed)
        ctl.log(
            f"rollback {ctl.rollbacks}/{self.max_rollbacks}: non-finite loss at step "
            f"{bad.step} ({losses}); restored {kept} (step {step}), continuing with noise "
            f"seed {seed}"
        )
        ctl.workers.check_same_state(step, ctl.trainer.state(), self.model_dir)
        return step


@dataclasses.dataclass
class Controller:
    """Runs a trainer from `step` to schedule.train_steps in host calls, with the actions
    the schedule names after each call, in this order: the stop vote, the losses (fetched
    and checked for NaN first when they are logged or a checkpoint follows), the audio
    summary, the checkpoint, the WAV files, the evaluation, then the stop.

    Attributes:
      trainer: runs the steps (see Trainer).
      checkpointer: save() -> path, restore_latest() -> step, latest (path or None).
      writer: the summary writer (summaries.RunSummaries).
      schedule: what runs when.
      stop: the run's faults.StopRequest.
      workers: the run's consensus.Workers (any, chief_says, check_same_state).
      step: the step reached; the run's start until run() is called.
      log: one-line messages.
      progress: the loss action.
      rollback: the action for a non-finite loss.
      audio: the audio summary action, or None.
      snapshots: WAV files of the generator (write(step) -> paths), or None.
      evaluate: the evaluation action, or None.
    After run(): metrics (the last fetched scalars, floats), rollbacks (how many) and
    stopped (by a stop request) describe the run.
    """

    trainer: Trainer
    checkpointer: Any
    writer: Any
    schedule: Schedule
    stop: faults.StopRequest
    workers: Any
    step: int
    log: Callable[[str], None]
    progress: Progress
    rollback: Rollback
    audio: AudioSummary | None = None
    snapshots: Any = None
    evaluate: Evaluate | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    rollbacks: int = 0
    stopped: bool = False

    def run(self) -> None:
        """Trains to schedule.train_steps, or until a stop request is agreed (after
        checkpointing the step reached). Raises UserError for a divergence that is not
        rolled back."""
        if self.step >= self.schedule.train_steps:
            self.log(
                f"already at step {self.step} >= --train_steps="
                f"{self.schedule.train_steps}: nothing to train"
            )
        else:
            # Nothing is printed while the first host call traces, compiles and runs, so
            # the wait is announced. First calls measured on a 2-core CPU: 9.5 s (tests'
            # tiny flags), 22 s (--preset=tiny), 19.5 s (paper model at batch 8, 1 critic
            # update); with the paper's batch 64 and 5 critic updates that step alone
            # takes minutes.
            self.log(
                f"building and compiling the training step: step {self.step + 1} "
                "follows in roughly 10 s to 3 min on a CPU (longer with --jit_compile, "
                "several replicas or --steps_per_loop > 1)"
            )
        while self.step < self.schedule.train_steps and not self.stopped:
            self.trainer.start(self.step)
            try:
                self._run_segment()
            except faults.Diverged as bad:
                self.rollbacks += 1
                self.step = self.rollback(self, bad)
            finally:
                self.trainer.finish()
        self.stop.graceful = False  # the last checkpoint is written: a signal now ends the run
        self.writer.flush()

    def _run_segment(self) -> None:
        """Host calls from self.step on one input, until the end, a stop or a divergence."""
        first = self.step
        self.progress.restart(first)
        while self.step < self.schedule.train_steps:
            step = self.step
            end = step + self.schedule.call_length(step)
            out = self.trainer.train(end - step)
            self.stop.graceful = True  # from now on a stop saves the steps trained
            stopping = self._stop_agreed(step, end)
            saves = self.schedule.saves(end) or stopping
            logged = self.schedule.logged(first, step, end)
            values = None
            if logged or saves:
                values = fetched(out, step)
                self.metrics = {k: float(v[-1]) for k, v in values.items()}
            if logged:
                self.progress(
                    self, HostCall(first=first, step=step, end=end, logged=logged, values=values)
                )
            self.step = end
            sampling = self.schedule.samples(end)
            if sampling and self.audio is not None:
                self.audio(self)
            saved = self._save() if saves else None
            if sampling and self.snapshots is not None:
                self.snapshots.write(end)  # after the checkpoint, which matters more
            if self.evaluate is not None and self.schedule.evaluates(end):
                self.evaluate(self, saved)
            if stopping:
                self.stopped = True
                return

    def _stop_agreed(self, step: int, end: int) -> bool:
        """True if this process, or in a multi-worker run any worker, was asked to stop
        (every worker must save the same checkpoint at the same step: saving is
        collective)."""
        if not self.schedule.vote_every:
            return self.stop.requested
        return self.schedule.votes(step, end) and self.workers.any(self.stop.requested)

    def _save(self) -> str:
        saved = self.checkpointer.save()
        self.log(f"checkpoint {saved}")
        return saved
