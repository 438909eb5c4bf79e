"""The command-line flags of `python -m wavegan_dist.train`, and the one function that
turns them into a Config. No other module reads absl flags.

Each Config field (config.py, and the networks' in models/spec.py) becomes the flag of
the same name, with the field's default, help text and choices; only --preset is
declared here.
"""

from __future__ import annotations

import typing

from absl import flags

from wavegan_dist.config import PRESETS, Config, make_config, recorded_defaults
from wavegan_dist.errors import UserError
from wavegan_dist.models.spec import ModelSpec

flags.DEFINE_enum(
    "preset",
    "paper",
    list(PRESETS),
    "Named defaults: 'paper' (WaveGAN paper), 'tiny' (quick trials, ~1 min on 2 "
    "CPU cores) or 'quick' (the tiny model with nearest-neighbour upsampling and "
    "--n_critic=2, 9,000 steps, about 17-20 min on 2 CPU cores, for "
    "--data=builtin-instruments). "
    "Flags given explicitly override the preset.",
)

_TYPES = {**typing.get_type_hints(Config), **typing.get_type_hints(ModelSpec)}


def _define(field) -> None:
    """Defines the absl flag of one Config field from its type and metadata."""
    kind, default = _TYPES[field.name], field.default
    help_text, choices = field.metadata["help"], field.metadata["choices"]
    if choices:
        flags.DEFINE_enum(field.name, default, list(choices), help_text)
    elif kind is bool:
        flags.DEFINE_bool(field.name, default, help_text)
    elif kind in (int, int | None):
        flags.DEFINE_integer(field.name, default, help_text)
    elif kind is float:
        flags.DEFINE_float(field.name, default, help_text)
    elif kind is str:
        flags.DEFINE_string(field.name, default, help_text)
    elif typing.get_origin(kind) is tuple:
        flags.DEFINE_list(field.name, list(default), help_text)
    else:
        raise TypeError(f"no flag type for Config field {field.name}: {kind}")


for _field in Config.flag_fields():
    _define(_field)

FLAGS = flags.FLAGS
_FIELDS = [f.name for f in Config.flag_fields()]
_INT_LISTS = [name for name in _FIELDS if typing.get_origin(_TYPES[name]) is tuple]


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> Config:
    """Builds the run's Config: the preset's values, then every flag the user set explicitly.

    Resuming a run recorded before a field existed, the field takes the value that run
    trained with unless its flag is given (config.recorded_defaults).

    Args:
      flag_values: parsed absl flags.
    Returns:
      A validated Config (raises UserError on a bad value).
    """
    overrides = {name: flag_values[name].value for name in _FIELDS if flag_values[name].present}
    for name in _INT_LISTS:
        if name in overrides:
            try:
                overrides[name] = tuple(int(v) for v in overrides[name])
            except ValueError as err:
                raise UserError(
                    f"--{name} takes comma-separated integers, got {','.join(overrides[name])}"
                ) from err
    if flag_values.model_dir:
        from wavegan_dist.run_folder.checkpoint_files import recorded_config  # imports TensorFlow

        recorded = recorded_config(flag_values.model_dir)
        if recorded is not None:
            overrides = {**recorded_defaults(recorded), **overrides}
    return make_config(flag_values.preset, **overrides)
