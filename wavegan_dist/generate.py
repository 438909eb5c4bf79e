"""`python -m wavegan_dist.generate`: audio from a trained run, and/or its generator as a SavedModel.

Examples:
  python -m wavegan_dist.generate --model_dir=runs/tiny --n=16 --out=samples
  python -m wavegan_dist.generate --model_dir=runs/pitch --n=8 --pitch=60 --seed=3 --out=c4
  python -m wavegan_dist.generate --model_dir=runs/pitch --n=4 --pitch=36:84:6 --out=scale
  python -m wavegan_dist.generate --model_dir=runs/tiny --export=exported/tiny

--out gets n mono 16-bit WAV files (generated_*.wav) at the run's sample rate and
spectrograms.png, their spectrograms labelled in Hz and seconds. A conditional run
takes one label, a comma list or an inclusive range (--pitch=36:84:6 is 36, 42, ...,
84): n clips per label, from the same n latent vectors, named by label
(generated_pitch036_00.wav ...), one row of the image per label with the requested
pitch marked; all in one process. --export gets a TF SavedModel whose
`serving_default` signature maps z (float32 [batch, latent_dim]) and, for a conditional
run, label (int32 [batch]) to audio (float32 [batch, slice_len]); it loads without
wavegan_dist. Nothing that already exists is overwritten.
"""

# This command defines its own flags and must not import wavegan_dist.flags (the
# training flags): absl flags are process-global and both define --model_dir.

from wavegan_dist import cli  # noqa: F401  (sets TF log level before TensorFlow loads)

import fnmatch
import os

from absl import app, flags, logging

from wavegan_dist.inference.restore import WEIGHTS, WEIGHTS_HELP

flags.DEFINE_string("model_dir", None, "Folder of the training run (its --model_dir).")
flags.DEFINE_string(
    "checkpoint",
    None,
    "Checkpoint path prefix to restore, e.g. DIR/checkpoints/ckpt-4 (default: the run's newest).",
)
flags.DEFINE_enum("weights", None, list(WEIGHTS), WEIGHTS_HELP)
flags.DEFINE_integer("n", 16, "Number of clips to generate.")
flags.DEFINE_string(
    "pitch",
    None,
    "MIDI pitch(es) 0-127 of the clips (runs trained with "
    "--condition=pitch): one (60), a comma list (48,60,72) or a range "
    "start:stop:step whose stop is included, as in '36 to 84' (36:84:6 is 36, "
    "42, ..., 84; the step defaults to 1). --n clips per pitch, all in one "
    "process; only pitches the run trained on.",
)
flags.DEFINE_string(
    "instrument_family",
    None,
    "Instrument family(ies) 0-10 (0 bass ... 10 "
    "vocal) of the clips (runs trained with --condition=instrument_family): "
    "one, a comma list or a range start:stop:step, as --pitch.",
)
flags.DEFINE_string(
    "out", None, "Folder for the WAV files and spectrograms.png (new or without earlier outputs)."
)
flags.DEFINE_integer("seed", 0, "Seed of the latent vectors: the same seed gives the same clips.")
flags.DEFINE_string(
    "export", None, "Write the generator as a TF SavedModel to this new or empty folder."
)

FLAGS = flags.FLAGS

WAV_PREFIX = "generated"  # media.wav.write_wavs names files <prefix>_<index>.wav
SPECTROGRAM_FILE = "spectrograms.png"
LABEL_FLAGS = ("pitch", "instrument_family")
# File-name part of each condition's label: generated_pitch060_00.wav, generated_family03_00.wav.
LABEL_FILE_PART = {"pitch": ("pitch", 3), "instrument_family": ("family", 2)}


def parse_label_flag(name: str, text: str) -> list[int]:
    """The labels a label flag (a LABEL_FLAGS entry) asks for; UserError if malformed
    or outside the condition's labels (MIDI pitch 0-127, family 0-10)."""
    from wavegan_dist.data.schema import LABEL_CLASSES
    from wavegan_dist.media.labels import parse_labels

    return parse_labels(name, text, 0, LABEL_CLASSES[name] - 1)


def choose_label(condition: str, given: dict, model_dir: str, writes_audio: bool):
    """Picks the labels of the generated clips from the label flags the user gave.

    Args:
      condition: the run's condition ("none", "pitch", "instrument_family").
      given: {flag name: [labels]} of the label flags given (already parsed).
      model_dir: the run's folder, for messages.
      writes_audio: False when only exporting (an export takes labels as input).
    Returns:
      The labels (list of int, n clips each), or None for an unconditional run or an
      export only. Raises UserError if the flags do not fit the run.
    """
    from wavegan_dist.data.schema import LABEL_CLASSES
    from wavegan_dist.errors import UserError
    from wavegan_dist.media.labels import LABEL_MEANING

    if len(given) > 1:
        raise UserError("pass one label flag, not both --pitch and --instrument_family")
    name = next(iter(given), None)
    if name and condition == "none":
        raise UserError(
            f"--{name} is for conditional runs, but the run in {model_dir} is "
            "unconditional (trained with --condition=none)"
        )
    if name and not writes_audio:
        raise UserError(
            f"--{name} sets the label of the clips written to --out; an --export "
            f"takes the label as an input, so leave --{name} out or add --out"
        )
    if condition == "none" or not writes_audio:
        return None
    wanted = (
        f"--{condition}=N ({LABEL_MEANING[condition]} 0-{LABEL_CLASSES[condition] - 1}), "
        "a list N,M or a range start:stop:step"
    )
    if name is None:
        raise UserError(f"the run in {model_dir} is conditioned on {condition}: pass {wanted}")
    if name != condition:
        raise UserError(
            f"the run in {model_dir} is conditioned on {condition}, not {name}: "
            f"pass {wanted} instead of --{name}"
        )
    return given[name]


