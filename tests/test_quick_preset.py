"""The quick preset: a pitch-conditional model of the instruments set in minutes."""

import numpy as np
import pytest

from wavegan_dist.config import PRESETS, make_config
from wavegan_dist.errors import UserError
from wavegan_dist.models import build_generator


def test_quick_preset_validates_and_builds_its_generator():
    assert "quick" in PRESETS
    cfg = make_config("quick", data="builtin-instruments", condition="pitch")
    assert cfg.train_steps == PRESETS["quick"]["train_steps"]
    # Explicit values still win over the preset.
    assert make_config("quick", train_steps=7).train_steps == 7
    # Its auxiliary pitch classifier comes with a condition, and only then.
    assert (cfg.net.aux_classifier, cfg.aux_weight) == (True, 1.0)
    assert not make_config("quick").net.aux_classifier
    assert not make_config("quick", condition="pitch", aux_classifier=False).net.aux_classifier
    with pytest.raises(UserError, match="^--aux_classifier needs a conditional model"):
        make_config("quick", aux_classifier=True)
    generator = build_generator(cfg.model_spec("CPU"))
    z = np.zeros((2, cfg.net.latent_dim), np.float32)
    out = generator(z, np.array([60, 72], np.int32), training=False).numpy()
    assert out.shape == (2, cfg.net.slice_len, 1) and np.all(np.abs(out) <= 1.0)
