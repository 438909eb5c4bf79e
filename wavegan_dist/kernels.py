"""Which kernels a run computes with: `--kernels=auto|fast|reference`.

"fast" is the polyphase strided convolutions (models/fast_conv.py), the LeakyReLU
without a second-order path in the critic (models/activations.py) and Adam as one
fused kernel per variable (training/optimizers.py). "reference" is Keras's own
Conv1D / Conv1DTranspose, keras.ops.leaky_relu and keras.optimizers.Adam. Both
compute the same mathematics with the same variables, so checkpoints move freely
between them; results differ in float rounding only. The fast kernels were tuned
and measured on a CPU only, so "auto" takes them on CPU and the reference kernels
on GPU and TPU.
"""

from __future__ import annotations

KERNELS = ("auto", "fast", "reference")


def resolve_kernels(choice: str, device_type: str) -> str:
    """The kernels a run uses.

    Args:
      choice: one of KERNELS.
      device_type: the type of the devices the replicas run on ("CPU", "GPU", "TPU").
    Returns:
      "fast" or "reference": `choice` itself, or for "auto" "fast" on CPU and
      "reference" on any other device type.
    Raises:
      ValueError for a choice not in KERNELS.
    """
    if choice not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {choice!r}")
    if choice != "auto":
        return choice
    return "fast" if device_type.upper() == "CPU" else "reference"


def strategy_device_type(strategy) -> str:
    """The device type ("CPU", "GPU", "TPU") of the first replica of a tf.distribute strategy.

    TensorFlow's default strategy (outside any scope) names no devices; there the
    replica runs where TensorFlow places ops, as local_device_type() tells.
    """
    import tensorflow as tf

    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return local_device_type()
    return tf.DeviceSpec.from_string(strategy.extended.worker_devices[0]).device_type.upper()


def local_device_type() -> str:
    """ "GPU" if this process sees a GPU (which TensorFlow then places ops on), else "CPU".

    Lists physical devices only, so it does not initialise TensorFlow's runtime (the
    CPU can still be split into logical devices afterwards).
    """
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