def check_trained(
    condition: str, labels: list[int], trained: list[int] | None, cfg, model_dir: str
) -> list[str]:
    """Refuses labels outside those the run trained on.

    Args:
      condition: the run's condition; labels: the labels asked for.
      trained: the labels the run recorded training on (restore.trained_labels), or
        None for a run recorded before they were: then only a pitch range the run
        was filtered to (--pitch_min/--pitch_max) is checked.
      cfg: the run's Config; model_dir: its folder, for messages.
    Returns:
      One-line notes for labels inside the trained range that had no training notes.
      Raises UserError for a label outside the trained range: the networks never saw
      its one-hot input, so its clips would say nothing about the run.
    """
    from wavegan_dist.errors import UserError
    from wavegan_dist.media.labels import LABEL_MEANING

    if trained:
        low, high, origin = trained[0], trained[-1], "trained on"
    elif condition == "pitch" and (cfg.pitch_min is not None or cfg.pitch_max is not None):
        low, high = cfg.pitch_min or 0, 127 if cfg.pitch_max is None else cfg.pitch_max
        origin = "was filtered to by --pitch_min/--pitch_max"
    else:
        return []
    outside = [label for label in labels if not low <= label <= high]
    if outside:
        shown = ",".join(map(str, outside[:5])) + (",..." if len(outside) > 5 else "")
        raise UserError(
            f"--{condition}={shown} is outside the {LABEL_MEANING[condition]} range "
            f"the run in {model_dir} {origin} ({low}-{high}); pass values in "
            f"{low}-{high}"
        )
    unseen = [label for label in labels if trained and label not in trained]
    return (
        [
            f"note: {LABEL_MEANING[condition]} {', '.join(map(str, unseen))} had no training "
            "notes in this run (inside its range, so generated anyway)"
        ]
        if unseen
        else []
    )


def check_out_dir(out: str) -> None:
    """Raises UserError if `out` is a file, cannot be written or created, or already
    holds files this command writes."""
    from wavegan_dist import inference
    from wavegan_dist.errors import UserError
    from wavegan_dist.paths import check_output_folder

    if inference.path_exists(out) and not inference.is_folder(out):
        raise UserError(f"--out={out} is a file; pass a new or empty folder")
    check_output_folder("--out", out)
    if not inference.path_exists(out):
        return
    # Any earlier set of clips is refused, not only the names this n would write:
    # mixing two sets in one folder would pass one off as the other.
    ours = [name for name in inference.list_folder(out) if _is_output(name)]
    if ours:
        shown = ", ".join(ours[:3]) + (f" and {len(ours) - 3} more" if len(ours) > 3 else "")
        raise UserError(
            f"--out={out} already holds {shown}; nothing is overwritten: pass a new "
            "or empty folder, or move those files away"
        )


def _is_output(name: str) -> bool:
    """True for the names of the files this command writes into --out."""
    return fnmatch.fnmatch(name, f"{WAV_PREFIX}_*.wav") or name == SPECTROGRAM_FILE


def _remove_outputs(out: str) -> None:
    """Removes this command's files from `out` after a failed write (check_out_dir made
    sure none were there before, so they are all this run's)."""
    import tensorflow as tf

    from wavegan_dist import inference

    for name in inference.list_folder(out) if inference.is_folder(out) else []:
        if _is_output(name):
            tf.io.gfile.remove(os.path.join(out, name))


