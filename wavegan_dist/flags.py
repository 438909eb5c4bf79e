"""The command-line flags of `python -m wavegan_dist.train`, and the one function that
turns them into a Config. No other module reads absl flags."""

from __future__ import annotations

from absl import flags

from wavegan_dist.config import (CONDITIONS, MODELS, PRECISIONS, PRESETS, SHUFFLES, STRATEGIES,
                                 UPSAMPLES, Config, make_config, recorded_defaults)
from wavegan_dist.errors import UserError
from wavegan_dist.kernels import KERNELS

_D = Config()  # paper defaults, shown in --help

flags.DEFINE_enum("preset", "paper", list(PRESETS),
                  "Named defaults: 'paper' (WaveGAN paper), 'tiny' (quick trials, ~1 min on 2 "
                  "CPU cores) or 'quick' (the tiny model with nearest-neighbour upsampling and "
                  "--n_critic=2, 5,000 steps, about 15-20 min on 2 CPU cores, for "
                  "--data=builtin-instruments). "
                  "Flags given explicitly override the preset.")
# Distribution.
flags.DEFINE_enum("strategy", _D.strategy, list(STRATEGIES),
                  "tf.distribute strategy: auto picks a TPU if reachable, else all GPUs if >= 2, "
                  "else --cpu_replicas logical CPUs if > 1, else one device.")
flags.DEFINE_string("tpu", _D.tpu, "Cloud TPU name or grpc://host:port (default: $TPU_NAME, or "
                    "the local TPU on a TPU VM).")
flags.DEFINE_integer("cpu_replicas", _D.cpu_replicas,
                     "Split the CPU into this many logical devices (mirrored/auto without GPUs).")
# Data.
flags.DEFINE_string("data", _D.data, "'builtin' (procedural NSynth-like set, built on first use), "
                    "'builtin-instruments' (sampled acoustic instrument notes, built on first "
                    "use), a deeplake dataset path (a folder with train/valid/test subfolders is "
                    "read at --split), or a folder written by `python -m wavegan_dist.prepare`.")
flags.DEFINE_enum("split", _D.split, ["train", "valid", "test"], "Dataset split.")
flags.DEFINE_string("data_cache", _D.data_cache, "Cache folder for the built-in datasets (default "
                    "$WAVEGAN_DIST_CACHE or ~/.cache/wavegan_dist).")
flags.DEFINE_integer("num_samples", _D.num_samples, "Train on the first N rows only (0 = all).")
flags.DEFINE_enum("subset", _D.subset, ["all", "gansynth"], "Named row subset: 'gansynth' is "
                  "acoustic instruments with pitch 24-84 (GANSynth's NSynth subset).")
flags.DEFINE_list("instrument_source", [], "Keep these instrument_source ids (0 acoustic, "
                  "1 electronic, 2 synthetic), e.g. 0 or 0,2.")
flags.DEFINE_list("instrument_family", [], "Keep these instrument_family ids (0 bass ... 10 vocal).")
flags.DEFINE_integer("pitch_min", None, "Keep notes with MIDI pitch >= this.")
flags.DEFINE_integer("pitch_max", None, "Keep notes with MIDI pitch <= this.")
flags.DEFINE_list("velocity", [], "Keep these velocities, e.g. 75,100.")
flags.DEFINE_enum("slice_offset", _D.slice_offset, ["start", "random"], "Which slice of each note: "
                  "its first slice_len samples, or a random window (seeded, per example).")
flags.DEFINE_enum("normalize", _D.normalize, ["none", "peak"], "Level of each example: as "
                  "stored (keeps velocity), or scaled so the note's peak is 1.")
flags.DEFINE_integer("read_rows", _D.read_rows, "Rows fetched from deeplake per read.")
flags.DEFINE_integer("shuffle_window", _D.shuffle_window, "Rows shuffled together after the "
                     "blocks are shuffled (--shuffle=blocks); part of the data order.")
flags.DEFINE_enum("shuffle", _D.shuffle, list(SHUFFLES), "Order of rows, new every epoch "
                  "(seeded): 'rows' is a full permutation; 'blocks' shuffles 64-row blocks, then "
                  "rows within each --shuffle_window (contiguous reads, 2-3x faster on large "
                  "datasets, less varied batches); 'none' keeps dataset order.")
# Model.
flags.DEFINE_enum("model", _D.model, list(MODELS), "Network family: 'wavegan' (1-D, the "
                  "paper's) or 'seed2d' (a small 2-D convolutional GAN on the slice laid out "
                  "as one square frame).")
