"""The network families `--model` chooses from, and what each one needs.

One entry per family: where its generator and critic live, which slice lengths it
can make, its defaults for the ModelSpec fields left None, and the options it does
not have. Imports no network module (they are loaded by name when built), so a
Config can be checked without TensorFlow and the network modules can import the
spec without a cycle. To add a family: write its module (a generator and a critic
taking a ModelSpec, like seed2d.py) and add an entry here.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from wavegan_dist.errors import UserError
from wavegan_dist.models.spec import ModelSpec


@dataclasses.dataclass(frozen=True)
class Family:
    """What the registry knows of one network family.

    Attributes:
      module: the module defining the networks, e.g. "wavegan_dist.models.seed2d".
      generator, critic: their class names in `module`.
      slice_check: "module:function" raising UserError for a slice_len the family
        cannot make (a module without TensorFlow, so Config checks stay fast).
      defaults: values of the ModelSpec fields a spec leaves None.
      fixed: options the family does not have -> the one value it takes.
    """

    module: str
    generator: str
    critic: str
    slice_check: str
    defaults: dict[str, Any]
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)


FAMILIES: dict[str, Family] = {
    # The paper's 1-D WaveGAN (models/wavegan.py).
    "wavegan": Family(
        "wavegan_dist.models.wavegan",
        "WaveGANGenerator",
        "WaveGANCritic",
        "wavegan_dist.models.shapes:layer_strides",
        defaults=dict(kernel_len=25, phase_shuffle=2),
    ),
    # A small 2-D DCGAN-style pair on the slice as one square frame (models/seed2d.py);
    # it has none of WaveGAN's generator options: refusing them beats ignoring them.
    "seed2d": Family(
        "wavegan_dist.models.seed2d",
        "Seed2DGenerator",
        "Seed2DCritic",
        "wavegan_dist.models.shapes:frame_side",
        defaults=dict(kernel_len=4, phase_shuffle=0),
        fixed=dict(upsample="zeros", post_filter=False, gen_batchnorm=False, phase_shuffle=0),
    ),
}


def family(name: str) -> Family:
    """The Family called `name`; raises UserError naming the choices otherwise."""
    if name not in FAMILIES:
        raise UserError(f"--model={name} is not one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def complete(spec: ModelSpec) -> ModelSpec:
    """`spec` with its None fields set to its family's defaults (raises UserError for an
    unknown family)."""
    missing = {k: v for k, v in family(spec.model).defaults.items() if getattr(spec, k) is None}
    return dataclasses.replace(spec, **missing) if missing else spec


def check_options(spec: ModelSpec) -> None:
    """Raises UserError if `spec` sets an option its family does not have."""
    for name, only in family(spec.model).fixed.items():
        value = getattr(spec, name)
        if value is not None and value != only:
            raise UserError(
                f"--{name}={value} is a WaveGAN option; --model={spec.model} "
                f"takes only --{name}={only}"
            )


def _load(path: str):
    module, name = path.split(":") if ":" in path else path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def check_slice_len(spec: ModelSpec) -> None:
    """Raises UserError if spec.model cannot produce spec.slice_len samples."""
    _load(family(spec.model).slice_check)(spec.slice_len)


def network_classes(spec: ModelSpec):
    """(generator class, critic class) of spec.model (imports its module)."""
    entry = family(spec.model)
    module = importlib.import_module(entry.module)
    return getattr(module, entry.generator), getattr(module, entry.critic)
