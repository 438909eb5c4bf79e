"""ModelSpec: everything that fixes the generator's and critic's shapes.

A leaf: it imports no model module (models/registry.py maps `model` to the classes),
so every network module can import it.
"""

from __future__ import annotations

import dataclasses

from wavegan_dist.options import ORDER, REFUSE, derived, option


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Plain description of a generator/critic pair.

    Inside a Config (`cfg.net`) the flag fields are the user's and the derived ones
    (num_classes, seed, precision, kernels) follow the run's --condition, --seed,
    --precision and --kernels. Fields left None take the family's default
    (models/registry.py) when a Config or a network is made from the spec.
    """

    model: str = option(
        "wavegan",
        "Network family: 'wavegan' (1-D, the paper's) or 'seed2d' (a small 2-D "
        "convolutional GAN on the slice laid out as one square frame).",
        on_resume=REFUSE,
    )
    slice_len: int = option(
        16384,
        "Samples per example. wavegan: 16384, 32768, 65536 (or 16 * 4^k for small "
        "test models); seed2d: a square (16 * 2^k)^2, e.g. 16384 = 128 x 128.",
        on_resume=REFUSE,
    )
    dim: int = option(64, "Model width d.", on_resume=REFUSE)
    kernel_len: int | None = option(
        None,
        "Convolution kernel length (default 25 for wavegan, 4 (4x4) for seed2d).",
        on_resume=REFUSE,
    )
    latent_dim: int = option(100, "Size of z.", on_resume=REFUSE)
    phase_shuffle: int | None = option(
        None,
        "Critic phase-shuffle radius, 0 = off (default 2 for wavegan; seed2d has none).",
        on_resume=ORDER,
    )
    phase_shuffle_layers: int = option(
        4,
        "wavegan: phase shuffle after this many critic layers from the waveform end, "
        "never after the last (the authors' code: 4 at every slice length). A run started "
        "before this flag existed keeps all but the last unless it is given.",
        on_resume=ORDER,
    )
    upsample: str = option(
        "zeros",
        "wavegan generator upsampling: 'zeros' (transposed convolution) or 'nn' "
        "(nearest-neighbour repeat, then a convolution).",
        choices=("zeros", "nn"),
        on_resume=REFUSE,
    )
    post_filter: bool = option(
        False,
        "wavegan: a learned 512-tap filter (no bias) after the generator's output.",
        on_resume=REFUSE,
    )
    gen_batchnorm: bool = option(
        False,
        "wavegan: batch norm in the generator (statistics over the global batch, across replicas).",
        on_resume=REFUSE,
    )
    aux_classifier: bool = option(
        False,
        "Conditional models: the critic also predicts each clip's label from its last "
        "features (an auxiliary classifier, as GANSynth's discriminator predicts pitch); "
        "--aux_weight weights its loss.",
        on_resume=REFUSE,
    )
    num_classes: int = derived(0, "Label classes for conditioning; 0 = unconditional.")
    seed: int = derived(0, "Initial-weight seed.")
    precision: str = derived(
        "fp32",
        "'fp32', or 'bf16' for bfloat16 compute with float32 weights; either way the "
        "networks take and return float32.",
    )
    kernels: str = derived(
        "fast",
        "'fast' (WaveGAN's strided convolutions as the polyphase layers of "
        "models/fast_conv.py, the critic's LeakyReLU without a second-order path, "
        "models/activations.py), 'reference' (Keras's own layers and activation), or "
        "'auto' (chosen by the device when the networks are built; wavegan_dist/kernels.py). "
        "Same variables and mathematics either way, so checkpoints are interchangeable.",
    )

    def flag_values(self) -> dict:
        """{name: value} of the fields that are flags (the derived ones left out)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("flag")
        }
