"""Analytic FLOPs of one WGAN-GP critic update and one generator update of WaveGAN.

What is counted
---------------
Only the multiply-adds of convolutions, transposed convolutions and dense layers
(and the class projection of a conditional critic, a dot product per example),
each counted as 2 FLOPs. Activations, phase shuffle, padding, the losses, the
penalty's norm, bias additions, random draws and the Adam update are elementwise
and left out. The counts are the work the algorithm needs, whatever a framework
actually executes (see "Not counted" below), so FLOP/s computed from them is
"useful" throughput, comparable between TensorFlow and PyTorch.

Per layer, for ONE example (``Layer.macs``):

- Conv1D "same", stride s, kernel K, C_in -> C_out, input length N:
  ceil(N / s) * K * C_in * C_out (every output takes all K taps; the zero padding at
  the two edges is counted as if it were data).
- Conv1DTranspose "same", stride s: input length N, output N * s:
  N * K * C_in * C_out (each input sample is spread over K outputs), i.e. the MACs of
  the strided convolution it is the transpose of.
- Nearest-neighbour upsampling + stride-1 conv ("nn" option): conv on the upsampled
  length.
- Dense in -> out: in * out.

A backward pass through a layer costs its forward MACs again for the gradient with
respect to its input ("input grad": a transposed convolution, or a matmul with the
transposed kernel) and again for the gradient with respect to its kernel ("weight
grad"). With F(net) = sum of a network's forward MACs, F_first = the layers reading
the network's input (the critic's first conv, the generator's dense on z), F_head =
the layers producing the critic's score (its dense, and the projection), and B the
global batch:

Critic update (``critic_update_flops``) = 2 x B x (
    F(G)                 generator forward for the fakes (no gradient: outside the tape)
  + 2 F(D)               critic forward on [real; fake] (one call on 2B examples)
  + F(D)                 critic forward on the interpolates x_hat
  + F(D)                 inner backward dD/dx_hat: input grads of every critic layer,
                         down to the waveform
  + F(D)                 double backward, weight grads of the inner backward's ops
                         (each input-grad op is bilinear in the kernel and its
                         incoming gradient)
  + F(D) - F_head        double backward, grads w.r.t. those incoming gradients (the
                         head's incoming gradient is the constant 1, needing none)
  + 2 F(D)               weight grads of the [real; fake] call
  + 2 (F(D) - F_first)   input grads of the [real; fake] call (none into the data)
)

Generator update (``generator_update_flops``) = 2 x B x (
    F(G) + F(D)          forward: z -> G -> D (with phase shuffle)
  + F(D)                 input grads through every critic layer, down to G's output
                         (the critic's weight grads are not needed: only the
                         generator's variables are updated)
  + F(G)                 weight grads of the generator
  + F(G) - F_first(G)    input grads of the generator (none into z)
)

Not counted
-----------
LeakyReLU's derivative is piecewise constant, so the penalty sends no gradient
into the interpolates' forward activations; TensorFlow's gradient of
LeakyReluGrad (and PyTorch's of leaky_relu_backward) nevertheless returns an
explicit zeros tensor for them, which a framework may push back through the
interpolates' forward convolutions. That work is not needed and is not counted;
``zero_gradient_path_flops`` says how much it is (weight grads of every critic conv
and input grads of every critic conv but the first, on B examples: about 18% on top
of the critic update for the paper's model). PyTorch's FlopCounterMode, run on the
PyTorch twin (bench/torch_wavegan.py), counts exactly ``generator_update_flops``
for a generator update and ``critic_update_flops + zero_gradient_path_flops`` for a
critic update. Gradients a framework computes and then drops are not counted either.

Only the WaveGAN family is described here (``layers``); ``check_weights`` compares
the kernels described with the kernels of the networks ``build_models`` built, so a
change of architecture that this module does not know about is noticed.
"""

from __future__ import annotations

import dataclasses
import math

from wavegan_dist.models import registry
from wavegan_dist.models.shapes import layer_strides
from wavegan_dist.models.spec import ModelSpec

