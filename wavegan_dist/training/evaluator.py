"""Evaluation during training (--eval_every): score the generator, keep the best checkpoint.

The real reference sets are read once at the start; each evaluation generates
--eval_examples clips with the trainer's generator (replica 0; its moving average
when --generator_ema > 0, so the best checkpoint is the best EMA) and scores them
with the classifier (evaluation/run.py). The checkpoint with the lowest Frechet
distance so far is copied to <model_dir>/best with a best.json saying which.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from wavegan_dist.config import Config
from wavegan_dist.evaluation import classifier, run as evaluation

BEST_FOLDER = "best"
BEST_INFO = "best.json"


class TrainingEvaluator:
    """Scores a trainer's generator on the configured classifier and held-out split.

    Args:
      cfg: the run's Config (eval_classifier, eval_split, eval_examples, data, condition).
      log: one-line messages.

    Raises UserError if the data is not at the classifier's sample rate (load_references).
    """

    def __init__(self, cfg: Config, log=print):
        self.cfg = cfg
        self.model, self.info = classifier.load(cfg.eval_classifier)
        self.refs = evaluation.load_references(
            self.info,
            cfg.data,
            cfg.condition,
            cfg.eval_split,
            cfg.data_cache,
            seed=cfg.seed,
            log=log,
        )
        self.best = _read_best(cfg.model_dir)
        log(
            f"evaluation every {cfg.eval_every} steps: {self.info.target} classifier, "
            f"{len(self.refs.heldout)} {cfg.eval_split} notes, best Frechet distance so far "
            f"{'none' if self.best is None else round(self.best['frechet_distance'], 4)}"
        )

    def __call__(self, trainer) -> dict:
        """Returns the generated set's metrics ({name: number or None})."""
        result = evaluation.score(
            lambda z, labels: trainer.generate(z, labels).numpy(),
            self.cfg.net.latent_dim,
            self.model,
            self.info,
            self.refs,
            n=self.cfg.eval_examples,
            seed=self.cfg.seed,
        )
        return result["generated"]

    def keep_if_best(self, step: int, metrics: dict, checkpoint_path: str) -> bool:
        """Copies the checkpoint at `step` to <model_dir>/best if its Frechet distance is
        the lowest so far; returns whether it was."""
        fid = metrics["frechet_distance"]
        if self.best is not None and fid >= self.best["frechet_distance"]:
            return False
        folder = os.path.join(self.cfg.model_dir, BEST_FOLDER)
        tf.io.gfile.makedirs(folder)
        for old in tf.io.gfile.glob(os.path.join(folder, "ckpt-*")):
            tf.io.gfile.remove(old)
        name = os.path.basename(checkpoint_path)
        for part in tf.io.gfile.glob(checkpoint_path + ".*"):
            tf.io.gfile.copy(part, os.path.join(folder, os.path.basename(part)), overwrite=True)
        # A checkpoint state file (relative path, so the folder can move), so that
        # tf.train.latest_checkpoint and `generate --checkpoint=<model_dir>/best` find it.
        with tf.io.gfile.GFile(os.path.join(folder, "checkpoint"), "w") as f:
            f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
        self.best = {"step": step, "frechet_distance": fid, "checkpoint": name, "metrics": metrics}
        with tf.io.gfile.GFile(os.path.join(folder, BEST_INFO), "w") as f:
            f.write(json.dumps(self.best, indent=2))
        return True


def _read_best(model_dir: str) -> dict | None:
    path = os.path.join(model_dir, BEST_FOLDER, BEST_INFO)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())
