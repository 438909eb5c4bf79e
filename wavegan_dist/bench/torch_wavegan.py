"""The WaveGAN critic and generator updates in PyTorch, for comparing speed with TensorFlow.

The same networks as models/wavegan.py (the default options: transposed-convolution
upsampling, no batch norm, no post filter, unconditional) and the same WGAN-GP
updates as training/steps.py, written the usual PyTorch way (eager, channels-first
[B, C, T] tensors, torch.optim.Adam). Only what the benchmark needs is here.

Matching TensorFlow / Keras exactly (the tests compare outputs for the same weights):

- Conv1D "same" with stride s, kernel K on length N pads like TensorFlow: the output
  has ceil(N / s) samples, the total padding (ceil(N/s) - 1) * s + K - N is split with
  the smaller half on the LEFT (for N = 16384, s = 4, K = 25: 21 = 10 left + 11 right).
- Conv1DTranspose "same" (output N * s) is the transpose of that convolution: the
  full transposed output ((N - 1) * s + K samples) is cropped by the same left / right
  padding; nn.ConvTranspose1d's symmetric `padding` does the smaller crop, one slice
  the rest.
- Keras keeps [B, T, C]; flatten (critic) and reshape (generator) are therefore taken
  in time-major order, so the Dense kernels carry over unchanged.
- Phase shuffle: out[b, t] = x[b, t - shift_b] with reflect padding, one shift per
  example per layer, as models/phase_shuffle.py.
- Critic update: fakes from the generator without gradient, one critic call on
  [real; fake], one on the interpolates, penalty (||dD/dx_hat||_2 - 1)^2 with
  create_graph=True (double backward), loss mean(D(fake) - D(real) + 10 * penalty),
  Adam(1e-4, 0.5, 0.9, eps 1e-7 like Keras). Generator update: -mean(D(G(z))) with
  phase shuffle, gradients for the generator's parameters only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavegan_dist.losses import GP_EPSILON
from wavegan_dist.models.fast_conv import same_padding_1d
from wavegan_dist.models import registry
from wavegan_dist.models.shapes import layer_strides
from wavegan_dist.models.spec import ModelSpec
from wavegan_dist.models.wavegan import START_LEN, shuffle_layer_count


def same_padding(length: int, stride: int, kernel: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding (left, right) of a strided 1-D convolution (the
    polyphase layers' own rule, models.fast_conv.same_padding_1d)."""
    return same_padding_1d(length, kernel, stride)


def _strides(spec: ModelSpec) -> list[int]:
    if (
        spec.model != "wavegan"
        or spec.upsample != "zeros"
        or spec.post_filter
        or spec.gen_batchnorm
        or spec.num_classes
        or spec.precision != "fp32"
    ):
        raise ValueError(
            "the PyTorch WaveGAN has the default options only (wavegan, "
            "upsample=zeros, no post filter, no batch norm, unconditional, fp32)"
        )
    return layer_strides(spec.slice_len)


def phase_shuffle(x: torch.Tensor, shifts: torch.Tensor, radius: int) -> torch.Tensor:
    """out[b, :, t] = x[b, :, t - shifts[b]], reflecting at the edges (x: [B, C, L])."""
    if radius == 0 or shifts is None:
        return x
    batch, channels, length = x.shape
    padded = F.pad(x, (radius, radius), mode="reflect")
    index = (radius - shifts.long())[:, None] + torch.arange(length, device=x.device)[None, :]
    return padded.gather(2, index[:, None, :].expand(batch, channels, length))


