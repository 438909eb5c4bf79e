"""Adam as one fused kernel per variable.

Keras 3's Adam updates each variable with about ten separate element-wise ops
(each a full pass over the variable and its two moments in memory). For the
paper's critic, 17.4 M parameters, that is a measurable part of a critic update on
CPU, and MirroredStrategy runs it once per replica. TensorFlow's own
`ResourceApplyAdam` kernel does the same update in one pass:

    m <- m + (g - m) (1 - beta1);  v <- v + (g^2 - v) (1 - beta2)
    var <- var - lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)

which is exactly Keras's formula (t = iterations + 1). The optimizer is a subclass
of keras.optimizers.Adam, so its variables, their names and checkpoints are Keras's.
"""

import keras
import tensorflow as tf

from wavegan_dist import private_apis


def adam_name() -> str:
    """The name keras.optimizers.Adam() would take now: "adam", then "adam_1", "adam_2"...

    Keras names an unnamed optimizer after its class, numbered per process; a FusedAdam
    takes Adam's name (not "fused_adam") so its variables are named as a plain Adam's.
    keras.backend.get_uid counts with the same per-prefix counter Keras's naming uses.
    """
    taken = keras.backend.get_uid("adam") - 1
    return "adam" if taken == 0 else f"adam_{taken}"


class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam whose dense updates run TensorFlow's fused Adam kernel.

    Same arguments and state as keras.optimizers.Adam. Sparse gradients
    (IndexedSlices) and amsgrad use Keras's own update.
    """

    def __init__(self, *args, name=None, **kwargs):
        super().__init__(*args, name=name or adam_name(), **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        """Applies one Adam step to `variable` (a tf.Variable; under tf.distribute the
        component on the device being updated) from a dense `gradient` of its shape."""
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        m, v = private_apis.adam_moments(self, variable)
        local_step = tf.cast(self.iterations + 1, dtype)
        # Under tf.distribute `.handle` of a mirrored moment is this device's component.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=m.handle,
            v=v.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