def main(argv: list[str]) -> None:
    """absl entry point: check the flags, restore the run's generator, write what was asked."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) > 1:
            raise UserError(
                f"unexpected arguments {' '.join(argv[1:])}; flags look like --name=value"
            )
        model_dir, out, export = FLAGS.model_dir, FLAGS.out, FLAGS.export
        # Everything that needs no TensorFlow is checked first, so bad input fails at once.
        if not model_dir:
            raise UserError("--model_dir is required: the folder of a training run")
        if not out and not export:
            raise UserError(
                "nothing to do: pass --out=FOLDER for WAV files, --export=FOLDER "
                "for a SavedModel, or both"
            )
        if FLAGS.n < 1:
            raise UserError(f"--n must be >= 1, got {FLAGS.n}")
        if FLAGS.seed < 0:
            raise UserError(f"--seed must be >= 0, got {FLAGS.seed}")
        given = {
            name: parse_label_flag(name, getattr(FLAGS, name))
            for name in LABEL_FLAGS
            if getattr(FLAGS, name) is not None
        }
        if out and export and os.path.abspath(out) == os.path.abspath(export):
            raise UserError("--out and --export must be different folders")
        if out:
            check_out_dir(out)
        if export:
            from wavegan_dist.inference.export import check_export_dir
            from wavegan_dist.paths import check_output_folder

            check_export_dir(export)
            check_output_folder("--export", export)
        from wavegan_dist.inference.restore import read_run_config, trained_labels

        cfg, _, _ = read_run_config(model_dir)
        labels = choose_label(cfg.condition, given, model_dir, writes_audio=bool(out))
        notes = (
            []
            if labels is None
            else check_trained(cfg.condition, labels, trained_labels(model_dir), cfg, model_dir)
        )

        import tensorflow as tf

        from wavegan_dist.inference import restore

        generator, cfg, sample_rate, step, weights = restore.load_generator(
            model_dir, FLAGS.checkpoint, log=_print, weights=FLAGS.weights
        )
        _print(
            f"run {model_dir}: {cfg.net.model} generator, {cfg.net.slice_len} samples at "
            f"{sample_rate} Hz, z of {cfg.net.latent_dim}, condition {cfg.condition}, step {step}"
        )
        for note in notes:
            _print(note)
        done = []
        if out:
            try:
                done.append(
                    _write_clips(generator, cfg, sample_rate, out, FLAGS.n, FLAGS.seed, labels)
                )
            except (OSError, tf.errors.OpError) as err:  # e.g. the disk filled up
                from wavegan_dist.run_folder.checkpoint_files import os_reason

                _remove_outputs(out)
                raise UserError(
                    f"cannot write to --out={out}: {os_reason(err)}; the files "
                    "written so far were removed; free space, then run the same "
                    "command again"
                ) from err
        if export:
            from wavegan_dist.inference.export import export_generator

            export_generator(generator, cfg, sample_rate, export)
            inputs = f"z float32 [None, {cfg.net.latent_dim}]"
            if cfg.condition != "none":
                inputs += f", label int32 [None] ({cfg.condition})"
            _print(
                f"wrote SavedModel {export} (serving_default: {inputs} -> audio float32 "
                f"[None, {cfg.net.slice_len}])"
            )
            done.append(f"1 SavedModel in {export}")
        what = f"step {step}, {weights} weights" + (f", seed {FLAGS.seed}" if out else "")
        if labels is not None:
            what += f", {cfg.condition} {', '.join(map(str, labels))}"
        _print(f"done: {'; '.join(done)} ({what})")

    logging.set_verbosity(logging.WARNING)
    cli.run_or_exit(run)


def _print(message: str) -> None:
    print(message, flush=True)


def _write_clips(
    generator, cfg, sample_rate: int, out: str, n: int, seed: int, labels: list[int] | None
) -> str:
    """Generates n clips per label (the same n latent vectors for every label) into
    `out`: WAVs named by label and one spectrogram image; returns a summary phrase.

    Args:
      labels: the labels of a conditional run, or None (unconditional).
    """
    import numpy as np

    from wavegan_dist.inference import restore
    from wavegan_dist.media import grid
    from wavegan_dist.media.labels import describe
    from wavegan_dist.media.wav import write_wavs

    z = restore.latent_vectors(n, cfg.net.latent_dim, seed)
    waves, titles, count = [], [], 0
    for label in labels if labels is not None else [None]:
        prefix, what = WAV_PREFIX, ""
        if label is not None:
            part, digits = LABEL_FILE_PART[cfg.condition]
            prefix, what = (
                f"{WAV_PREFIX}_{part}{label:0{digits}d}",
                f" for {describe(cfg.condition, label)}",
            )
        batch = restore.generate_waves(
            generator, z, None if label is None else np.full([n], label, np.int32)
        )  # [n, slice_len, 1]
        paths = write_wavs(out, batch, sample_rate, prefix=prefix)
        count += len(paths)
        shown = paths[0] if len(paths) == 1 else f"{paths[0]} ... {os.path.basename(paths[-1])}"
        _print(f"wrote {len(paths)} WAV file{'s' if len(paths) > 1 else ''}{what}: {shown}")
        waves.append(batch)
        titles += [
            f"clip {i + 1}" + ("" if label is None else f": {describe(cfg.condition, label)}")
            for i in range(n)
        ]
    pitches = (
        np.repeat(labels, n).tolist() if cfg.condition == "pitch" and labels is not None else None
    )
    # One row per label when there are several, so a row reads as one pitch.
    cols = n if labels is not None and len(labels) > 1 and n > 1 else None
    image = grid.spectrogram_grid(np.concatenate(waves), sample_rate, titles, pitches, cols)
    png = os.path.join(out, SPECTROGRAM_FILE)
    grid.write_png(png, image)
    rows, cols = (len(labels), n) if cols else grid.grid_shape(count)
    _print(
        f"wrote {png} ({rows} x {cols} spectrograms of {grid.PANEL_W} x {grid.PANEL_H} pixels, "
        f"{image.shape[1]} x {image.shape[0]} pixels in all)"
    )
    return f"{count} WAV files and 1 spectrogram image in {out}"


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags_or_exit)
