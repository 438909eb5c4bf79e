"""Does training make better sound? The Frechet distance of the untrained generator next
to the same generator after a fixed number of steps, on the built-in data, and the
independent judge's figures (evaluation/pitch_judge.py) for both and for real notes."""

from __future__ import annotations

import os
import tempfile
import time

from wavegan_dist.config import make_config
from wavegan_dist.errors import UserError


def check_workdir(workdir: str) -> None:
    """Raises UserError unless `workdir` is "" (a temporary folder), new, or an empty
    folder: a run already there would be resumed, not trained, and its classifier
    replaced. Imports no TensorFlow, so the command line can refuse at once."""
    if (
        workdir
        and os.path.exists(workdir)
        and not (os.path.isdir(workdir) and not os.listdir(workdir))
    ):
        raise UserError(
            f"--workdir={workdir} exists and is not an empty folder; pass a new "
            "or empty folder (or none, for a temporary one)"
        )


def measure_learning(
    steps: int,
    condition: str = "none",
    data: str = "builtin",
    classifier_dir: str = "",
    workdir: str = "",
    cpu_replicas: int = 2,
    generated: int = 1000,
    seed: int = 0,
    preset: str = "tiny",
    log=print,
) -> dict:
    """Trains a preset for `steps` steps and scores the generator before and after
    (after: the weights' moving average, as `generate` and `evaluate` use, --generator_ema).

    Args:
      steps: generator steps to train.
      preset: the config.PRESETS entry trained (its model, slice and optimiser).
      condition: "none" or "pitch" (then pitch accuracy is reported too).
      data: the dataset (train split for training, valid for the held-out notes).
      classifier_dir: a pitch classifier to use; "" trains one on `data` first.
      workdir: where the run (and classifier) go; "" = a new temporary folder.
      cpu_replicas: logical CPU replicas for training (MirroredStrategy).
      generated: clips generated for each score (the same latent vectors before and
        after). The Frechet distance of n samples is biased upwards by about
        trace(covariance) / n, so many clips make the before/after ratio less a
        measure of the sample size (the reference is the training notes' embeddings).
    Returns:
      {"frechet_distance_untrained", "frechet_distance_trained", "trained_over_untrained",
       "frechet_distance_real" (the real held-out notes'), the same four of
       "log_mel_frechet_distance" ("log_mel_trained_over_untrained"), of
       "log_mel_mean_term" and of "log_mel_level_db" (report.evaluate_sets: what of
       the log-mel distance the mean frame makes, and the mel power above the training
       notes'),
       "pitch_accuracy_untrained", "pitch_accuracy_trained" (None if unconditional),
       "steps", "train_seconds", "classifier_heldout_accuracy", ...} and, for each of
      pitch_judge.JUDGE_KEYS, "<key>_untrained", "<key>_trained" and "<key>_real" (the
      real held-out notes); the judge's pitch accuracies are None for an
      unconditional run (the real notes' too, when the classifier is not of pitch).
    """
    from wavegan_dist import strategy as strategies
    from wavegan_dist.evaluation import classifier, pitch_judge, run as evaluation
    from wavegan_dist.inference.restore import load_generator
    from wavegan_dist.models import build_generator
    from wavegan_dist.training.loop import run_training

    check_workdir(workdir)
    workdir = workdir or tempfile.mkdtemp(prefix="wavegan_dist_learn_")
    cfg = make_config(
        preset,
        data=data,
        condition=condition,
        train_steps=steps,
        seed=seed,
        cpu_replicas=cpu_replicas,
        strategy="mirrored",
        num_wavs=0,
        ckpt_every=max(1, steps),
        sample_every=max(1, steps),
        log_every=max(1, steps // 10),
        model_dir=os.path.join(workdir, "run"),
    )
    if not classifier_dir:
        classifier_dir = os.path.join(workdir, "classifier")
        evaluation.train_classifier(
            data, classifier_dir, "pitch", cfg.net.slice_len, seed=seed, log=log
        )
    model, info = classifier.load(classifier_dir)
    if condition != "none" and info.target != condition:
        raise UserError(
            f"--classifier={classifier_dir} predicts {info.target}, but a "
            f"--condition={condition} run is scored on {condition}; pass a "
            f"{condition} classifier (or none, to train one)"
        )
    refs = evaluation.load_references(info, data, condition, seed=seed, log=log)

    def score(generator) -> dict:
        return evaluation.score(
            lambda z, labels: generator(z, labels, training=False).numpy(),
            cfg.net.latent_dim,
            model,
            info,
            refs,
            n=generated,
            seed=seed,
        )

    # The untrained generator is the one the run starts from (same spec and seed).
    scored = score(build_generator(cfg.model_spec()))
    before, real = scored["generated"], scored["real_heldout"]
    log(f"untrained generator: Frechet distance {before['frechet_distance']:.2f}")
    strategy = strategies.make_strategy(cfg.strategy, cfg.tpu, cfg.cpu_replicas, log)
    started = time.perf_counter()
    run_training(cfg, strategy, log=log)
    seconds = time.perf_counter() - started
    generator, *_ = load_generator(cfg.model_dir)
    after = score(generator)["generated"]
    log(f"after {steps} steps: Frechet distance {after['frechet_distance']:.2f}")
    judged = {
        f"{key}_{name}": row[key]
        for key in pitch_judge.JUDGE_KEYS
        for name, row in (("untrained", before), ("trained", after), ("real", real))
    }
    return {
        **judged,
        "preset": preset,
        "steps": steps,
        "condition": condition,
        "train_seconds": seconds,
        "frechet_distance_untrained": before["frechet_distance"],
        "frechet_distance_trained": after["frechet_distance"],
        "trained_over_untrained": after["frechet_distance"] / before["frechet_distance"],
        "frechet_distance_real": real["frechet_distance"],
        "log_mel_frechet_distance_untrained": before["log_mel_frechet_distance"],
        "log_mel_frechet_distance_trained": after["log_mel_frechet_distance"],
        "log_mel_frechet_distance_real": real["log_mel_frechet_distance"],
        "log_mel_trained_over_untrained": (
            after["log_mel_frechet_distance"] / before["log_mel_frechet_distance"]
        ),
        **{
            f"{key}_{name}": row[key]
            for key in ("log_mel_mean_term", "log_mel_level_db")
            for name, row in (("untrained", before), ("trained", after), ("real", real))
        },
        "pitch_accuracy_untrained": before["pitch_accuracy"],
        "pitch_accuracy_trained": after["pitch_accuracy"],
        "inception_score_untrained": before["inception_score"],
        "inception_score_trained": after["inception_score"],
        "classifier_heldout_accuracy": info.heldout_accuracy,
        "heldout_notes": len(refs.heldout),
        "reference_train_notes": len(refs.train),
        "generated_clips": generated,
        "learning_rate": cfg.learning_rate,
        "workdir": workdir,
    }