flags.DEFINE_integer("slice_len", _D.slice_len, "Samples per example. wavegan: 16384, 32768, "
                     "65536 (or 16 * 4^k for small test models); seed2d: a square (16 * 2^k)^2, "
                     "e.g. 16384 = 128 x 128.")
flags.DEFINE_integer("dim", _D.dim, "Model width d.")
flags.DEFINE_integer("kernel_len", None, "Convolution kernel length (default 25 for wavegan, "
                     "4 (4x4) for seed2d).")
flags.DEFINE_integer("latent_dim", _D.latent_dim, "Size of z.")
flags.DEFINE_integer("phase_shuffle", None, "Critic phase-shuffle radius, 0 = off (default 2 "
                     "for wavegan; seed2d has none).")
flags.DEFINE_integer("phase_shuffle_layers", _D.phase_shuffle_layers, "wavegan: phase shuffle "
                     "after this many critic layers from the waveform end, never after the "
                     "last (the authors' code: 4 at every slice length). A run started "
                     "before this flag existed keeps all but the last unless it is given.")
flags.DEFINE_enum("upsample", _D.upsample, list(UPSAMPLES), "wavegan generator upsampling: "
                  "'zeros' (transposed convolution) or 'nn' (nearest-neighbour repeat, then a "
                  "convolution).")
flags.DEFINE_bool("post_filter", _D.post_filter, "wavegan: a learned 512-tap filter (no bias) "
                  "after the generator's output.")
flags.DEFINE_bool("gen_batchnorm", _D.gen_batchnorm, "wavegan: batch norm in the generator "
                  "(statistics over the global batch, across replicas).")
flags.DEFINE_enum("condition", _D.condition, list(CONDITIONS), "Make both networks conditional "
                  "on this label: the generator takes it with z, the critic through a "
                  "projection. Rows without the label are left out.")
# Optimisation.
flags.DEFINE_integer("batch_size", _D.batch_size, "Global batch size, over all replicas.")
flags.DEFINE_integer("n_critic", _D.n_critic, "Critic updates per generator update.")
flags.DEFINE_float("gp_weight", _D.gp_weight, "Gradient penalty weight lambda.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Adam learning rate (both networks).")
flags.DEFINE_float("beta1", _D.beta1, "Adam beta1.")
flags.DEFINE_float("beta2", _D.beta2, "Adam beta2.")
flags.DEFINE_float("adam_epsilon", _D.adam_epsilon, "Adam epsilon, both networks (the authors' "
                   "tf.train.AdamOptimizer's). A run started before this flag existed keeps "
                   "Keras's 1e-7 unless it is given.")
flags.DEFINE_integer("train_steps", _D.train_steps, "Total generator steps (a resumed run "
                     "continues up to this).")
flags.DEFINE_integer("seed", _D.seed, "Seed for weights, data order and noise.")
flags.DEFINE_bool("jit_compile", _D.jit_compile, "Compile with XLA: the whole step on one "
                  "device; each replica's forward and backward pass on several mirrored "
                  "replicas, Adam and its all-reduce running outside (a TPU compiles the "
                  "whole step anyway). With --gen_batchnorm: one replica or a TPU only.")
flags.DEFINE_enum("precision", _D.precision, list(PRECISIONS), "'bf16': mixed precision "
                  "(bfloat16 compute, float32 weights and losses; TPU and recent GPUs); 'fp32' "
                  "everywhere otherwise.")
flags.DEFINE_enum("kernels", _D.kernels, list(KERNELS), "'fast': WaveGAN's strided "
                  "convolutions as polyphase stride-1 convolutions and matmuls, the critic's "
                  "LeakyReLU without its all-zero second-order path, and Adam as one fused "
                  "kernel per variable (measured faster on CPU only); 'reference': Keras's own "
                  "layers, LeakyReLU and Adam; 'auto': fast on CPU, reference on GPU and TPU. "
                  "The same mathematics: checkpoints are interchangeable.")
flags.DEFINE_integer("steps_per_loop", _D.steps_per_loop, "Generator steps per host call, run "
                     "in one compiled loop, one strategy.run per step (cuts host overhead on "
                     "TPU/GPU); logged scalars stay exact per step.")
flags.DEFINE_float("generator_ema", _D.generator_ema, "Decay of the exponential moving average "
                   "of the generator's weights, which draws all audio (samples, --eval_every, "
                   "generate, evaluate, export); 0 = off. It averages about 1 / (1 - decay) "
                   "steps, after a warm-up: 0.999 (~1,000 steps) suits the paper's 200k-step "
                   "runs; the tiny preset uses 0.995 (~200 steps), short enough to follow a "
                   "few-thousand-step run at its higher learning rate.")