class SameConv1d(nn.Conv1d):
    """nn.Conv1d with TensorFlow's "same" padding for a fixed input length."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, in_len: int):
        super().__init__(c_in, c_out, kernel, stride=stride)
        self.pad = same_padding(in_len, stride, kernel)

    def forward(self, x):
        return super().forward(F.pad(x, self.pad))


class SameConvTranspose1d(nn.ConvTranspose1d):
    """nn.ConvTranspose1d whose output (in_len * stride) lines up with Keras
    Conv1DTranspose(padding="same")."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, in_len: int):
        left, right = same_padding(in_len * stride, stride, kernel)
        self.crop = (left - min(left, right), right - min(left, right))
        super().__init__(c_in, c_out, kernel, stride=stride, padding=min(left, right))

    def forward(self, x):
        y = super().forward(x)
        return y[:, :, self.crop[0] : y.shape[2] - self.crop[1]]


class Critic(nn.Module):
    """WaveGAN critic: [B, 1, slice_len] (+ shifts [B, num_shuffle_layers]) -> [B]."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        spec = registry.complete(spec)
        self.radius = spec.phase_shuffle
        strides = _strides(spec)
        self.num_shuffle_layers = shuffle_layer_count(spec)
        convs, length, c_in = [], spec.slice_len, 1
        for i, stride in enumerate(strides):
            convs.append(SameConv1d(c_in, spec.dim * 2**i, spec.kernel_len, stride, length))
            length, c_in = math.ceil(length / stride), spec.dim * 2**i
        self.convs = nn.ModuleList(convs)
        self.dense = nn.Linear(length * c_in, 1)

    def forward(self, x, shifts=None):
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), 0.2)
            if shifts is not None and i < self.num_shuffle_layers:
                x = phase_shuffle(x, shifts[:, i], self.radius)
        # Keras flattens [B, T, C]: time-major.
        return self.dense(x.transpose(1, 2).reshape(x.shape[0], -1))[:, 0]


class Generator(nn.Module):
    """WaveGAN generator: z [B, latent_dim] -> [B, 1, slice_len] in [-1, 1]."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        spec = registry.complete(spec)
        strides = _strides(spec)
        self.start_width = width = spec.dim * 2 ** (len(strides) - 1)
        self.dense = nn.Linear(spec.latent_dim, START_LEN * width)
        upconvs, length = [], START_LEN
        for i, stride in enumerate(strides):
            c_out = 1 if i == len(strides) - 1 else width // 2
            upconvs.append(SameConvTranspose1d(width, c_out, spec.kernel_len, stride, length))
            width, length = c_out, length * stride
        self.upconvs = nn.ModuleList(upconvs)

    def forward(self, z):
        # Keras reshapes to [B, 16, width] (time-major); channels-first from there.
        x = F.relu(self.dense(z).view(z.shape[0], START_LEN, self.start_width).transpose(1, 2))
        for i, conv in enumerate(self.upconvs):
            x = conv(x)
            x = torch.tanh(x) if i == len(self.upconvs) - 1 else F.relu(x)
        return x


def _put(param, value) -> None:
    value = torch.from_numpy(np.ascontiguousarray(np.asarray(value, np.float32)))
    if tuple(param.shape) != tuple(value.shape):
        raise ValueError(f"shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(value)


def _get(variable) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)


def copy_conv_weights(conv, layer) -> None:
    """Copies a Keras Conv1D / Conv1DTranspose layer's kernel and bias into a PyTorch
    Conv1d / ConvTranspose1d. Keras kernels are [K, C_in, C_out] / [K, C_out, C_in],
    PyTorch's [C_out, C_in, K] / [C_in, C_out, K]: both are the axes reversed."""
    _put(conv.weight, _get(layer.kernel).transpose(2, 1, 0))
    _put(conv.bias, _get(layer.bias))


def load_keras_weights(
    generator: Generator | None, critic: Critic | None, keras_generator=None, keras_critic=None
) -> None:
    """Copies the weights of models.build_models' WaveGAN networks into these modules
    (convolutions as `copy_conv_weights`; Keras Dense [in, out], PyTorch Linear [out, in])."""
    if critic is not None:
        for conv, layer in zip(critic.convs, keras_critic.convs, strict=True):
            copy_conv_weights(conv, layer)
        _put(critic.dense.weight, _get(keras_critic.dense.kernel).T)
        _put(critic.dense.bias, _get(keras_critic.dense.bias))
    if generator is not None:
        _put(generator.dense.weight, _get(keras_generator.dense.kernel).T)
        _put(generator.dense.bias, _get(keras_generator.dense.bias))
        for conv, layer in zip(generator.upconvs, keras_generator.upconvs, strict=True):
            copy_conv_weights(conv, layer)


