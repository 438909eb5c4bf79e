"""Which input can feed which TPU, checked before the TPU is touched and again once it is.

TPUStrategy runs one client (this process). It calls the input's `dataset_fn` once per
host of the slice, in this process, and places that host's dataset ops on the host's
CPU, which is a separate TensorFlow server on every host but a TPU attached to this
VM ('local'). The deeplake path is a `from_generator` dataset: its Python runs only
here, so it can feed a 'local' single-host TPU and nothing else. The prepared path is
TensorFlow ops only and feeds any host, each pipeline reading its own shards.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from wavegan_dist.config import Config
from wavegan_dist.data import pipeline
from wavegan_dist.data.prepared.manifest import SELECTION
from wavegan_dist.data.prepared.writer import SHARD_MULTIPLE
from wavegan_dist.strategy import TpuInputError, is_remote_tpu

PREPARED_DEST = "gs://BUCKET/PREPARED"  # stands for the folder the user picks


def prepare_command(cfg: Config, hosts: int = 1) -> str:
    """The `prepare` command that writes cfg's selection for `hosts` input pipelines.

    Flags whose value is the Config default are left out; --shards is given only when
    prepare's automatic count (a multiple of 16) could be fewer than the hosts.
    """
    default, values = Config().to_dict(), cfg.to_dict()
    words = ["python -m wavegan_dist.prepare", f"--data={cfg.data}"]
    for name in (*SELECTION, "seed"):
        value = values[name]
        if value != default[name]:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            words.append(f"--{name}={shown}")
    words.append(f"--dest={PREPARED_DEST}")
    if hosts > SHARD_MULTIPLE:
        words.append(f"--shards={-(-hosts // SHARD_MULTIPLE) * SHARD_MULTIPLE}")
    return " ".join(words)


def check_tpu_input(hosts: int, remote: bool, prepared: bool, cfg: Config) -> None:
    """Refuses the deeplake (Python) input for a TPU it cannot feed.

    Args:
      hosts: hosts (input pipelines) of the TPU slice.
      remote: the TPU is reached over the network (a name or grpc://), not 'local'.
      prepared: cfg.data is a prepared folder (TensorFlow-only input).
      cfg: the run's configuration (for --data and the selection flags).
    Raises:
      TpuInputError (one line, with the prepare command to run) for the deeplake input
      on a multi-host slice or a remote TPU.
    """
    if prepared or (hosts <= 1 and not remote):
        return
    where = (
        f"the {hosts} hosts of this TPU slice"
        if hosts > 1
        else "a TPU reached over the network (by name or grpc://)"
    )
    local = "" if hosts > 1 else "run on the TPU VM itself (TPU_NAME=local, no --tpu), or "
    raise TpuInputError(
        f"--data={cfg.data} is read by the deeplake Python pipeline, which runs only in this "
        f"process and cannot feed {where}; {local}prepare it once with "
        f"`{prepare_command(cfg, hosts)}` and train with --data={PREPARED_DEST}"
    )


def replica_hosts(replica_devices: Sequence[str]) -> list[list[int]]:
    """The replica ids of each input worker (host), in the order TF numbers the workers.

    TPUStrategy keys its input workers by the host of each replica's device, in replica
    order (TF 2.17 distribute/tpu_strategy.py, TPUExtended.__init__, the
    `_device_input_worker_devices` OrderedDict), and input pipeline i of
    distribute_datasets_from_function is worker i.

    Args:
      replica_devices: one device name per replica, in replica order
        (strategy.extended.worker_devices).
    Returns:
      For each host, in worker order, the ids of its replicas.
    """
    hosts: dict[tuple, list[int]] = {}
    for replica, device in enumerate(replica_devices):
        spec = tf.DeviceSpec.from_string(device)
        hosts.setdefault((spec.job, spec.replica, spec.task), []).append(replica)
    return list(hosts.values())


def check_replica_hosts(replica_devices: Sequence[str]) -> int:
    """Checks that input pipeline i's replicas are those its batches are cut for.

    Both input paths give pipeline i of P the consecutive block of replicas
    pipeline.replica_block(R, P, i) (its share of every global batch, in replica
    order). A device assignment that interleaves replicas across hosts, or gives hosts
    unequal shares, would feed replicas batches meant for others, so it is refused.

    Args:
      replica_devices: one device name per replica, in replica order.
    Returns:
      The number of hosts (input pipelines).
    Raises:
      TpuInputError (one line) if a host's replicas are not its block.
    """
    groups = replica_hosts(replica_devices)
    for i, replicas in enumerate(groups):
        first, last = pipeline.replica_block(len(replica_devices), len(groups), i)
        if replicas != list(range(first, last)):
            raise TpuInputError(
                f"TPU host {i} of {len(groups)} holds replicas {_ids(replicas)}, but its input "
                f"pipeline feeds replicas {_ids(range(first, last))}: the input gives every "
                "host an equal block of consecutive replicas, and this TPU's device "
                "assignment does not; use the default one (a whole slice)"
            )
    return len(groups)


def _ids(ids) -> str:
    ids = list(ids)
    return ", ".join(map(str, ids)) if len(ids) <= 8 else f"{ids[0]}, {ids[1]}, ..., {ids[-1]}"


def check_tpu_strategy(strategy: tf.distribute.Strategy, prepared: bool, cfg: Config) -> None:
    """check_tpu_input and check_replica_hosts on a TPUStrategy's real topology, before
    any data or variable exists (also covers a strategy built elsewhere)."""
    hosts = check_replica_hosts(strategy.extended.worker_devices)
    check_tpu_input(hosts, is_remote_tpu(strategy.cluster_resolver), prepared, cfg)
