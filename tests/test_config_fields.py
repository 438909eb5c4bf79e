"""Configuration declared once: each field's declaration (config.py, models/spec.py) makes
its flag, its check and what a resume may change; Config.net nests the networks' fields."""

import json
import pathlib

import pytest

from wavegan_dist.config import Config, make_config
from wavegan_dist.errors import UserError
from wavegan_dist.models.spec import ModelSpec

RECORDED = pathlib.Path(__file__).parent / "data" / "run_before_faithful_defaults" / "config.json"


def test_every_field_is_a_flag_with_the_fields_default_help_and_choices():
    from absl import flags

    import wavegan_dist.flags  # noqa: F401 (defines the flags)

    fields = Config.flag_fields()
    assert len(fields) == len({f.name for f in fields}) > 50  # flat names stay unique
    for field in fields:
        flag = flags.FLAGS[field.name]
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        assert flag.default == default and flag.help.endswith(field.metadata["help"]), field.name
        if field.metadata["choices"]:
            assert flag.parser.enum_values == list(field.metadata["choices"]), field.name
    assert "net" not in flags.FLAGS and "num_classes" not in flags.FLAGS  # derived: no flag


def test_what_a_resume_may_change_follows_each_fields_declaration():
    from wavegan_dist.training import checkpoints

    assert set(checkpoints.MODEL_FIELDS) == {
        "model",
        "slice_len",
        "dim",
        "kernel_len",
        "latent_dim",
        "upsample",
        "post_filter",
        "gen_batchnorm",
        "aux_classifier",
        "condition",
    }
    assert set(checkpoints.ORDER_FIELDS) == {
        "data",
        "split",
        "num_samples",
        "subset",
        "instrument_source",
        "instrument_family",
        "pitch_min",
        "pitch_max",
        "velocity",
        "batch_size",
        "n_critic",
        "seed",
        "shuffle",
        "shuffle_window",
        "slice_offset",
        "normalize",
        "phase_shuffle",
        "phase_shuffle_layers",
        "precision",
    }
    assert set(checkpoints.TRAINING_FIELDS) == {
        "learning_rate",
        "beta1",
        "beta2",
        "gp_weight",
        "generator_ema",
        "jit_compile",
        "adam_epsilon",
        "kernels",
        "aux_weight",
    }


def test_the_networks_fields_are_nested_and_follow_the_runs_own():
    cfg = make_config("tiny", condition="pitch", seed=3, precision="bf16", dim=6)
    assert isinstance(cfg.net, ModelSpec)
    assert (
        cfg.net.dim,
        cfg.net.slice_len,
        cfg.net.num_classes,
        cfg.net.seed,
        cfg.net.precision,
    ) == (6, 4096, 128, 3, "bf16")
    later = cfg.replace(seed=4, condition="none", upsample="nn")
    assert (later.net.seed, later.net.num_classes, later.net.upsample, later.net.dim) == (
        4,
        0,
        "nn",
        6,
    )
    assert cfg.model_spec("CPU").kernels == "fast" and cfg.model_spec("TPU").kernels == "reference"


def test_each_family_fills_its_own_defaults_and_refuses_options_it_lacks():
    seed2d = make_config("tiny", model="seed2d")
    assert (seed2d.net.kernel_len, seed2d.net.phase_shuffle) == (4, 0)
    assert make_config("tiny", model="seed2d", kernel_len=3).net.kernel_len == 3
    wavegan = make_config("tiny")
    assert (wavegan.net.kernel_len, wavegan.net.phase_shuffle) == (25, 2)
    with pytest.raises(UserError, match=r"^--model=wave is not one of wavegan, seed2d$"):
        make_config("tiny", model="wave")
    with pytest.raises(
        UserError,
        match=r"^--upsample=nn is a WaveGAN option; --model=seed2d "
        r"takes only --upsample=zeros$",
    ):
        make_config("tiny", model="seed2d", upsample="nn")
    with pytest.raises(UserError, match=r"^--upsample=linear is not one of zeros, nn$"):
        make_config("tiny", upsample="linear")
    with pytest.raises(UserError, match=r"^unknown config field\(s\): net, num_classes$"):
        make_config("tiny", net=ModelSpec(), num_classes=3)
    with pytest.raises(
        UserError,
        match=r"^--aux_classifier needs a conditional model: give --condition \(e.g. pitch\)$",
    ):
        make_config("tiny", aux_classifier=True)
    assert make_config("tiny", aux_classifier=True, condition="pitch").net.aux_classifier


def test_config_json_stays_flat_and_old_runs_still_read():
    cfg = make_config("quick", condition="pitch", velocity=(75, 100), model_dir="runs/x")
    recorded = json.loads(cfg.to_json())
    assert "net" not in recorded and recorded["upsample"] == "nn" and recorded["dim"] == 8
    assert recorded["velocity"] == [75, 100]
    assert Config.from_dict(recorded) == cfg
    old = json.loads(RECORDED.read_text())  # written by a version with a flat Config
    again = Config.from_dict(old)
    assert again.net.slice_len == old["slice_len"] and again.net.dim == old["dim"]
    assert again.adam_epsilon == 1e-7  # the value it trained with (config.recorded_defaults)


def test_a_quick_run_from_before_its_classifier_resumes_without_one():
    from wavegan_dist.config import recorded_defaults

    before = json.loads(make_config("quick", condition="pitch").to_json())
    del before["aux_classifier"], before["aux_weight"]
    legacy = recorded_defaults(before)
    assert legacy["aux_classifier"] is False
    resumed = make_config("quick", condition="pitch", **legacy)
    assert not resumed.net.aux_classifier