# The generator starts (and the critic ends) at START_LEN.
from wavegan_dist.models.wavegan import POST_FILTER_TAPS, START_LEN


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer with multiply-adds, per example.

    Attributes:
      name: the Keras layer's name in models/wavegan.py.
      kind: "dense", "conv", "conv_transpose" or "projection".
      macs: forward multiply-adds for one example.
      kernel_size: elements of the layer's kernel (its weight matrix or tensor).
      role: "first" (reads the network's input), "head" (produces the critic's
        score) or "" (in between).
    """

    name: str
    kind: str
    macs: int
    kernel_size: int
    role: str = ""


def _strides(spec: ModelSpec) -> list[int]:
    if spec.model != "wavegan":
        raise ValueError(f"FLOP counting knows the wavegan model only, not {spec.model!r}")
    return layer_strides(spec.slice_len)


def critic_layers(spec: ModelSpec) -> list[Layer]:
    """The critic's multiply-add layers, waveform end first."""
    spec = registry.complete(spec)
    strides = _strides(spec)
    k, length, c_in = spec.kernel_len, spec.slice_len, 1
    out = []
    for i, stride in enumerate(strides):
        c_out = spec.dim * 2**i
        length = math.ceil(length / stride)
        out.append(
            Layer(
                f"conv_{i}",
                "conv",
                length * k * c_in * c_out,
                k * c_in * c_out,
                "first" if i == 0 else "",
            )
        )
        c_in = c_out
    if length != START_LEN:
        raise ValueError(f"critic ends at length {length}, expected {START_LEN}")
    features = length * c_in
    out.append(Layer("dense", "dense", features, features, "head"))
    if spec.num_classes:
        out.append(Layer("projection", "projection", features, spec.num_classes * features, "head"))
    return out


def generator_layers(spec: ModelSpec) -> list[Layer]:
    """The generator's multiply-add layers, z end first."""
    spec = registry.complete(spec)
    strides = _strides(spec)
    k = spec.kernel_len
    width = spec.dim * 2 ** (len(strides) - 1)
    z = spec.latent_dim + spec.num_classes
    out = [Layer("dense", "dense", z * START_LEN * width, z * START_LEN * width, "first")]
    length = START_LEN
    for i, stride in enumerate(strides):
        c_out = 1 if i == len(strides) - 1 else width // 2
        if spec.upsample == "nn":
            macs = length * stride * k * width * c_out
            kind = "conv"
        else:
            macs = length * k * width * c_out
            kind = "conv_transpose"
        out.append(Layer(f"upconv_{i}", kind, macs, k * width * c_out))
        length *= stride
        width = c_out
    if spec.post_filter:
        out.append(Layer("post_filter", "conv", length * POST_FILTER_TAPS, POST_FILTER_TAPS))
    return out


def layers(spec: ModelSpec) -> tuple[list[Layer], list[Layer]]:
    """(generator layers, critic layers) of the WaveGAN `spec` describes."""
    return generator_layers(spec), critic_layers(spec)


def _macs(net: list[Layer], role: str | None = None) -> int:
    return sum(layer.macs for layer in net if role is None or layer.role == role)


def critic_update_flops(spec: ModelSpec, global_batch: int) -> int:
    """FLOPs of one critic update on `global_batch` real examples (module docstring)."""
    g, d = layers(spec)
    fg, fd = _macs(g), _macs(d)
    per_example = (
        fg + 2 * fd + fd + fd + fd + (fd - _macs(d, "head")) + 2 * fd + 2 * (fd - _macs(d, "first"))
    )
    return 2 * global_batch * per_example


def generator_update_flops(spec: ModelSpec, global_batch: int) -> int:
    """FLOPs of one generator update on `global_batch` latent vectors (module docstring)."""
    g, d = layers(spec)
    fg, fd = _macs(g), _macs(d)
    per_example = fg + fd + fd + fg + (fg - _macs(g, "first"))
    return 2 * global_batch * per_example


def zero_gradient_path_flops(spec: ModelSpec, global_batch: int) -> int:
    """FLOPs of pushing the penalty's zero gradient back through the interpolates'
    forward convolutions (module docstring): NOT part of critic_update_flops."""
    _, d = layers(spec)
    convs = _macs(d) - _macs(d, "head")
    return 2 * global_batch * (convs + convs - _macs(d, "first"))


def forward_flops(spec: ModelSpec) -> dict:
    """{"generator": FLOPs, "critic": FLOPs} of one forward pass of one example."""
    g, d = layers(spec)
    return {"generator": 2 * _macs(g), "critic": 2 * _macs(d)}


def check_weights(spec: ModelSpec, generator, critic) -> list[str]:
    """Compares the kernels described here with the built networks' kernels.

    Args:
      generator, critic: Keras models (as build_models returns them).
    Returns:
      A list of mismatch descriptions; empty when the kernel element counts (all
      trainable variables of rank >= 2) agree for both networks.
    """
    problems = []
    for name, described, model in (
        ("generator", generator_layers(spec), generator),
        ("critic", critic_layers(spec), critic),
    ):
        built = sum(math.prod(v.shape) for v in model.trainable_variables if len(v.shape) >= 2)
        expected = sum(layer.kernel_size for layer in described)
        if built != expected:
            problems.append(
                f"{name}: built kernels have {built:,} elements, the FLOP "
                f"count describes {expected:,}"
            )
    return problems
