"""LeakyReLU for a critic trained with a gradient penalty.

The WGAN-GP penalty differentiates the critic twice. LeakyReLU's derivative is
piecewise constant, so the second derivative is zero wherever it is defined, but
TensorFlow's registered gradient of `LeakyReluGrad` still returns an explicit
zeros tensor for the forward activations, and autodiff then pushes those zeros
back through every convolution of the interpolates' forward pass (weight and input
gradients: about 18% more work per critic update for the paper's model). Here the
derivative is built with `stop_gradient`, so that path is not in the graph at all;
values and first derivatives are exactly tf.nn.leaky_relu's, and second
derivatives equal the zeros TensorFlow would have computed.

The derivative reads the activation's output, not its input: for a slope >= 0,
output > 0 exactly where input > 0, so it is the same derivative, and the
pre-activation tensor (the convolution's output before the bias and LeakyReLU)
then has no other reader, so grappler's remapper can fuse convolution, bias and
LeakyReLU into one oneDNN kernel and no extra tensor is kept for the backward pass.
"""

import keras
import tensorflow as tf


def leaky_relu(x, negative_slope=0.2):
    """LeakyReLU whose derivative carries no gradient of its own (module docstring).

    Args:
      x: float tensor of any shape.
      negative_slope: Python float >= 0, the slope for x <= 0.

    Returns:
      Tensor like `x`: x for x > 0, negative_slope * x otherwise.
    """
    if negative_slope < 0:
        raise ValueError(f"negative_slope must be >= 0, got {negative_slope}")
    x = tf.convert_to_tensor(x)

    @tf.custom_gradient
    def _leaky_relu(features):
        out = tf.nn.leaky_relu(features, alpha=negative_slope)

        def grad(dy):
            # LeakyReluGrad(dy, out) = dy where out > 0 (i.e. features > 0) else
            # slope * dy; with `out` held constant it is linear in dy, which is all the
            # penalty's double backward needs.
            return tf.raw_ops.LeakyReluGrad(
                gradients=dy, features=tf.stop_gradient(out), alpha=negative_slope
            )

        return out, grad

    return _leaky_relu(x)


def critic_leaky_relu(kernels):
    """The critic's LeakyReLU for ModelSpec.kernels: `leaky_relu` above for "fast",
    keras.ops.leaky_relu for "reference"; either is called as f(x, negative_slope)."""
    if kernels == "fast":
        return leaky_relu
    if kernels == "reference":
        return keras.ops.leaky_relu
    raise ValueError(f"kernels must be fast or reference, got {kernels!r}")
