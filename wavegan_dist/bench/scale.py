"""`bench scale`: what the input has to deliver on TPU slices and 8-GPU hosts, against
what one host's prepared input pipeline was measured to deliver, and what a
checkpoint costs to write.

Needed real examples/s = utilization x peak bf16 FLOP/s x devices / FLOPs per real
example, where a generator step (n_critic critic updates on n_critic x batch real
examples, then one generator update) costs bench/flops.py's analytic FLOPs. FLOPs
grow linearly with the batch, so the rate needed does not depend on the batch; the
batch only decides the per-device batch. Checkpoint size is computed from the built
models' parameter counts: generator, critic, the generator's moving average and
Adam's two moments for each network, all float32.
"""

from __future__ import annotations

import dataclasses

PAPER_BATCH = 64
POD_PER_DEVICE_BATCH = 16  # assumed for multi-host slices: 64 over 16-64 devices is 1-4 each
N_CRITIC = 5
BYTES_PER_VALUE = 4  # float32 weights, EMA and Adam moments (also under --precision=bf16)


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """A slice or GPU cluster.

    Attributes:
      name: as people say it.
      devices: replicas (TPU chips with one TensorFlow device each, or GPUs).
      hosts: machines, each running one input pipeline.
      peak_tflops: assumed dense bf16 peak per device.
      source: where the peak and the layout come from.
    """

    name: str
    devices: int
    hosts: int
    peak_tflops: float
    source: str


V4 = "Cloud TPU v4 docs: 275 TFLOP/s bf16 per chip, 4 chips (8 TensorCores) per host"
V5E = (
    "Cloud TPU v5e docs: 197 TFLOP/s bf16 per chip; 4 chips per host assumed for "
    "multi-host slices (ct5lp-hightpu-4t)"
)
A100 = "NVIDIA A100 datasheet: 312 TFLOP/s dense bf16 per GPU, 8 GPUs per host"
ACCELERATORS = (
    Accelerator("v4-8", 4, 1, 275.0, V4),
    Accelerator("v4-32", 16, 4, 275.0, V4),
    Accelerator("v5e-64", 64, 16, 197.0, V5E),
    Accelerator("1x8 A100", 8, 1, 312.0, A100),
    Accelerator("8x8 A100", 64, 8, 312.0, A100),
)


def flops_per_real_example(
    slice_len: int = 16384, dim: int = 64, n_critic: int = N_CRITIC
) -> float:
    """Analytic FLOPs of a generator step divided by the real examples it reads."""
    from wavegan_dist.bench import flops
    from wavegan_dist.models.spec import ModelSpec

    spec = ModelSpec(slice_len=slice_len, dim=dim)
    step = n_critic * flops.critic_update_flops(spec, PAPER_BATCH) + flops.generator_update_flops(
        spec, PAPER_BATCH
    )
    return step / (n_critic * PAPER_BATCH)


def parameter_counts(slice_len: int = 16384, dim: int = 64) -> dict:
    """{"generator", "critic"}: trainable parameters of the built networks."""
    import numpy as np

    from wavegan_dist.models import ModelSpec, build_models

    generator, critic = build_models(ModelSpec(slice_len=slice_len, dim=dim))
    count = lambda model: int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return {"generator": count(generator), "critic": count(critic)}


def checkpoint_bytes(generator: int, critic: int) -> int:
    """Bytes of a checkpoint's values: both networks, the generator's EMA, and Adam's
    first and second moments of both networks (float32)."""
    return BYTES_PER_VALUE * (generator + critic + generator + 2 * (generator + critic))


def table(
    host_rate: float,
    example_flops: float,
    params: dict,
    utilization: float,
    write_mb_per_sec: float,
) -> list[dict]:
    """One row per accelerator.

    Args:
      host_rate: measured examples/s of one host's input pipeline.
      example_flops: FLOPs per real example (flops_per_real_example).
      params: parameter_counts().
      utilization: assumed fraction of peak.
      write_mb_per_sec: assumed checkpoint write bandwidth to gs://, MB/s (1e6 bytes).
    Returns:
      [{"accelerator", "devices", "hosts", "global_batch", "per_device_batch",
        "peak_tflops_per_device", "needed_examples_per_sec",
        "needed_examples_per_sec_per_host", "measured_examples_per_sec_per_host",
        "headroom", "checkpoint_mb", "checkpoint_write_seconds"}].
    """
    size = checkpoint_bytes(params["generator"], params["critic"])
    rows = []
    for acc in ACCELERATORS:
        batch = PAPER_BATCH if acc.hosts == 1 else POD_PER_DEVICE_BATCH * acc.devices
        needed = utilization * acc.peak_tflops * 1e12 * acc.devices / example_flops
        per_host = needed / acc.hosts
        rows.append(
            {
                "accelerator": acc.name,
                "devices": acc.devices,
                "hosts": acc.hosts,
                "global_batch": batch,
                "per_device_batch": batch / acc.devices,
                "peak_tflops_per_device": acc.peak_tflops,
                "needed_examples_per_sec": needed,
                "needed_examples_per_sec_per_host": per_host,
                "measured_examples_per_sec_per_host": host_rate,
                "headroom": host_rate / per_host,
                "checkpoint_mb": size / 1e6,
                "checkpoint_write_seconds": size / 1e6 / write_mb_per_sec,
            }
        )
    return rows


def format_table(report: dict) -> str:
    """The report of `bench scale` as text: assumptions, then one line per accelerator."""
    lines = [
        f"assumed: {report['utilization']:.0%} of peak bf16; global batch {PAPER_BATCH} on one "
        f"host, {POD_PER_DEVICE_BATCH} per device on multi-host slices; checkpoint writes at "
        f"{report['write_mb_per_sec']:,.0f} MB/s",
        f"computed: {report['flops_per_real_example'] / 1e9:,.1f} GFLOP per real example "
        f"(slice 16384, d=64, n_critic {N_CRITIC}); parameters: generator "
        f"{report['generator_parameters']:,}, critic {report['critic_parameters']:,}",
        f"measured: {report['measured_examples_per_sec_per_host']:,.0f} examples/s per host "
        f"({report['measured_from']})",
        f"{'accelerator':<10} {'devices':>7} {'hosts':>5} {'batch':>6} {'/device':>7} "
        f"{'peak TF/s':>9} {'needed ex/s':>11} {'per host':>9} {'headroom':>8} "
        f"{'ckpt MB':>8} {'write s':>7}",
    ]
    for r in report["rows"]:
        lines.append(
            f"{r['accelerator']:<10} {r['devices']:>7} {r['hosts']:>5} {r['global_batch']:>6} "
            f"{r['per_device_batch']:>7g} {r['peak_tflops_per_device']:>9.0f} "
            f"{r['needed_examples_per_sec']:>11,.0f} "
            f"{r['needed_examples_per_sec_per_host']:>9,.0f} {r['headroom']:>7.2f}x "
            f"{r['checkpoint_mb']:>8,.1f} {r['checkpoint_write_seconds']:>7.2f}"
        )
    lines.append("peaks: " + "; ".join(dict.fromkeys(a.source for a in ACCELERATORS)))
    return "\n".join(lines)
