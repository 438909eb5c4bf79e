"""The one configuration object of a training run, and its named presets.

Every field is declared once, here or (the networks' fields) in models/spec.py, with
its default, its flag's help text, its choices and what changing it on a resume
means (wavegan_dist/options.py). flags.py makes the command-line flags from these
declarations and is the only place that reads them; library code takes a Config (or
plain arguments from it). Field names are the flag names, also for the networks'
fields nested in `Config.net`: make_config, Config.replace and config.json use them
flat.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from wavegan_dist.data.names import LABEL_CLASSES, SHUFFLES, SPLITS
from wavegan_dist.errors import UserError
from wavegan_dist.kernels import KERNELS, local_device_type, resolve_kernels
from wavegan_dist.models import registry
from wavegan_dist.models.shapes import layer_strides
from wavegan_dist.models.spec import ModelSpec
from wavegan_dist.options import ORDER, REFUSE, flag_fields, option

STRATEGIES = ("auto", "mirrored", "multiworker", "tpu", "cpu")
PRECISIONS = ("fp32", "bf16")
CONDITIONS = ("none", *LABEL_CLASSES)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a training run needs. Defaults are the WaveGAN paper's."""

    # Distribution.
    strategy: str = option(
        "auto",
        "tf.distribute strategy: auto picks a TPU if reachable, else all GPUs if >= 2, "
        "else --cpu_replicas logical CPUs if > 1, else one device.",
        choices=STRATEGIES,
    )
    tpu: str = option(
        "", "Cloud TPU name or grpc://host:port (default: $TPU_NAME, or the local TPU on a TPU VM)."
    )
    cpu_replicas: int = option(
        1, "Split the CPU into this many logical devices (mirrored/auto without GPUs)."
    )

    # Data.
    data: str = option(
        "builtin",
        "'builtin' (procedural NSynth-like set, built on first use), "
        "'builtin-instruments' (sampled acoustic instrument notes, built on first use), a "
        "deeplake dataset path (a folder with train/valid/test subfolders is read at "
        "--split), or a folder written by `python -m wavegan_dist.prepare`.",
        on_resume=ORDER,
    )
    split: str = option("train", "Dataset split.", choices=SPLITS, on_resume=ORDER)
    data_cache: str = option(
        "",
        "Cache folder for the built-in datasets (default "
        "$WAVEGAN_DIST_CACHE or ~/.cache/wavegan_dist).",
    )
    num_samples: int = option(0, "Train on the first N rows only (0 = all).", on_resume=ORDER)
    subset: str = option(
        "all",
        "Named row subset: 'gansynth' is acoustic instruments with "
        "pitch 24-84 (GANSynth's NSynth subset).",
        choices=("all", "gansynth"),
        on_resume=ORDER,
    )
    instrument_source: tuple[int, ...] = option(
        (),
        "Keep these instrument_source ids (0 acoustic, 1 electronic, 2 synthetic), e.g. 0 or 0,2.",
        on_resume=ORDER,
    )
    instrument_family: tuple[int, ...] = option(
        (), "Keep these instrument_family ids (0 bass ... 10 vocal).", on_resume=ORDER
    )
    pitch_min: int | None = option(None, "Keep notes with MIDI pitch >= this.", on_resume=ORDER)
    pitch_max: int | None = option(None, "Keep notes with MIDI pitch <= this.", on_resume=ORDER)
    velocity: tuple[int, ...] = option((), "Keep these velocities, e.g. 75,100.", on_resume=ORDER)
    slice_offset: str = option(
        "start",
        "Which slice of each note: its first slice_len samples, or a random window "
        "(seeded, per example).",
        choices=("start", "random"),
        on_resume=ORDER,
    )
    normalize: str = option(
        "none",
        "Level of each example: as stored (keeps velocity), or scaled so the note's peak is 1.",
        choices=("none", "peak"),
        on_resume=ORDER,
    )
    read_rows: int = option(1024, "Rows fetched from deeplake per read (speed only).")
    shuffle: str = option(
        "rows",
        "Order of rows, new every epoch (seeded): 'rows' is a full permutation; "
        "'blocks' shuffles 64-row blocks, then rows within each --shuffle_window (contiguous "
        "reads, 2-3x faster on large datasets, less varied batches); 'none' keeps dataset "
        "order.",
        choices=SHUFFLES,
        on_resume=ORDER,
    )
    shuffle_window: int = option(
        1024,
        "Rows shuffled together after the blocks are shuffled "
        "(--shuffle=blocks); part of the data order.",
        on_resume=ORDER,
    )

    # The networks: their flags are declared in models/spec.py.
    net: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    condition: str = option(
        "none",
        "Make both networks conditional on this label: the generator takes it with "
        "z, the critic through a projection. Rows without the label are left out.",
        choices=CONDITIONS,
        on_resume=REFUSE,
    )

    # Optimisation.
    batch_size: int = option(64, "Global batch size, over all replicas.", on_resume=ORDER)
    n_critic: int = option(5, "Critic updates per generator update.", on_resume=ORDER)
    gp_weight: float = option(
        10.0,
        "Gradient penalty weight lambda.",
        on_resume=("the critic's gradient penalty uses the new weight from the resumed step on"),
    )
    aux_weight: float = option(
        10.0,
        "With --aux_classifier: weight of the auxiliary classifier's cross-entropy, added to "
        "the critic's loss on real clips and to the generator's on its own (GANSynth's 10).",
        on_resume="the auxiliary classifier's losses use the new weight from the resumed step on",
    )
    learning_rate: float = option(
        1e-4,
        "Adam learning rate (both networks).",
        on_resume=(
            "both optimizers use the new learning rate from the resumed step on (Adam's moment "
            "estimates are kept)"
        ),
    )
    beta1: float = option(
        0.5,
        "Adam beta1.",
        on_resume=(
            "Adam's first-moment decay takes the new value from the resumed step on (the moment "
            "estimates are kept)"
        ),
    )
    beta2: float = option(
        0.9,
        "Adam beta2.",
        on_resume=(
            "Adam's second-moment decay takes the new value from the resumed step on (the "
            "moment estimates are kept)"
        ),
    )
    adam_epsilon: float = option(
        1e-8,
        "Adam epsilon, both networks (the authors' tf.train.AdamOptimizer's). A run "
        "started before this flag existed keeps Keras's 1e-7 unless it is given.",
        on_resume=(
            "both optimizers use the new epsilon from the resumed step on (Adam's moment "
            "estimates are kept)"
        ),
    )
    train_steps: int = option(
        200_000, "Total generator steps (a resumed run continues up to this)."
    )
    seed: int = option(0, "Seed for weights, data order and noise.", on_resume=ORDER)
    jit_compile: bool = option(
        False,
        "Compile with XLA: the whole step on one device; each replica's forward and "
        "backward pass on several mirrored replicas, Adam and its all-reduce running outside "
        "(a TPU compiles the whole step anyway). With --gen_batchnorm: one replica or a TPU "
        "only.",
        on_resume="the step is compiled the other way from now on; results differ in rounding only",
    )
    precision: str = option(
        "fp32",
        "'bf16': mixed precision (bfloat16 compute, float32 weights and losses; TPU "
        "and recent GPUs); 'fp32' everywhere otherwise.",
        choices=PRECISIONS,
        on_resume=ORDER,
    )
    kernels: str = option(
        "auto",
        "'fast': WaveGAN's strided convolutions as polyphase stride-1 convolutions and "
        "matmuls, the critic's LeakyReLU without its all-zero second-order path, and Adam as "
        "one fused kernel per variable (measured faster on CPU only); 'reference': Keras's "
        "own layers, LeakyReLU and Adam; 'auto': fast on CPU, reference on GPU and TPU. The "
        "same mathematics: checkpoints are interchangeable.",
        choices=KERNELS,
        on_resume=(
            "the networks and Adam run on the kernels it picks from now on; results differ "
            "in rounding only"
        ),
    )
    steps_per_loop: int = option(
        1,
        "Generator steps per host call, run in one compiled loop, one strategy.run per "
        "step (cuts host overhead on TPU/GPU); logged scalars stay exact per step.",
    )
    generator_ema: float = option(
        0.999,
        "Decay of the exponential moving average of the generator's weights, which "
        "draws all audio (samples, --eval_every, generate, evaluate, export); 0 = off. It "
        "averages about 1 / (1 - decay) steps, after a warm-up: 0.999 (~1,000 steps) suits "
        "the paper's 200k-step runs; the tiny preset uses 0.995 (~200 steps), short enough "
        "to follow a few-thousand-step run at its higher learning rate.",
        on_resume=(
            "the generator's moving average goes on from its saved weights with the new decay "
            "(0 stops keeping it: samples and later checkpoints then use the generator's own "
            "weights)"
        ),
    )

    # Faults.
    on_nan: str = option(
        "stop",
        "When a loss is NaN/Inf: 'stop' (error, last checkpoint intact) or 'rollback' "
        "(restore the last checkpoint and continue with a fresh noise seed, up to "
        "--max_rollbacks times).",
        choices=("stop", "rollback"),
    )
    max_rollbacks: int = option(
        3, "Rollbacks allowed in one run (--on_nan=rollback) before it stops."
    )
    debug_nan_at_step: int = option(
        0,
        "Testing aid: make the generator loss NaN at this step (once, with the run's own "
        "seed), to exercise --on_nan. 0 = off.",
    )
    preemption_watch: str = option(
        "auto",
        "Watch the Google Cloud metadata server for a preemption or host-maintenance "
        "notice and checkpoint and stop as on SIGTERM: 'auto' on a Google Cloud VM "
        "(GCE_METADATA_IP set, or the DMI product name says Google) whose server answers "
        "within 1 s; 'on' always (error if no server answers); 'off'.",
        choices=("auto", "on", "off"),
    )

    # Outputs.
    model_dir: str = option(
        "",
        "Folder for checkpoints, TensorBoard events and samples; an existing run there is resumed.",
    )
    resume_from: str = option(
        "",
        "Continue from this checkpoint instead of the newest: ckpt-N (in "
        "MODEL_DIR/checkpoints) or a checkpoint path prefix. Newer checkpoints of the run "
        "are moved to MODEL_DIR/checkpoints/set_aside-<time>/, not deleted.",
    )
    ckpt_every: int = option(1000, "Checkpoint every N steps (and at the end).")
    keep_checkpoints: int = option(3, "Checkpoints kept.")
    log_every: int = option(100, "Console and scalar summaries every N steps.")
    sample_every: int = option(
        1000, "Audio and spectrogram summaries, and WAV files, every N steps."
    )
    num_wavs: int = option(
        4, "WAV files written every --sample_every steps and at the end (0 = none)."
    )

    # Evaluation during training.
    eval_every: int = option(
        0,
        "Score the generator every N steps (0 = off): Inception Score, Frechet distance, "
        "pitch accuracy/entropy, NDB under eval/ in TensorBoard; the best Frechet distance's "
        "checkpoint is kept in MODEL_DIR/best.",
    )
    eval_classifier: str = option(
        "", "Classifier folder for --eval_every (python -m wavegan_dist.evaluate train-classifier)."
    )
    eval_split: str = option(
        "valid", "Held-out split the evaluation scores against.", choices=SPLITS
    )
    eval_examples: int = option(
        0, "Generated examples per evaluation (0 = as many as held-out notes)."
    )

    def __post_init__(self):
        # The networks' derived fields follow the run's own, and fields left None take
        # the family's defaults, however the Config was made (flags, make_config,
        # replace, from_dict).
        net = dataclasses.replace(
            self.net,
            num_classes=LABEL_CLASSES.get(self.condition, 0),
            seed=self.seed,
            precision=self.precision,
            kernels=self.kernels,
        )
        object.__setattr__(self, "net", registry.complete(net))

    @classmethod
    def flag_fields(cls) -> list[dataclasses.Field]:
        """Every field that is a flag, the networks' in the place of `net`."""
        out = []
        for f in dataclasses.fields(cls):
            out.extend(flag_fields(ModelSpec) if f.name == "net" else [f])
        return out

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> "Config":
        """Builds a Config (not yet validated) from {flag name: value}.

        Raises UserError naming any key that is not a flag field.
        """
        names = {f.name for f in cls.flag_fields()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"unknown config field(s): {', '.join(unknown)}")
        net_names = {f.name for f in flag_fields(ModelSpec)}
        net = ModelSpec(**{k: v for k, v in values.items() if k in net_names})
        return cls(net=net, **{k: v for k, v in values.items() if k not in net_names})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        """Rebuilds a Config from to_dict()'s output (e.g. a run's config.json).

        Keys that are not Config fields (extra facts a run records) are ignored;
        lists become tuples again; fields added since the run was recorded take the
        values it trained with (`recorded_defaults`). Raises UserError if a value is
        not usable.
        """
        names = {f.name for f in cls.flag_fields()}
        kept = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
        return cls.from_flat({**recorded_defaults(values), **kept}).validated()

    def model_spec(self, device_type: str | None = None) -> ModelSpec:
        """The networks this config describes, ready to build.

        Args:
          device_type: "CPU", "GPU" or "TPU", the device the networks run on, which
            --kernels=auto decides by; None: this process's own (kernels.local_device_type).
        Returns:
          cfg.net with its kernels resolved to "fast" or "reference".
        """
        kernels = self.kernels
        if kernels == "auto":
            kernels = resolve_kernels(kernels, device_type or local_device_type())
        return dataclasses.replace(self.net, kernels=kernels)

    def row_filter(self):
        """The RowFilter these data flags describe."""
        from wavegan_dist.data.filters import RowFilter

        return RowFilter.from_options(
            self.subset,
            instrument_source=self.instrument_source,
            instrument_family=self.instrument_family,
            pitch_min=self.pitch_min,
            pitch_max=self.pitch_max,
            velocity=self.velocity,
            num_samples=self.num_samples,
        )

    def replace(self, **changes: Any) -> "Config":
        """Returns a copy with `changes` ({flag name: value}) applied (validated)."""
        return Config.from_flat({**self.to_dict(), **changes}).validated()

    def to_dict(self) -> dict[str, Any]:
        """Returns {flag name: value} of every flag field (the networks' too, flat)."""
        net = self.net.flag_values()
        return {
            f.name: net[f.name] if f.name in net else getattr(self, f.name)
            for f in self.flag_fields()
        }

    def to_json(self) -> str:
        """Returns the config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validated(self) -> "Config":
        """Returns self if every value is usable, else raises UserError naming the flag."""

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)

        values = self.to_dict()
        for f in self.flag_fields():
            choices = f.metadata["choices"]
            need(
                not choices or values[f.name] in choices,
                f"--{f.name}={values[f.name]} is not one of {', '.join(choices)}",
            )
        net = self.net
        registry.check_options(net)
        need(self.cpu_replicas >= 1, f"--cpu_replicas must be >= 1, got {self.cpu_replicas}")
        need(self.batch_size >= 1, f"--batch_size must be >= 1, got {self.batch_size}")
        need(1 <= self.n_critic <= 200, f"--n_critic must be in [1, 200], got {self.n_critic}")
        need(0 <= self.seed < 2**31, f"--seed must be in [0, 2^31), got {self.seed}")
        need(self.train_steps >= 0, f"--train_steps must be >= 0, got {self.train_steps}")
        for name in ("slice_len", "dim", "kernel_len", "latent_dim"):
            need(values[name] >= 1, f"--{name} must be >= 1, got {values[name]}")
        need(net.phase_shuffle >= 0, f"--phase_shuffle must be >= 0, got {net.phase_shuffle}")
        need(
            net.phase_shuffle_layers >= 0,
            f"--phase_shuffle_layers must be >= 0, got {net.phase_shuffle_layers}",
        )
        need(self.gp_weight >= 0, f"--gp_weight must be >= 0, got {self.gp_weight}")
        need(self.aux_weight >= 0, f"--aux_weight must be >= 0, got {self.aux_weight}")
        need(
            not net.aux_classifier or net.num_classes > 0,
            "--aux_classifier needs a conditional model: give --condition (e.g. pitch)",
        )
        need(self.learning_rate > 0, f"--learning_rate must be > 0, got {self.learning_rate}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)")
        need(self.adam_epsilon > 0, f"--adam_epsilon must be > 0, got {self.adam_epsilon}")
        need(self.num_samples >= 0, f"--num_samples must be >= 0, got {self.num_samples}")
        need(self.read_rows >= 1, f"--read_rows must be >= 1, got {self.read_rows}")
        need(self.shuffle_window >= 1, f"--shuffle_window must be >= 1, got {self.shuffle_window}")
        for name in ("ckpt_every", "log_every", "sample_every", "keep_checkpoints"):
            need(values[name] >= 1, f"--{name} must be >= 1, got {values[name]}")
        need(
            not self.resume_from or bool(self.model_dir),
            f"--resume_from={self.resume_from} needs --model_dir, the run to continue",
        )
        need(self.num_wavs >= 0, f"--num_wavs must be >= 0, got {self.num_wavs}")
        need(
            self.eval_every >= 0 and self.eval_examples >= 0,
            "--eval_every and --eval_examples must be >= 0",
        )
        need(
            not self.eval_every or self.eval_classifier,
            "--eval_every needs --eval_classifier=FOLDER (make one with `python -m "
            "wavegan_dist.evaluate train-classifier`)",
        )
        need(
            1 <= self.steps_per_loop <= 10_000,
            f"--steps_per_loop must be in [1, 10000], got {self.steps_per_loop}",
        )
        need(
            0 <= self.generator_ema < 1,
            f"--generator_ema must be in [0, 1) (0 = off), got {self.generator_ema}",
        )
        need(self.max_rollbacks >= 0, f"--max_rollbacks must be >= 0, got {self.max_rollbacks}")
        need(
            self.debug_nan_at_step >= 0,
            f"--debug_nan_at_step must be >= 0, got {self.debug_nan_at_step}",
        )
        need(
            self.pitch_min is None or self.pitch_max is None or self.pitch_min <= self.pitch_max,
            f"--pitch_min={self.pitch_min} is above --pitch_max={self.pitch_max}",
        )
        return self


# A preset sets defaults; flags the user gives explicitly still win.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # A few dozen steps in about a minute on 2 CPU cores: for smoke tests and CI. Its
    # learning rate is 5x the paper's so the small networks learn visibly within minutes
    # (measured here with --eval_every: Frechet distance 815 after 1,500 steps at 5e-4,
    # 803 only after 5,500 at the paper's 1e-4; 1286 untrained). Its generator EMA
    # averages about the last 200 steps (0.999's 1,000 would lag a few-thousand-step
    # run at this learning rate by a large part of its length).
    "tiny": dict(
        slice_len=4096,
        dim=8,
        batch_size=16,
        n_critic=5,
        train_steps=40,
        ckpt_every=20,
        log_every=5,
        sample_every=20,
        learning_rate=5e-4,
        generator_ema=0.995,
    ),
    # Pitch-conditional notes of real instruments (--data=builtin-instruments) in about 20
    # minutes of training on 2 CPU cores: the tiny model with nearest-neighbour upsampling
    # and 2 critic updates per generator update. Measured here (BUILD_NOTES, "The quick
    # preset"): transposed convolutions put 0.79 of the trained generator's power on the
    # 62.5 Hz lines and 0.057 on the 1 kHz ones (real notes: 0.22 and 0.001);
    # nearest-neighbour upsampling cut those to 0.43 and 0.002, but neither learned pitch in
    # 2,500 steps at n_critic 5 (pYIN agreed on 0.02 of the clips). n_critic 2 buys 2.3x the
    # generator updates in the same time: 5,000 steps reached 0.26-0.28. Width 16 ran at 1.3
    # steps/s under that load, too slow for 20 minutes; the post filter at 0.28x the speed.
    # Pitch accuracy then rose with steps (0.30 at 8,000, 0.33 at 12,000): 9,000 steps is
    # what 20 minutes hold with room to spare (8.8 steps/s alone on 2 cores: 17 minutes).
    # GANSynth's auxiliary pitch classifier at weight 1 then took pitch accuracy at 9,000
    # steps from about 0.32 to 0.66 (weight 10: 0.17, the generator fooling the classifier
    # without the pitch); learning rate 1e-3 did no better than 5e-4, width 12 and batch 32
    # learn more per step but less per minute; without phase shuffle the noise floor drops
    # but pitch comes far later (docs/MEASUREMENTS.md).
    # A run without --condition drops the classifier (no labels to predict).
    "quick": dict(
        slice_len=4096,
        dim=8,
        batch_size=16,
        n_critic=2,
        upsample="nn",
        aux_classifier=True,
        aux_weight=1.0,
        train_steps=9000,
        learning_rate=5e-4,
        generator_ema=0.995,
    ),
}


def recorded_defaults(recorded: dict[str, Any]) -> dict[str, Any]:
    """What a run recorded before some fields existed trained with, for those fields.

    Args:
      recorded: a run's config.json as a dict.
    Returns:
      {field: value} for each field `recorded` lacks whose default has changed since:
      adam_epsilon 1e-7 (Keras's default, used until it became a flag); for wavegan,
      phase_shuffle_layers = the critic's layers but the last (what it shuffled after);
      kernels "fast", or "reference" where the run chose --conv_impl=keras; aux_classifier
      False (a `quick` run from before it joined that preset).
      Empty for a run recorded with all of them.
    """
    legacy: dict[str, Any] = {}
    if "adam_epsilon" not in recorded:
        legacy["adam_epsilon"] = 1e-7
    if "phase_shuffle_layers" not in recorded and recorded.get("model", "wavegan") == "wavegan":
        legacy["phase_shuffle_layers"] = len(layer_strides(recorded["slice_len"])) - 1
    if "aux_classifier" not in recorded:  # no run had the head before the flag
        legacy["aux_classifier"] = False
    if "kernels" not in recorded:
        legacy["kernels"] = "reference" if recorded.get("conv_impl") == "keras" else "fast"
    return legacy


def make_config(preset: str = "paper", **overrides: Any) -> Config:
    """Builds a validated Config from a preset name plus explicit overrides.

    Args:
      preset: a key of PRESETS.
      overrides: Config fields that win over the preset.
    Returns:
      The validated Config.
    """
    if preset not in PRESETS:
        raise UserError(f"--preset={preset} is not one of {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **overrides}
    if values.get("condition", "none") == "none" and "aux_classifier" not in overrides:
        # A preset's auxiliary classifier has nothing to predict in an unconditional run;
        # asked for explicitly, it is an error (validated()).
        values.pop("aux_classifier", None)
    return Config.from_flat(values).validated()
