"""The one configuration object of a training run, and its named presets.

Library code takes a `Config` (or plain arguments from it), never absl flags:
flags.py is the only place that turns command-line flags into a Config.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from wavegan_dist.errors import UserError
from wavegan_dist.kernels import KERNELS


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a training run needs. Defaults are the WaveGAN paper's."""

    # Distribution.
    strategy: str = "auto"  # auto | mirrored | multiworker | tpu | cpu
    tpu: str = ""  # TPU name or grpc:// address for --strategy=tpu/auto
    cpu_replicas: int = 1  # split the CPU into this many logical devices

    # Data.
    data: str = "builtin"  # "builtin", a deeplake dataset path or a prepared folder
    split: str = "train"
    data_cache: str = ""  # where the built-in dataset is cached ("" = default)
    num_samples: int = 0  # use the first N rows (0 = all)
    subset: str = "all"  # all | gansynth
    instrument_source: tuple = ()  # allowed ids; () = any
    instrument_family: tuple = ()
    pitch_min: int | None = None
    pitch_max: int | None = None
    velocity: tuple = ()
    slice_offset: str = "start"  # start | random
    normalize: str = "none"  # none | peak
    read_rows: int = 1024  # rows fetched from deeplake per read (speed only)
    shuffle: str = "rows"  # rows | blocks | none (see data/pipeline.BatchPlan)
    shuffle_window: int = 1024  # rows shuffled together for --shuffle=blocks

    # Model.
    model: str = "wavegan"  # wavegan | seed2d
    slice_len: int = 16384
    dim: int = 64
    kernel_len: int | None = None  # None: the model's default (MODEL_DEFAULTS)
    latent_dim: int = 100
    phase_shuffle: int | None = None  # None: the model's default (MODEL_DEFAULTS)
    # Critic layers followed by phase shuffle, counted from the waveform end and never
    # the last: the authors' code shuffles after its first 4 at every slice length.
    phase_shuffle_layers: int = 4
    upsample: str = "zeros"  # zeros (transposed conv) | nn (nearest neighbour + conv)
    post_filter: bool = False  # learned 512-tap filter after the generator
    gen_batchnorm: bool = False  # batch norm in the generator
    condition: str = "none"  # none | pitch | instrument_family

    # Optimisation.
    batch_size: int = 64  # global batch, over all replicas
    n_critic: int = 5
    gp_weight: float = 10.0
    learning_rate: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    adam_epsilon: float = 1e-8  # tf.train.AdamOptimizer's, which the authors' code uses
    train_steps: int = 200_000  # generator steps
    seed: int = 0
    jit_compile: bool = False  # XLA-compile each replica's forward/backward (TPU: whole step)
    precision: str = "fp32"  # fp32 | bf16 (mixed: bfloat16 compute, float32 weights)
    kernels: str = "auto"  # auto | fast | reference (wavegan_dist/kernels.py)
    steps_per_loop: int = 1  # generator steps per host call (one tf.function loop)
    # Decay of the exponential moving average of the generator's weights that draws all
    # audio (training/steps.py); 0 = off. About 1 / (1 - decay) steps are averaged.
    generator_ema: float = 0.999

    # Faults.
    on_nan: str = "stop"  # stop | rollback (restore the last checkpoint, new noise seed)
    max_rollbacks: int = 3  # rollbacks allowed in one process before stopping
    debug_nan_at_step: int = 0  # test hook: poison the generator loss at this step (0 = off)
    # Watch a Google Cloud VM's metadata server for a preemption notice: auto | on | off.
    preemption_watch: str = "auto"

    # Outputs.
    model_dir: str = ""
    # "" resumes from the newest checkpoint; "ckpt-N" or a path prefix from that one.
    resume_from: str = ""
    ckpt_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    sample_every: int = 1000
    num_wavs: int = 4  # WAV files written every sample_every steps and at the end

    # Evaluation during training.
    eval_every: int = 0  # steps between evaluations (0 = off)
    eval_classifier: str = ""  # folder from `python -m wavegan_dist.evaluate train-classifier`
    eval_split: str = "valid"  # held-out split scored against
    eval_examples: int = 0  # generated examples per evaluation (0 = as many as held-out notes)

    def __post_init__(self):
        # Model-dependent defaults are filled here so every way of building a Config
        # (flags, make_config, replace, from_dict) resolves them the same way.
        for name, value in MODEL_DEFAULTS.get(self.model, {}).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        """Rebuilds a Config from to_dict()'s output (e.g. a run's config.json).

        Keys that are not Config fields (extra facts a run records) are ignored;
        lists become tuples again; fields added since the run was recorded take the
        values it trained with (`recorded_defaults`). Raises UserError if a value is
        not usable.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: tuple(v) if isinstance(v, list) else v
                for k, v in values.items() if k in names}
        return cls(**{**recorded_defaults(values), **kept}).validated()

    def model_spec(self, device_type: str | None = None):
        """The networks this config describes, as a models.ModelSpec.

        Args:
          device_type: "CPU", "GPU" or "TPU", the device the networks run on, which
            --kernels=auto decides by; None: this process's own (kernels.local_device_type).
        """
        from wavegan_dist.data.schema import LABEL_CLASSES
        from wavegan_dist.kernels import local_device_type, resolve_kernels
        from wavegan_dist.models.spec import ModelSpec

        kernels = self.kernels
        if kernels == "auto":
            kernels = resolve_kernels(kernels, device_type or local_device_type())
        return ModelSpec(
            model=self.model, slice_len=self.slice_len, dim=self.dim,
            kernel_len=self.kernel_len, latent_dim=self.latent_dim,
            phase_shuffle=self.phase_shuffle, phase_shuffle_layers=self.phase_shuffle_layers,
            upsample=self.upsample, post_filter=self.post_filter,
            gen_batchnorm=self.gen_batchnorm, num_classes=LABEL_CLASSES.get(self.condition, 0),
            seed=self.seed, precision=self.precision, kernels=kernels)

    def row_filter(self):
        """The RowFilter these data flags describe."""
        from wavegan_dist.data.filters import RowFilter
        return RowFilter.from_options(
            self.subset, instrument_source=self.instrument_source,
            instrument_family=self.instrument_family, pitch_min=self.pitch_min,
            pitch_max=self.pitch_max, velocity=self.velocity, num_samples=self.num_samples)

    def replace(self, **changes: Any) -> "Config":
        """Returns a copy with `changes` applied (validated)."""
        return dataclasses.replace(self, **changes).validated()

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as a plain JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Returns the config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validated(self) -> "Config":
        """Returns self if every value is usable, else raises UserError naming the flag."""
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)

        need(self.strategy in STRATEGIES,
             f"--strategy={self.strategy} is not one of {', '.join(STRATEGIES)}")
        need(self.cpu_replicas >= 1, f"--cpu_replicas must be >= 1, got {self.cpu_replicas}")
        need(self.model in MODELS, f"--model={self.model} is not one of {', '.join(MODELS)}")
        need(self.upsample in UPSAMPLES,
             f"--upsample={self.upsample} is not one of {', '.join(UPSAMPLES)}")
        need(self.condition in CONDITIONS,
             f"--condition={self.condition} is not one of {', '.join(CONDITIONS)}")
        if self.model == "seed2d":
            # seed2d has none of these; refusing beats silently ignoring them.
            for flag, value, default in (("upsample", self.upsample, "zeros"),
                                         ("post_filter", self.post_filter, False),
                                         ("gen_batchnorm", self.gen_batchnorm, False),
                                         ("phase_shuffle", self.phase_shuffle, 0)):
                need(value == default, f"--{flag}={value} is a WaveGAN option; --model=seed2d "
                     f"takes only --{flag}={default}")
        need(self.batch_size >= 1, f"--batch_size must be >= 1, got {self.batch_size}")
        need(1 <= self.n_critic <= 200, f"--n_critic must be in [1, 200], got {self.n_critic}")
        need(0 <= self.seed < 2**31, f"--seed must be in [0, 2^31), got {self.seed}")
        need(self.train_steps >= 0, f"--train_steps must be >= 0, got {self.train_steps}")
        need(self.dim >= 1, f"--dim must be >= 1, got {self.dim}")
        need(self.kernel_len >= 1, f"--kernel_len must be >= 1, got {self.kernel_len}")
        need(self.latent_dim >= 1, f"--latent_dim must be >= 1, got {self.latent_dim}")
        need(self.phase_shuffle >= 0, f"--phase_shuffle must be >= 0, got {self.phase_shuffle}")
        need(self.phase_shuffle_layers >= 0,
             f"--phase_shuffle_layers must be >= 0, got {self.phase_shuffle_layers}")
        need(self.gp_weight >= 0, f"--gp_weight must be >= 0, got {self.gp_weight}")
        need(self.learning_rate > 0, f"--learning_rate must be > 0, got {self.learning_rate}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)")
        need(self.adam_epsilon > 0, f"--adam_epsilon must be > 0, got {self.adam_epsilon}")
        need(self.num_samples >= 0, f"--num_samples must be >= 0, got {self.num_samples}")
        need(self.read_rows >= 1, f"--read_rows must be >= 1, got {self.read_rows}")
        need(self.shuffle_window >= 1, f"--shuffle_window must be >= 1, got {self.shuffle_window}")
        for name in ("ckpt_every", "log_every", "sample_every", "keep_checkpoints"):
            need(getattr(self, name) >= 1, f"--{name} must be >= 1, got {getattr(self, name)}")
        need(not self.resume_from or bool(self.model_dir),
             f"--resume_from={self.resume_from} needs --model_dir, the run to continue")
        need(self.num_wavs >= 0, f"--num_wavs must be >= 0, got {self.num_wavs}")
        need(self.eval_every >= 0 and self.eval_examples >= 0,
             "--eval_every and --eval_examples must be >= 0")
        need(not self.eval_every or self.eval_classifier,
             "--eval_every needs --eval_classifier=FOLDER (make one with `python -m "
             "wavegan_dist.evaluate train-classifier`)")
        need(self.eval_split in ("train", "valid", "test"),
             f"--eval_split={self.eval_split} is not one of train, valid, test")
        need(self.precision in PRECISIONS,
             f"--precision={self.precision} is not one of {', '.join(PRECISIONS)}")
        need(self.kernels in KERNELS,
             f"--kernels={self.kernels} is not one of {', '.join(KERNELS)}")
        need(1 <= self.steps_per_loop <= 10_000,
             f"--steps_per_loop must be in [1, 10000], got {self.steps_per_loop}")
        need(0 <= self.generator_ema < 1,
             f"--generator_ema must be in [0, 1) (0 = off), got {self.generator_ema}")
        need(self.preemption_watch in ("auto", "on", "off"),
             f"--preemption_watch={self.preemption_watch} is not one of auto, on, off")
        need(self.on_nan in ("stop", "rollback"),
             f"--on_nan={self.on_nan} is not one of stop, rollback")
        need(self.max_rollbacks >= 0, f"--max_rollbacks must be >= 0, got {self.max_rollbacks}")
        need(self.debug_nan_at_step >= 0,
             f"--debug_nan_at_step must be >= 0, got {self.debug_nan_at_step}")
        need(self.slice_offset in ("start", "random"),
             f"--slice_offset={self.slice_offset} is not one of start, random")
        need(self.shuffle in SHUFFLES, f"--shuffle={self.shuffle} is not one of {', '.join(SHUFFLES)}")
        need(self.normalize in ("none", "peak"),
             f"--normalize={self.normalize} is not one of none, peak")
        need(self.subset in ("all", "gansynth"), f"--subset={self.subset} is not one of all, gansynth")
        need(self.slice_len >= 1, f"--slice_len must be >= 1, got {self.slice_len}")
        need(self.pitch_min is None or self.pitch_max is None or self.pitch_min <= self.pitch_max,
             f"--pitch_min={self.pitch_min} is above --pitch_max={self.pitch_max}")
        need(self.split in ("train", "valid", "test"),
             f"--split={self.split} is not one of train, valid, test")
        return self


STRATEGIES = ("auto", "mirrored", "multiworker", "tpu", "cpu")
SHUFFLES = ("rows", "blocks", "none")
MODELS = ("wavegan", "seed2d")
UPSAMPLES = ("zeros", "nn")
PRECISIONS = ("fp32", "bf16")
CONDITIONS = ("none", "pitch", "instrument_family")
# Per-model defaults of the fields left None: the paper's WaveGAN and the 2-D seed2d.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "wavegan": dict(kernel_len=25, phase_shuffle=2),
    "seed2d": dict(kernel_len=4, phase_shuffle=0),
}

# A preset sets defaults; flags the user gives explicitly still win.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # A few dozen steps in about a minute on 2 CPU cores: for smoke tests and CI. Its
    # learning rate is 5x the paper's so the small networks learn visibly within minutes
    # (measured here with --eval_every: Frechet distance 815 after 1,500 steps at 5e-4,
    # 803 only after 5,500 at the paper's 1e-4; 1286 untrained). Its generator EMA
    # averages about the last 200 steps (0.999's 1,000 would lag a few-thousand-step
    # run at this learning rate by a large part of its length).
    "tiny": dict(slice_len=4096, dim=8, batch_size=16, n_critic=5, train_steps=40,
                 ckpt_every=20, log_every=5, sample_every=20, learning_rate=5e-4,
                 generator_ema=0.995),
    # Pitch-conditional notes of real instruments (--data=builtin-instruments) in about 20
    # minutes of training on 2 CPU cores: the tiny model with nearest-neighbour upsampling
    # and 2 critic updates per generator update. Measured here (BUILD_NOTES, "The quick
    # preset"): transposed convolutions put 0.79 of the trained generator's power on the
    # 62.5 Hz lines and 0.057 on the 1 kHz ones (real notes: 0.22 and 0.001);
    # nearest-neighbour upsampling cut those to 0.43 and 0.002, but neither learned pitch in
    # 2,500 steps at n_critic 5 (pYIN agreed on 0.02 of the clips). n_critic 2 buys 2.3x the
    # generator updates in the same time: 5,000 steps in 15 minutes reached 0.28. Width 16
    # ran at 1.3 steps/s under that load, too slow for 20 minutes.
    "quick": dict(slice_len=4096, dim=8, batch_size=16, n_critic=2, upsample="nn",
                  train_steps=5000, learning_rate=5e-4, generator_ema=0.995),
}


def recorded_defaults(recorded: dict[str, Any]) -> dict[str, Any]:
    """What a run recorded before some fields existed trained with, for those fields.

    Args:
      recorded: a run's config.json as a dict.
    Returns:
      {field: value} for each field `recorded` lacks whose default has changed since:
      adam_epsilon 1e-7 (Keras's default, used until it became a flag); for wavegan,
      phase_shuffle_layers = the critic's layers but the last (what it shuffled after);
      kernels "fast", or "reference" where the run chose --conv_impl=keras.
      Empty for a run recorded with all of them.
    """
    legacy: dict[str, Any] = {}
    if "adam_epsilon" not in recorded:
        legacy["adam_epsilon"] = 1e-7
    if "phase_shuffle_layers" not in recorded and recorded.get("model", "wavegan") == "wavegan":
        from wavegan_dist.models.wavegan import layer_strides
        legacy["phase_shuffle_layers"] = len(layer_strides(recorded["slice_len"])) - 1
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
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"unknown config field(s): {', '.join(unknown)}")
    return Config(**{**PRESETS[preset], **overrides}).validated()