def critic_loss(critic: Critic, real, fake, alpha, shifts, gp_weight: float = 10.0):
    """Mean WGAN-GP critic loss, differentiable to the critic's parameters.

    Args:
      real, fake: [B, 1, T]; alpha: [B] interpolation weights;
      shifts: int [3B, num_shuffle_layers] (rows: real, fake, interpolates) or None.
    Returns:
      (loss, mean penalty), scalars.
    """
    batch = real.shape[0]
    x_hat = (real + alpha[:, None, None] * (fake - real)).requires_grad_(True)
    scores = critic(torch.cat([real, fake]), None if shifts is None else shifts[: 2 * batch])
    d_hat = critic(x_hat, None if shifts is None else shifts[2 * batch :])
    (grads,) = torch.autograd.grad(
        d_hat, x_hat, grad_outputs=torch.ones_like(d_hat), create_graph=True
    )
    norm = torch.sqrt(grads.square().sum(dim=(1, 2)) + GP_EPSILON)
    penalty = (norm - 1.0).square()
    loss = (scores[batch:] - scores[:batch] + gp_weight * penalty).mean()
    return loss, penalty.mean()


class TorchWaveGAN:
    """Generator, critic, their Adam optimizers and the two updates.

    Args:
      spec: the ModelSpec (default options only).
      batch: examples per update.
      gp_weight, learning_rate, beta1, beta2, epsilon: as training.
      seed: torch RNG seed for initial weights and noise.
    """

    def __init__(
        self,
        spec: ModelSpec,
        batch: int,
        gp_weight: float = 10.0,
        learning_rate: float = 1e-4,
        beta1: float = 0.5,
        beta2: float = 0.9,
        seed: int = 0,
        epsilon: float = 1e-8,
    ):
        torch.manual_seed(seed)
        self.spec, self.batch, self.gp_weight = spec, batch, gp_weight
        self.generator, self.critic = Generator(spec), Critic(spec)
        adam = lambda params: torch.optim.Adam(
            params, lr=learning_rate, betas=(beta1, beta2), eps=epsilon
        )
        self.g_opt = adam(self.generator.parameters())
        self.d_opt = adam(self.critic.parameters())
        self.rng = torch.Generator().manual_seed(seed)

    def latent(self):
        """A batch of latent vectors, uniform in [-1, 1): [batch, latent_dim]."""
        return torch.rand(self.batch, self.spec.latent_dim, generator=self.rng) * 2.0 - 1.0

    def shifts(self, copies: int):
        """Phase-shuffle shifts for `copies` critic batches: int [copies * batch, shuffle
        layers] in [-radius, radius], or None when the critic shuffles nothing."""
        layers, r = self.critic.num_shuffle_layers, self.critic.radius
        if not layers:
            return None
        return torch.randint(-r, r + 1, (copies * self.batch, layers), generator=self.rng)

    def critic_update(self, real: torch.Tensor) -> float:
        """One critic update on `real` [B, 1, T]; returns the loss."""
        with torch.no_grad():
            fake = self.generator(self.latent())
        alpha = torch.rand(self.batch, generator=self.rng)
        loss, _ = critic_loss(self.critic, real, fake, alpha, self.shifts(3), self.gp_weight)
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.critic.parameters()))
        self.d_opt.step()
        return float(loss.detach())

    def generator_update(self) -> float:
        """One generator update; returns the loss."""
        loss = -self.critic(self.generator(self.latent()), self.shifts(1)).mean()
        self.g_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.generator.parameters()))
        self.g_opt.step()
        return float(loss.detach())
