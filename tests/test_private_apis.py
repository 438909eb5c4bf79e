"""Every private TensorFlow/Keras name wavegan_dist uses (all in wavegan_dist/private_apis.py)
still exists and still behaves as the project relies on, in the installed versions.

A failure here means a TensorFlow or Keras release changed a private name: update
private_apis.py (or move its caller to a public API) before using that release.
"""

import inspect
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from wavegan_dist import private_apis
from wavegan_dist.training.optimizers import FusedAdam


def test_installed_versions_are_the_checked_ones():
    installed = private_apis.installed_versions()
    for name, prefix in private_apis.CHECKED_VERSIONS.items():
        assert installed[name].startswith(prefix), (
            f"{name} {installed[name]} is installed, but wavegan_dist/private_apis.py was "
            f"checked with {name} {prefix}*: check each of its names against this version"
        )


def test_strategies_with_own_collective_keys_reduce_different_shapes():
    """Two MirroredStrategy with TF's shared keys: the second all-reduce of another shape
    failed with "Shape mismatch in the collective instance"."""
    for n in (2, 3):
        strategy = private_apis.with_own_collective_keys(
            lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        )
        reduce = tf.function(
            lambda: strategy.run(
                lambda: tf.distribute.get_replica_context().all_reduce("sum", tf.ones([n]))
            )
        )
        got = strategy.experimental_local_results(reduce())[0].numpy()
        np.testing.assert_array_equal(got, np.full([n], 2.0))


@pytest.mark.slow
def test_runtime_started_is_false_before_the_first_op_and_true_after():
    code = (
        "import tensorflow as tf; from wavegan_dist import private_apis as p; "
        "before = p.runtime_started(); tf.constant(1.0) + 1; "
        "print(before, p.runtime_started())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True"]


def test_coordination_service_takes_the_settings_passed():
    from tensorflow.python.eager import context
    from tensorflow.tsl.protobuf import coordination_config_pb2

    wanted = {
        "service_type",
        "service_leader",
        "enable_health_check",
        "heartbeat_timeout_in_ms",
        "coordinated_jobs",
    }
    params = set(inspect.signature(context.context().configure_coordination_service).parameters)
    assert wanted <= params, f"configure_coordination_service lost {wanted - params}"
    job = coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=2)
    assert (job.name, job.num_tasks) == ("worker", 2)


def test_tfrecord_reader_reads_by_offset_and_reports_a_corrupt_record(tmp_path):
    path = str(tmp_path / "r.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in (b"first", b"second!"):
            writer.write(record)
    second = 12 + len(b"first") + 4  # length + its CRC, data, data CRC
    read = private_apis.tfrecord_reader(path)
    assert (read(second), read(0)) == (b"second!", b"first")
    raw = bytearray(open(path, "rb").read())
    raw[12] ^= 0xFF  # first record's data: its CRC no longer matches
    open(path, "wb").write(bytes(raw))
    read = private_apis.tfrecord_reader(path)
    with pytest.raises(tf.errors.DataLossError):
        read(0)
    assert read(second) == b"second!"


@pytest.mark.parametrize("optimizer", [keras.optimizers.Adam, FusedAdam])
def test_adam_moments_are_the_first_and_second_moments(optimizer):
    beta_1, beta_2 = 0.5, 0.9
    opt = optimizer(learning_rate=1e-3, beta_1=beta_1, beta_2=beta_2)
    a, b = tf.Variable([1.0, 2.0]), tf.Variable([[3.0]])
    opt.build([a, b])
    g = tf.constant([0.5, -2.0])
    opt.apply_gradients([(g, a), (tf.constant([[1.0]]), b)])
    m, v = private_apis.adam_moments(opt, a)
    np.testing.assert_allclose(m.numpy(), (1 - beta_1) * g.numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.numpy(), (1 - beta_2) * g.numpy() ** 2, rtol=1e-6)
    assert private_apis.adam_moments(opt, b)[0].shape == (1, 1)


def test_a_vanished_name_says_what_changed_and_what_to_do():
    with pytest.raises(
        private_apis.PrivateApiChanged,
        match=r"_momentums/_velocities.*installed: tensorflow 2\.17.*"
        r"checked with: .*constraints\.txt",
    ):
        private_apis.adam_moments(object(), tf.Variable(1.0))


def test_pyproject_admits_the_pinned_versions_and_no_untested_minor():
    """keras was `>=3.5,<4`: it admitted 3.16+, whose internals private_apis never saw."""
    import os
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    pins = {}
    with open(os.path.join(root, "constraints.txt")) as f:
        for line in f:
            if "==" in line and not line.startswith("#"):
                name, version = line.split("#")[0].strip().split("==")
                pins[name.lower()] = Version(version)
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [
        Requirement(r) for extra in project["optional-dependencies"].values() for r in extra
    ]
    for req in requirements:
        pin = pins.get(req.name.lower())
        assert pin is not None, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pin, prereleases=True), f"{req} excludes the pin {pin}"
        upper = Version(f"{pin.major + 1}")
        if req.name.lower() in (
            "tensorflow",
            "tensorflow-cpu",
            "tensorflow-tpu",
            "keras",
            "deeplake",
        ):
            upper = Version(f"{pin.major}.{pin.minor + 1}")
        assert not req.specifier.contains(upper), f"{req} admits the untested {upper}"
