"""Choosing and building the tf.distribute strategy a run uses.

`make_strategy` is the one entry point. Every failure to get the strategy asked
for becomes a UserError that names what was tried, so the CLI can print one line.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import threading
import weakref
from urllib.parse import urlparse

import tensorflow as tf

from wavegan_dist import private_apis
from wavegan_dist.errors import UserError, first_line

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
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as err:  # runtime already initialised
        have = len(tf.config.list_logical_devices("CPU"))
        if have < n:
            raise UserError(
                f"cannot split the CPU into {n} logical devices: TensorFlow is already "
                f"initialised with {have}; call configure_cpu_devices({n}) before any "
                "TensorFlow op"
            ) from err


def _cpu_devices(n: int) -> list[str]:
    configure_cpu_devices(n)
    return [d.name for d in tf.config.list_logical_devices("CPU")[:n]]


def mirrored(devices=None, cross_device_ops=None) -> tf.distribute.MirroredStrategy:
    """tf.distribute.MirroredStrategy(devices, cross_device_ops) with collective keys no
    other MirroredStrategy of this process uses (see private_apis.with_own_collective_keys:
    a second strategy whose step reduces other shapes would otherwise fail with a
    collective shape mismatch).

    Args:
      devices: device names, or None for all GPUs (else the CPU).
      cross_device_ops: as for MirroredStrategy (None: its default).
    Returns:
      The strategy.
    """
    return private_apis.with_own_collective_keys(
        lambda: tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross_device_ops)
    )


def mirrored_on_cpus(n: int) -> tf.distribute.Strategy:
    """MirroredStrategy over the first `n` logical CPU devices (configure_cpu_devices(n)
    first), whatever GPUs there are. NCCL is GPU-only, so the reduction goes through
    /cpu:0."""
    return mirrored(_cpu_devices(n), tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0"))


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
        with socket.create_connection(
            (parsed.hostname, parsed.port or 8470), timeout=TPU_CONNECT_TIMEOUT_S
        ):
            pass
    except OSError as err:
        raise UserError(
            f"--strategy=tpu: no TPU answers at {address} ({err.strerror or err}); "
            "check --tpu and that the TPU is up"
        ) from err


class TpuInputError(UserError):
    """The run's input cannot feed the TPU found; `auto` stops on it rather than falling
    back to other devices."""


def tpu_hosts(resolver) -> int:
    """Hosts of the TPU that a TPUClusterResolver names, without connecting to it.

    The tasks of the resolver's job in its cluster_spec(): the Cloud TPU API's network
    endpoints of a named TPU (one per host), or the hosts of a comma-separated grpc://
    list; 'local' (a TPU attached to this VM) has an empty ClusterSpec and counts as 1.
    """
    spec = resolver.cluster_spec()
    tasks = (spec.as_dict() if spec else {}).get(resolver.task_type) or ()
    return max(1, len(tasks))


def is_remote_tpu(resolver) -> bool:
    """True when a TPUClusterResolver names a TPU reached over the network (by name or
    grpc://) rather than one attached to this process ('local', whose master() is '')."""
    return bool(resolver.master())


def _tpu_strategy(tpu: str, check_input=None) -> tf.distribute.Strategy:
    address = _tpu_address(tpu)
    if not address:
        raise UserError(
            "--strategy=tpu: no TPU found (tried --tpu, $TPU_NAME and the TPU VM devices "
            "/dev/accel*, /dev/vfio); pass --tpu=NAME or run on a Cloud TPU VM"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        if check_input is not None:
            # Before anything connects to the TPU: the topology is known from the
            # resolver alone (the Cloud TPU API's endpoints, or the grpc:// list).
            check_input(tpu_hosts(resolver), is_remote_tpu(resolver))
        if address != "local":
            for endpoint in resolver.cluster_spec().job_tasks(resolver.task_type):
                _check_grpc_reachable(f"grpc://{endpoint}")
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as err:
        reason = first_line(err, 200)
        raise UserError(
            f"--strategy=tpu: could not initialise the TPU '{address}' through "
            f"TPUClusterResolver: {reason}"
        ) from err


# Multi-worker failure detection. TensorFlow's coordination service (run by the leader,
# worker 0 or the chief) takes a heartbeat from every worker: one silent for
# MULTIWORKER_HEARTBEAT_TIMEOUT_S (killed, crashed, frozen, unreachable) is declared failed
# and every other worker's collectives are aborted, so their step raises UnavailableError
# instead of waiting forever; a worker that loses the leader fails the same way. A peer
# that dies in the middle of a collective is noticed at once (its connection resets).
# The survivor raises when its main thread next waits on a collective: at once if it is
# waiting, else after its current local work (a first step's tracing, a checkpoint).
# Measured on 2 CPU cores, SIGKILL to exit of the survivor: 1-5 s when the peers were in
# a collective, 9-14 s through the heartbeat, up to 20 s when it was still tracing.
MULTIWORKER_HEARTBEAT_TIMEOUT_S = 10
# No per-collective timeout (CommunicationOptions(timeout_seconds=...)): TF starts threads
# that sleep out the timeout for every collective (measured: 1,000 all-reduces with
# timeout_seconds=60 took a worker from 145 to 2,145 threads), and a timeout short enough
# to matter would also fire on legitimate waits (one worker tracing or writing a
# checkpoint while its peers already wait in the next all-reduce). The heartbeat above
# bounds a dead peer instead.

_PEER_RE = re.compile(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)")


def _multiworker_cluster() -> tuple[dict, str, int]:
    """Parses and checks TF_CONFIG; returns (cluster, task type, task index)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise UserError(
            "--strategy=multiworker needs TF_CONFIG describing the cluster and this "
            "worker's task (JSON with 'cluster' and 'task'); set it for every worker"
        )
    try:
        config = json.loads(raw)
        cluster = config["cluster"]
        if not isinstance(cluster, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"TF_CONFIG is not valid JSON with a 'cluster' key: {raw[:80]}") from err
    if "worker" not in cluster:
        raise UserError("TF_CONFIG has no 'worker' job: --strategy=multiworker needs one")
    task = config.get("task") or {}
    task_type, index = task.get("type"), task.get("index")
    if task_type not in ("worker", "chief") or not isinstance(index, int):
        raise UserError(
            f"TF_CONFIG's 'task' must name this process, like {{\"type\": "
            f'"worker", "index": 0}}; got {json.dumps(task)[:80]}'
        )
    hosts = cluster.get(task_type)
    if not isinstance(hosts, list) or not 0 <= index < len(hosts):
        raise UserError(
            f"TF_CONFIG's task {task_type}:{index} is not in its cluster "
            f"({task_type}: {len(hosts) if isinstance(hosts, list) else 0} task(s))"
        )
    return cluster, task_type, index


def _configure_coordination(cluster: dict) -> None:
    """Sets up TF's coordination service with this project's failure-detection bounds.

    MultiWorkerMirroredStrategy configures the service itself (with TF's defaults) unless
    it is already configured, so this must run first, before the runtime starts.
    """
    if private_apis.runtime_started():
        raise UserError(
            "--strategy=multiworker must be set up before TensorFlow runs its first op in "
            "this process (the runtime is already initialised); build the strategy first"
        )
    leader = "/job:chief/replica:0/task:0" if "chief" in cluster else "/job:worker/replica:0/task:0"
    private_apis.configure_coordination_service(
        leader,
        {job: len(cluster[job]) for job in ("chief", "worker") if job in cluster},
        heartbeat_timeout_ms=MULTIWORKER_HEARTBEAT_TIMEOUT_S * 1000,
    )


def _restore_sigterm() -> None:
    # Starting the cluster installs TF's SIGTERM preemption notifier, which swallows
    # SIGTERM (it only records a preemption notice for PreemptionCheckpointHandler, which
    # this project does not use): a worker would then ignore `kill` and a launcher's
    # SIGTERM. Put back the default, so SIGTERM stops a worker.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def multiworker_communication(device_type: str) -> tf.distribute.experimental.CommunicationOptions:
    """The collective implementation MultiWorkerMirroredStrategy gets on `device_type`.

    NCCL on GPUs, the gRPC ring otherwise. TF 2.17's AUTO does not pick NCCL by itself in
    TF2 code (it becomes the collectives' communication_hint "auto", and the runtime uses
    NCCL only for the hint "nccl"), so a GPU cluster must ask for it; NCCL does nothing on
    a CPU, where TF falls back to the ring anyway.

    Args:
      device_type: "GPU" or "CPU" (the workers' accelerator).
    Returns:
      tf.distribute.experimental.CommunicationOptions.
    """
    kind = tf.distribute.experimental.CommunicationImplementation
    return tf.distribute.experimental.CommunicationOptions(
        implementation=kind.NCCL if device_type.upper() == "GPU" else kind.RING
    )


# The options each MultiWorkerMirroredStrategy made here was built with (TF has no public
# getter for them), for `describe`.
_communication: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _multiworker_strategy(device_type: str) -> tf.distribute.Strategy:
    cluster, task_type, index = _multiworker_cluster()
    _configure_coordination(cluster)
    options = multiworker_communication(device_type)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (RuntimeError, ValueError, tf.errors.OpError) as err:
        reason = first_line(err, 200)
        raise UserError(
            f"--strategy=multiworker: worker {task_type}:{index} could not join the cluster "
            f"{json.dumps(cluster)[:160]}: {reason}"
        ) from err
    _restore_sigterm()
    _communication[strategy] = options
    return strategy


def cluster_failure_message(err: BaseException) -> str | None:
    """One line for an error by which TensorFlow reports a lost multi-worker peer, else None.

    Such errors are UnavailableError (a peer's connection reset, its heartbeat timed out,
    the coordination leader is unreachable) or DeadlineExceededError from a collective;
    the message names the peer as /job:NAME/replica:0/task:I where TF knows it.
    """
    if not isinstance(err, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError)):
        return None
    text = str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = next(
        (ln.split("aborted by:", 1)[1].strip() for ln in lines if "aborted by:" in ln),
        lines[0] if lines else type(err).__name__,
    )
    reason = re.sub(r"\s*\[type\.googleapis\.com/[^\]]*\]", "", reason)
    reason = re.sub(r"^Error reported from /job:\w+/task:\d+:\s*", "", reason)
    if "heartbeat timeout" in reason:
        reason = f"no heartbeat for {MULTIWORKER_HEARTBEAT_TIMEOUT_S} s"
    reason = reason[:160]
    peer = _PEER_RE.search(text)
    who = f"{peer.group(1)} {peer.group(2)}" if peer else "another worker"
    return (
        f"lost contact with {who} of the multi-worker cluster ({reason}); a worker "
        "failed or was stopped, so this one stops too. Restart every worker with the "
        "same flags to resume from the last checkpoint"
    )


def make_strategy(
    name: str, tpu: str = "", cpu_replicas: int = 1, log=print, check_tpu_input=None
) -> tf.distribute.Strategy:
    """Builds the strategy `name` asks for.

    Args:
      name: auto | mirrored | multiworker | tpu | cpu.
        auto: a TPU if one is reachable, else MirroredStrategy over all GPUs when
        there are two or more, else MirroredStrategy over `cpu_replicas` logical
        CPUs when that is > 1, else the single device (GPU if any, else CPU).
      tpu: TPU name or grpc:// address (tpu and auto).
      cpu_replicas: logical CPU devices for mirrored/auto when there is no GPU.
      log: called with one-line notes (for example a fallback taken by auto).
      check_tpu_input: for tpu and auto, called as check_tpu_input(hosts, remote) with
        the TPU's host count and whether it is reached over the network, before
        anything connects to it; it raises TpuInputError if the run's input cannot
        feed that TPU (auto then stops too, rather than training elsewhere).
    Returns:
      The strategy. Raises UserError if it cannot be had.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if name == "tpu":
        return _tpu_strategy(tpu, check_tpu_input)
    if name == "multiworker":
        return _multiworker_strategy("GPU" if gpus else "CPU")
    if name == "cpu":
        if cpu_replicas > 1:
            raise UserError(
                "--strategy=cpu runs on one device; for several CPU replicas "
                "use --strategy=mirrored --cpu_replicas=N"
            )
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if name == "mirrored":
        if gpus:
            if cpu_replicas > 1:
                log(f"note: {len(gpus)} GPU(s) present, --cpu_replicas={cpu_replicas} ignored")
            return mirrored()
        return mirrored_on_cpus(cpu_replicas)
    if name == "auto":
        if _tpu_address(tpu):
            try:
                return _tpu_strategy(tpu, check_tpu_input)
            except TpuInputError:
                raise
            except UserError as err:
                log(f"note: auto strategy skipped the TPU: {err}")
        if len(gpus) >= 2:
            return mirrored()
        if cpu_replicas > 1 and not gpus:
            return mirrored_on_cpus(cpu_replicas)
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    raise UserError(f"--strategy={name} is not one of auto, mirrored, multiworker, tpu, cpu")


def describe(strategy: tf.distribute.Strategy) -> str:
    """Returns one line naming the strategy, its replica count and its devices."""
    devices = [d.split("/device:")[-1] for d in strategy.extended.worker_devices]
    collectives = ""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        options = _communication.get(strategy)
        if options is not None:
            collectives = f", {options.implementation.name} all-reduce"
    return (
        f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s) in sync "
        f"on {', '.join(devices)}{collectives}"
    )
