"""Strategy selection on this CPU-only machine (two logical CPUs, set up in conftest)."""

import pytest
import tensorflow as tf

from wavegan_dist import strategy as strategies
from wavegan_dist.errors import UserError


def test_cpu_and_mirrored_and_auto():
    cpu = strategies.make_strategy("cpu")
    assert isinstance(cpu, tf.distribute.OneDeviceStrategy) and cpu.num_replicas_in_sync == 1
    mirrored = strategies.make_strategy("mirrored", cpu_replicas=2)
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2
    assert "2 replica(s) in sync on CPU:0, CPU:1" in strategies.describe(mirrored)
    auto2 = strategies.make_strategy("auto", cpu_replicas=2)
    assert isinstance(auto2, tf.distribute.MirroredStrategy) and auto2.num_replicas_in_sync == 2
    auto1 = strategies.make_strategy("auto")
    assert isinstance(auto1, tf.distribute.OneDeviceStrategy)


def test_strategies_that_cannot_be_had_raise_user_errors(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="no TPU found"):
        strategies.make_strategy("tpu")
    with pytest.raises(UserError, match="no TPU answers at grpc://127.0.0.1:1"):
        strategies.make_strategy("tpu", tpu="grpc://127.0.0.1:1")
    with pytest.raises(UserError, match="needs TF_CONFIG"):
        strategies.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        strategies.make_strategy("multiworker")
    with pytest.raises(UserError, match="one device"):
        strategies.make_strategy("cpu", cpu_replicas=2)
    with pytest.raises(UserError, match="already initialised with 2"):
        strategies.configure_cpu_devices(4)
    # auto falls back from an unreachable TPU to the local devices, saying so.
    notes = []
    auto = strategies.make_strategy("auto", tpu="grpc://127.0.0.1:1", log=notes.append)
    assert auto.num_replicas_in_sync == 1 and "skipped the TPU" in notes[0]


@pytest.mark.slow
def test_mirrored_strategies_in_one_process_do_not_share_collective_keys(tmp_path):
    """Two MirroredStrategy runs in one process whose steps issue different collectives
    (n_critic 1, then 2): with TensorFlow's shared keys the second failed with "Shape
    mismatch in the collective instance 101"."""
    from conftest import TINY_TEST_FLAGS
    from wavegan_dist.config import make_config
    from wavegan_dist.training.loop import run_training

    for n_critic in (1, 2):
        cfg = make_config(
            "tiny",
            **{
                **TINY_TEST_FLAGS,
                "n_critic": n_critic,
                "train_steps": 2,
                "num_wavs": 0,
                "model_dir": str(tmp_path / str(n_critic)),
            },
        )
        # Default cross-device ops: the collective all-reduce (the path with the keys).
        result = run_training(cfg, strategies.mirrored(["/cpu:0", "/cpu:1"]), log=lambda _: None)
        assert result.step == 2 and result.replica_divergence == 0.0


def test_multiworker_all_reduce_is_nccl_on_gpus_and_the_ring_on_cpus():
    kind = tf.distribute.experimental.CommunicationImplementation
    gpu = strategies.multiworker_communication("GPU")
    cpu = strategies.multiworker_communication("CPU")
    assert gpu.implementation == kind.NCCL and cpu.implementation == kind.RING
