"""Choosing and building the tf.distribute strategy a run uses.

`make_strategy` is the one entry point. Every failure to get the strategy asked
for becomes a UserError that names what was tried, so the CLI can print one line.
"""

from __future__ import annotations

import glob
import json
import os
import socket
from urllib.parse import urlparse

import tensorflow as tf

from wavegan_dist.errors import UserError

TPU_CONNECT_TIMEOUT_S = 10.0


def configure_cpu_devices(n: int) -> None:
    """Splits the host CPU into `n` logical devices so MirroredStrategy can run on it.

    This must run before TensorFlow initialises its runtime (before the first op).
    If the runtime is already up with at least `n` logical CPUs, that is accepted
    (strategies then use the first `n`), which lets one test process serve several
    replica counts.

    Args:
      n: number of logical CPU devices wanted (>= 1).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    have = len(current) if current else 1
    if n <= have:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as err:  # runtime already initialised
        have = len(tf.config.list_logical_devices("CPU"))
        if have < n:
            raise UserError(
                f"cannot split the CPU into {n} logical devices: TensorFlow is already "
                f"initialised with {have}; call configure_cpu_devices({n}) before any "
                "TensorFlow op") from err


def _cpu_devices(n: int) -> list[str]:
    configure_cpu_devices(n)
    return [d.name for d in tf.config.list_logical_devices("CPU")[:n]]


def _mirrored_on_cpus(n: int) -> tf.distribute.Strategy:
    # NCCL is GPU-only; on CPUs the reduction goes through one device.
    return tf.distribute.MirroredStrategy(
        devices=_cpu_devices(n),
        cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0"))


def _on_tpu_vm() -> bool:
    return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _tpu_address(tpu: str) -> str:
    """The TPU to resolve: the flag, else $TPU_NAME, else 'local' on a TPU VM, else ''."""
    if tpu:
        return tpu
    if os.environ.get("TPU_NAME"):
        return os.environ["TPU_NAME"]
    return "local" if _on_tpu_vm() else ""


def _check_grpc_reachable(address: str) -> None:
    # initialize_tpu_system blocks forever on an address nobody listens on.
    parsed = urlparse(address)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 8470),
                                      timeout=TPU_CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise UserError(
            f"--strategy=tpu: no TPU answers at {address} ({err.strerror or err}); "
            "check --tpu and that the TPU is up") from err


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
    address = _tpu_address(tpu)
    if not address:
        raise UserError(
            "--strategy=tpu: no TPU found (tried --tpu, $TPU_NAME and the TPU VM devices "
            "/dev/accel*, /dev/vfio); pass --tpu=NAME or run on a Cloud TPU VM")
    if address.startswith("grpc://"):
        _check_grpc_reachable(address)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        master = resolver.master()
        if master.startswith("grpc://") and master != address:
            _check_grpc_reachable(master)  # a TPU name resolved to an address: probe it too
        if address != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(
            f"--strategy=tpu: could not initialise the TPU '{address}' through "
            f"TPUClusterResolver: {reason}") from err


def _multiworker_strategy() -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise UserError(
            "--strategy=multiworker needs TF_CONFIG describing the cluster and this "
            "worker's task (JSON with 'cluster' and 'task'); set it for every worker")
    try:
        cluster = json.loads(raw)["cluster"]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"TF_CONFIG is not valid JSON with a 'cluster' key: {raw[:80]}") from err
    if "worker" not in cluster:
        raise UserError("TF_CONFIG has no 'worker' job: --strategy=multiworker needs one")
    return tf.distribute.MultiWorkerMirroredStrategy()


def make_strategy(name: str, tpu: str = "", cpu_replicas: int = 1,
                  log=print) -> tf.distribute.Strategy:
    """Builds the strategy `name` asks for.

    Args:
      name: auto | mirrored | multiworker | tpu | cpu.
        auto: a TPU if one is reachable, else MirroredStrategy over all GPUs when
        there are two or more, else MirroredStrategy over `cpu_replicas` logical
        CPUs when that is > 1, else the single device (GPU if any, else CPU).
      tpu: TPU name or grpc:// address (tpu and auto).
      cpu_replicas: logical CPU devices for mirrored/auto when there is no GPU.
      log: called with one-line notes (for example a fallback taken by auto).
    Returns:
      The strategy. Raises UserError if it cannot be had.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if name == "tpu":
        return _tpu_strategy(tpu)
    if name == "multiworker":
        return _multiworker_strategy()
    if name == "cpu":
        if cpu_replicas > 1:
            raise UserError("--strategy=cpu runs on one device; for several CPU replicas "
                            "use --strategy=mirrored --cpu_replicas=N")
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if name == "mirrored":
        if gpus:
            if cpu_replicas > 1:
                log(f"note: {len(gpus)} GPU(s) present, --cpu_replicas={cpu_replicas} ignored")
            return tf.distribute.MirroredStrategy()
        return _mirrored_on_cpus(cpu_replicas)
    if name == "auto":
        if _tpu_address(tpu):
            try:
                return _tpu_strategy(tpu)
            except UserError as err:
                log(f"note: auto strategy skipped the TPU: {err}")
        if len(gpus) >= 2:
            return tf.distribute.MirroredStrategy()
        if cpu_replicas > 1 and not gpus:
            return _mirrored_on_cpus(cpu_replicas)
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    raise UserError(f"--strategy={name} is not one of auto, mirrored, multiworker, tpu, cpu")


def is_remote_tpu(strategy: tf.distribute.Strategy) -> bool:
    """True for a TPUStrategy whose TPU is reached over the network (a TPU Node), where
    Python input pipelines cannot run next to the TPU."""
    if not isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    master = strategy.cluster_resolver.master()
    return bool(master) and master not in ("local",) and not master.startswith("grpc://localhost")


def describe(strategy: tf.distribute.Strategy) -> str:
    """Returns one line naming the strategy, its replica count and its devices."""
    devices = [d.split("/device:")[-1] for d in strategy.extended.worker_devices]
    return (f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s) in sync "
            f"on {', '.join(devices)}")
