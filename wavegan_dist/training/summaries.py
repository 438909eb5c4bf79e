"""TensorBoard output of a run: scalars, audio, spectrogram images, the run's config.

Tags written (all under the run's model_dir):
  loss/critic, loss/generator, loss/gradient_penalty, loss/wasserstein (with
  --aux_classifier also loss/classifier_real and loss/classifier_fake),
  perf/examples_per_sec, audio/generated, audio/real, spectrogram/generated, config,
  the hparams plugin's run summary, and with --eval_every eval/<metric>.
The generated audio comes from the generator's EMA weights when the run keeps them.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from wavegan_dist.media.wav import write_wavs

LOSS_TAGS = {
    "critic": "loss/critic",
    "generator": "loss/generator",
    "gradient_penalty": "loss/gradient_penalty",
    "wasserstein": "loss/wasserstein",
}
# A run with --aux_classifier also has its classifier's cross-entropies.
AUX_TAGS = {
    "classifier_real": "loss/classifier_real",
    "classifier_fake": "loss/classifier_fake",
}


class RunSummaries:
    """Writes a run's TensorBoard events; a no-op writer on non-chief workers.

    Args:
      model_dir: events go in this folder.
      sample_rate: Hz, for audio summaries.
      enabled: False for workers that must not write (multi-worker non-chief).
    """

    def __init__(self, model_dir: str, sample_rate: int, enabled: bool = True):
        self.sample_rate = sample_rate
        self.writer = (
            tf.summary.create_file_writer(model_dir) if enabled else tf.summary.create_noop_writer()
        )

    def scalars(self, step: int, metrics: dict, examples_per_sec: float | None) -> None:
        """Writes the loss scalars (keys of LOSS_TAGS, and of AUX_TAGS that `metrics`
        has) and throughput at `step`."""
        with self.writer.as_default(step=step):
            for key, tag in LOSS_TAGS.items():
                tf.summary.scalar(tag, float(metrics[key]))
            for key in AUX_TAGS.keys() & metrics.keys():
                tf.summary.scalar(AUX_TAGS[key], float(metrics[key]))
            if examples_per_sec is not None:
                tf.summary.scalar("perf/examples_per_sec", examples_per_sec)

    def audio(
        self, step: int, generated: np.ndarray, real: np.ndarray, pitches: np.ndarray | None = None
    ) -> None:
        """Writes generated and real clips (float32 [K, T, 1]) and the generated
        spectrograms (media.grid's labelled panels; with `pitches`, int [K], each
        panel is titled and marked with its clip's requested MIDI pitch)."""
        from wavegan_dist.media.grid import spectrogram_grid
        from wavegan_dist.media.labels import describe

        titles = None if pitches is None else [describe("pitch", int(p)) for p in pitches]
        image = spectrogram_grid(generated, self.sample_rate, titles, pitches)
        with self.writer.as_default(step=step):
            tf.summary.audio(
                "audio/generated", generated, self.sample_rate, max_outputs=len(generated)
            )
            tf.summary.audio("audio/real", real, self.sample_rate, max_outputs=len(real))
            tf.summary.image("spectrogram/generated", image[None])

    def config(self, step: int, config: dict) -> None:
        """Records the run's configuration as a markdown table under the tag `config`, and
        as the hparams plugin's values for this run, so runs compare side by side."""
        from tensorboard.plugins.hparams import api as hp

        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(config.items()))
        # hparams values must be bool, number or string; lists and None become text.
        values = {
            k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in sorted(config.items())
        }
        with self.writer.as_default(step=step):
            tf.summary.text("config", f"| flag | value |\n|---|---|\n{rows}")
            hp.hparams(
                values,
                trial_id=os.path.basename(os.path.normpath(config.get("model_dir", "")) or "run"),
            )

    def evaluation(self, step: int, values: dict) -> None:
        """Writes evaluation metrics ({name: number or None}) as eval/<name> at `step`."""
        with self.writer.as_default(step=step):
            for name, value in values.items():
                if value is not None:
                    tf.summary.scalar(f"eval/{name}", float(value))

    def flush(self) -> None:
        """Flushes pending events to disk."""
        self.writer.flush()


class WavSnapshots:
    """WAV files of the generator at chosen steps, in <model_dir>/samples/step_NNNNNNN/,
    each step written at most once.

    Args:
      model_dir: the run's folder.
      generate: callable () -> float32 [K, T, 1] in [-1, 1], the current generator's clips
        (the same inputs every time, so folders compare over steps).
      sample_rate: Hz.
      enabled: False writes nothing (non-chief workers, --num_wavs=0).
      log: receives one line per folder written.
    """

    def __init__(self, model_dir: str, generate, sample_rate: int, enabled: bool = True, log=print):
        self.model_dir = model_dir
        self.generate = generate
        self.sample_rate = sample_rate
        self.enabled = enabled
        self.log = log
        self._last: tuple[int, list[str]] | None = None

    def write(self, step: int) -> list[str]:
        """Writes the clips of `step` (unless already written); returns their paths."""
        if not self.enabled:
            return []
        if self._last is None or self._last[0] != step:
            folder = os.path.join(self.model_dir, "samples", f"step_{step:07d}")
            self._last = (step, write_wavs(folder, self.generate(), self.sample_rate))
            self.log(f"wrote {len(self._last[1])} WAV files to {folder}")
        return self._last[1]
