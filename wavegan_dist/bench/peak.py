"""The machine's measured fp32 peak: a large matmul and a large convolution in TensorFlow.

Peak is what this process can get out of the CPU with the same library and threads
the training step uses, measured in the same run (the machine is shared, so a
figure from another time says little): the faster of

- matmul: [2048, 2048] x [2048, 2048] fp32, 2 * 2048^3 FLOPs;
- conv: a stride-1 Conv1D "same", batch 16, length 4096, 64 -> 128 channels,
  kernel 25 (the critic's kernel), 2 * 16 * 4096 * 25 * 64 * 128 FLOPs.

Each is a compiled tf.function on the benchmark's first replica device, in the dtype
the timed updates compute in (float32, or bfloat16 for --precision=bf16), fetched to
the host to stop the clock. `PeakMeter.sample()` times each once; the benchmark calls it between its
other measurements and takes the median of each kind.
"""

from __future__ import annotations

import statistics
import time

import tensorflow as tf

MATMUL_N = 2048
CONV_SHAPE = dict(batch=16, length=4096, c_in=64, c_out=128, kernel=25)


def matmul_flops(n: int = MATMUL_N) -> int:
    """FLOPs of one [n, n] x [n, n] matmul."""
    return 2 * n**3


def conv_flops(batch: int, length: int, c_in: int, c_out: int, kernel: int) -> int:
    """FLOPs of one stride-1 "same" Conv1D (every output takes all taps)."""
    return 2 * batch * length * kernel * c_in * c_out


class PeakMeter:
    """Times the two peak kernels; keeps every sample.

    Args:
      device: where to run them (the benchmark's first replica device).
      matmul_n, conv_shape: sizes (tests use smaller ones).
      dtype: "float32" or "bfloat16", what the kernels compute in.
    """

    def __init__(
        self,
        device: str = "/cpu:0",
        matmul_n: int = MATMUL_N,
        conv_shape: dict | None = None,
        dtype: str = "float32",
    ):
        self.conv_shape = dict(conv_shape or CONV_SHAPE)
        self.dtype = dtype
        self.flops = {"matmul": matmul_flops(matmul_n), "conv": conv_flops(**self.conv_shape)}
        self.seconds: dict[str, list[float]] = {"matmul": [], "conv": []}
        s = self.conv_shape
        with tf.device(device):
            gen = tf.random.Generator.from_seed(0)
            a, b = (tf.cast(gen.normal([matmul_n, matmul_n]), dtype) for _ in range(2))
            x = tf.cast(gen.normal([s["batch"], s["length"], s["c_in"]]), dtype)
            w = tf.cast(gen.normal([s["kernel"], s["c_in"], s["c_out"]]) * 0.05, dtype)

        # A scalar comes back, so the host wait is the kernel, not a large copy; the sum
        # reads the whole result so no part of the kernel can be optimised away. Only the
        # scalar is cast (to float32, for bfloat16 kernels), not the whole result.
        @tf.function
        def matmul():
            with tf.device(device):
                return tf.cast(tf.reduce_sum(tf.linalg.matmul(a, b)), tf.float32)

        @tf.function
        def conv():
            with tf.device(device):
                return tf.cast(
                    tf.reduce_sum(tf.nn.conv1d(x, w, stride=1, padding="SAME")), tf.float32
                )

        self._fns = {"matmul": matmul, "conv": conv}
        for fn in self._fns.values():  # trace and warm up
            fn().numpy()

    def sample(self) -> None:
        """Times each kernel once."""
        for name, fn in self._fns.items():
            start = time.perf_counter()
            fn().numpy()
            self.seconds[name].append(time.perf_counter() - start)

    def gflops(self, name: str) -> float:
        """Median GFLOP/s of one kernel over the samples taken."""
        return self.flops[name] / statistics.median(self.seconds[name]) / 1e9

    def result(self) -> dict:
        """{"peak_gflops", "peak_source" ("matmul" or "conv"), "matmul_gflops",
        "conv_gflops", "peak_samples"}; medians over the samples (at least one each)."""
        if not self.seconds["matmul"]:
            self.sample()
        matmul, conv = self.gflops("matmul"), self.gflops("conv")
        source = "matmul" if matmul >= conv else "conv"
        return {
            "peak_gflops": max(matmul, conv),
            "peak_source": source,
            "matmul_gflops": matmul,
            "conv_gflops": conv,
            "peak_samples": len(self.seconds["matmul"]),
        }