# Faults.
flags.DEFINE_enum("on_nan", _D.on_nan, ["stop", "rollback"], "When a loss is NaN/Inf: 'stop' "
                  "(error, last checkpoint intact) or 'rollback' (restore the last checkpoint "
                  "and continue with a fresh noise seed, up to --max_rollbacks times).")
flags.DEFINE_integer("max_rollbacks", _D.max_rollbacks, "Rollbacks allowed in one run "
                     "(--on_nan=rollback) before it stops.")
flags.DEFINE_integer("debug_nan_at_step", _D.debug_nan_at_step, "Testing aid: make the "
                     "generator loss NaN at this step (once, with the run's own seed), to "
                     "exercise --on_nan. 0 = off.")
flags.DEFINE_enum("preemption_watch", _D.preemption_watch, ["auto", "on", "off"], "Watch "
                  "the Google Cloud metadata server for a preemption or host-maintenance "
                  "notice and checkpoint and stop as on SIGTERM: 'auto' on a Google Cloud VM "
                  "(GCE_METADATA_IP set, or the DMI product name says Google) whose server "
                  "answers within 1 s; 'on' always (error if no server answers); 'off'.")
# Outputs.
flags.DEFINE_string("model_dir", _D.model_dir, "Folder for checkpoints, TensorBoard events and "
                    "samples; an existing run there is resumed.")
flags.DEFINE_string("resume_from", _D.resume_from, "Continue from this checkpoint instead of "
                    "the newest: ckpt-N (in MODEL_DIR/checkpoints) or a checkpoint path prefix. "
                    "Newer checkpoints of the run are moved to MODEL_DIR/checkpoints/"
                    "set_aside-<time>/, not deleted.")
flags.DEFINE_integer("ckpt_every", _D.ckpt_every, "Checkpoint every N steps (and at the end).")
flags.DEFINE_integer("keep_checkpoints", _D.keep_checkpoints, "Checkpoints kept.")
flags.DEFINE_integer("log_every", _D.log_every, "Console and scalar summaries every N steps.")
flags.DEFINE_integer("sample_every", _D.sample_every,
                     "Audio and spectrogram summaries, and WAV files, every N steps.")
flags.DEFINE_integer("num_wavs", _D.num_wavs,
                     "WAV files written every --sample_every steps and at the end (0 = none).")

# Evaluation during training.
flags.DEFINE_integer("eval_every", _D.eval_every, "Score the generator every N steps (0 = off): "
                     "Inception Score, Frechet distance, pitch accuracy/entropy, NDB under "
                     "eval/ in TensorBoard; the best Frechet distance's checkpoint is kept in "
                     "MODEL_DIR/best.")
flags.DEFINE_string("eval_classifier", _D.eval_classifier, "Classifier folder for --eval_every "
                    "(python -m wavegan_dist.evaluate train-classifier).")
flags.DEFINE_enum("eval_split", _D.eval_split, ["train", "valid", "test"], "Held-out split the "
                  "evaluation scores against.")
flags.DEFINE_integer("eval_examples", _D.eval_examples, "Generated examples per evaluation "
                     "(0 = as many as held-out notes).")

FLAGS = flags.FLAGS
_CONFIG_FIELDS = [name for name in Config.__dataclass_fields__]
_INT_LISTS = ("instrument_source", "instrument_family", "velocity")


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> Config:
    """Builds the run's Config: the preset's values, then every flag the user set explicitly.

    Resuming a run recorded before a field existed, the field takes the value that run
    trained with unless its flag is given (config.recorded_defaults).

    Args:
      flag_values: parsed absl flags.
    Returns:
      A validated Config (raises UserError on a bad value).
    """
    overrides = {name: flag_values[name].value for name in _CONFIG_FIELDS
                 if flag_values[name].present}
    for name in _INT_LISTS:
        if name in overrides:
            try:
                overrides[name] = tuple(int(v) for v in overrides[name])
            except ValueError as err:
                raise UserError(f"--{name} takes comma-separated integers, got "
                                f"{','.join(overrides[name])}") from err
    if flag_values.model_dir:
        from wavegan_dist.training.checkpoints import recorded_config  # imports TensorFlow

        recorded = recorded_config(flag_values.model_dir)
        if recorded is not None:
            overrides = {**recorded_defaults(recorded), **overrides}
    return make_config(flag_values.preset, **overrides)
