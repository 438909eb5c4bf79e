"""Every use of a TensorFlow or Keras name outside their public API, in one place.

Each function below exists because no public API does its job in the versions this
project pins (TensorFlow 2.17.1, Keras 3.15.1; checked against those installs and their
API documentation). pyproject.toml admits only those minor versions, and
tests/test_private_apis.py exercises every function here, so a release that renames or
reshapes one of these names fails that test with the name in its message rather than a
training run somewhere later. When a public API appears, move the caller to it and
delete the function.

A name that has gone raises PrivateApiChanged (a RuntimeError: it is a broken install or
an untested version, not a user mistake).
"""

from __future__ import annotations

import threading
from importlib import metadata
from typing import Callable

import tensorflow as tf

# The versions the names below were checked against (distribution -> version prefix).
CHECKED_VERSIONS = {"tensorflow": "2.17.", "keras": "3.15."}


class PrivateApiChanged(RuntimeError):
    """A private TensorFlow/Keras name this project relies on is missing or changed."""


def installed_versions() -> dict[str, str]:
    """{distribution: installed version} for CHECKED_VERSIONS' distributions.

    TensorFlow is installed as tensorflow, tensorflow-cpu or tensorflow-tpu; the first
    found is reported under "tensorflow".
    """
    found = {"tensorflow": tf.__version__}
    for name in CHECKED_VERSIONS:
        if name != "tensorflow":
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "not installed"
    return found


def _changed(name: str, err: BaseException) -> PrivateApiChanged:
    versions = ", ".join(f"{k} {v}" for k, v in installed_versions().items())
    checked = ", ".join(f"{k} {v}*" for k, v in CHECKED_VERSIONS.items())
    return PrivateApiChanged(
        f"{name} is not what wavegan_dist expects ({type(err).__name__}: {err}); installed: "
        f"{versions}; checked with: {checked}. Install with -c constraints.txt, or update "
        "wavegan_dist/private_apis.py and run tests/test_private_apis.py"
    )


# Collective keys each MirroredStrategy built by `with_own_collective_keys` gets to itself.
COLLECTIVE_KEY_RANGE = 100_000
_key_lock = threading.Lock()


def with_own_collective_keys(build: Callable[[], tf.distribute.MirroredStrategy]):
    """Calls `build()` (which constructs one tf.distribute.MirroredStrategy, or a subclass)
    so that the strategy's collectives use group keys no earlier strategy of this process
    used, and returns what it returned.

    Why private: TensorFlow numbers every MirroredStrategy's collective group and instance
    keys from the same start, and the process's collective executor remembers each key's
    tensor shapes; a second MirroredStrategy whose step reduces other shapes (another
    model, another n_critic) then fails with "Shape mismatch in the collective instance".
    A process that builds one strategy (every CLI run) never meets this; a process that
    builds several (the tests, library callers, the benchmarks) does. The only way to move
    the keys is the class attribute `MirroredStrategy._collective_key_base`, which
    MirroredExtended reads once while it is constructed ("only set this in tests", TF's
    source says); ReductionToOneDevice avoids collectives but is not what GPUs should use,
    and under XLA TF uses the collectives whatever cross_device_ops says.
    """
    with _key_lock:
        try:
            base = tf.distribute.MirroredStrategy._collective_key_base
        except AttributeError as err:
            raise _changed("tf.distribute.MirroredStrategy._collective_key_base", err) from err
        if not isinstance(base, int):
            raise _changed(
                "tf.distribute.MirroredStrategy._collective_key_base",
                TypeError(f"it is a {type(base).__name__}, not an int"),
            )
        tf.distribute.MirroredStrategy._collective_key_base = base + COLLECTIVE_KEY_RANGE
        return build()


def _eager_context():
    try:
        from tensorflow.python.eager import context

        return context.context()
    except (ImportError, AttributeError) as err:
        raise _changed("tensorflow.python.eager.context.context()", err) from err


def runtime_started() -> bool:
    """True once TensorFlow's runtime is initialised in this process (after the first op,
    or anything that lists logical devices).

    Why private: the public calls that could tell (tf.config.list_logical_devices and the
    like) start the runtime themselves; the eager context's `_context_handle` is set exactly
    when it has started.
    """
    ctx = _eager_context()
    try:
        return ctx._context_handle is not None
    except AttributeError as err:
        raise _changed("the eager context's _context_handle", err) from err


def configure_coordination_service(
    leader: str, jobs: dict[str, int], heartbeat_timeout_ms: int
) -> None:
    """Sets up TensorFlow's coordination service (standalone, health check on) before the
    runtime starts, so MultiWorkerMirroredStrategy uses it instead of TF's defaults.

    Args:
      leader: the leader task, like "/job:chief/replica:0/task:0".
      jobs: {job name: number of tasks} of the cluster.
      heartbeat_timeout_ms: how long a silent task is waited for before the cluster fails.

    Why private: TF 2.17 has no public way to set the coordination service's heartbeat
    timeout; MultiWorkerMirroredStrategy configures the service itself (with TF's defaults)
    unless the eager context already holds a configuration, and that context and the
    CoordinatedJob proto are importable only from tensorflow.python and tensorflow.tsl.
    """
    ctx = _eager_context()
    try:
        from tensorflow.tsl.protobuf import coordination_config_pb2

        coordinated = [
            coordination_config_pb2.CoordinatedJob(name=name, num_tasks=count)
            for name, count in jobs.items()
        ]
        ctx.configure_coordination_service(
            service_type="standalone",
            service_leader=leader,
            enable_health_check=True,
            heartbeat_timeout_in_ms=heartbeat_timeout_ms,
            coordinated_jobs=coordinated,
        )
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise _changed("the eager context's configure_coordination_service", err) from err


def tfrecord_reader(path: str) -> Callable[[int], bytes]:
    """A reader of one TFRecord file's records by byte offset: read(offset) -> the record's
    data bytes, after checking its length and data CRCs (tf.errors.DataLossError when they
    do not match; OutOfRangeError past the end).

    Why private: it is the only TF reader that goes on after a corrupt record (it reads one
    record at a given offset, checking the CRCs natively); tf.data.TFRecordDataset stops at
    the first bad record and tf.io has no offset reader. It lives at
    tensorflow.python.lib.io.tf_record.tf_record_random_reader.
    """
    try:
        from tensorflow.python.lib.io.tf_record import tf_record_random_reader
    except ImportError as err:
        raise _changed("tensorflow.python.lib.io.tf_record.tf_record_random_reader", err) from err
    reader = tf_record_random_reader(path)

    def read(offset: int) -> bytes:
        record, _ = reader.read(offset)
        return record

    return read


def adam_moments(optimizer, variable) -> tuple:
    """(first moment m, second moment v) that keras.optimizers.Adam `optimizer` keeps for
    `variable` (one of the variables it was built with; under tf.distribute the variable
    update_step is given).

    Why private: Keras 3 has no public accessor for an optimizer's per-variable state (Keras
    2's get_slot is gone); Adam keeps the moments in `_momentums` and `_velocities`, indexed
    by `_get_variable_index`, the same calls Keras's own optimizers and its documented
    custom-optimizer example make. Reading Adam's own variables, rather than creating new
    ones, keeps the checkpoint layout a plain Adam's.
    """
    try:
        index = optimizer._get_variable_index(variable)
        return optimizer._momentums[index], optimizer._velocities[index]
    except (AttributeError, KeyError, IndexError, TypeError) as err:
        raise _changed("keras Adam's _get_variable_index/_momentums/_velocities", err) from err
