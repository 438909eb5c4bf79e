"""Which input a TPU run may use, checked without a TPU: the topology comes from real
TPUClusterResolvers (a comma-separated grpc:// list is how TensorFlow names the hosts of
a slice without the Cloud TPU API) and from TPU device names as TPUStrategy lists them."""

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist import strategy as strategies
from wavegan_dist.config import make_config
from wavegan_dist.errors import UserError
from wavegan_dist.data.prepared.writer import prepare
from wavegan_dist.training import tpu_input

# Nothing listens on these ports: a run that got past the input check stops at the probe.
TWO_HOSTS = "grpc://127.0.0.1:1,grpc://127.0.0.1:2"
TINY = ["--preset=tiny", "--slice_len=1024", "--num_samples=40", "--dim=4", "--batch_size=8"]


def _devices(tasks):
    """TPU device names, one per replica in replica order, on the given host tasks."""
    seen = {}
    names = []
    for task in tasks:
        names.append(f"/job:worker/replica:0/task:{task}/device:TPU:{seen.get(task, 0)}")
        seen[task] = seen.get(task, 0) + 1
    return names


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, builtin_root):
    dest = str(tmp_path_factory.mktemp("tpu_prepared") / "p")
    prepare(
        make_config("tiny", **{**TINY_TEST_FLAGS, "slice_len": 1024, "num_samples": 40}),
        dest,
        shards=4,
        log=lambda _: None,
    )
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["tpu", "auto"])
def test_deeplake_input_on_a_multi_host_tpu_is_refused_before_connecting(tmp_path, strategy):
    model_dir = tmp_path / "run"
    line = error_line(
        run_module(
            "train",
            f"--strategy={strategy}",
            f"--tpu={TWO_HOSTS}",
            *TINY,
            f"--model_dir={model_dir}",
        )
    )
    assert line == (
        "error: --data=builtin is read by the deeplake Python pipeline, which runs only in "
        "this process and cannot feed the 2 hosts of this TPU slice; prepare it once with "
        "`python -m wavegan_dist.prepare --data=builtin --num_samples=40 --slice_len=1024 "
        "--dest=gs://BUCKET/PREPARED` and train with --data=gs://BUCKET/PREPARED"
    )
    assert not model_dir.exists()


@pytest.mark.slow
def test_deeplake_input_on_a_remote_tpu_is_refused_before_connecting(tmp_path):
    line = error_line(
        run_module(
            "train",
            "--strategy=tpu",
            "--tpu=grpc://127.0.0.1:1",
            *TINY,
            f"--model_dir={tmp_path / 'run'}",
        )
    )
    assert (
        "cannot feed a TPU reached over the network (by name or grpc://); run on the TPU "
        "VM itself (TPU_NAME=local, no --tpu), or prepare it once with `python -m "
        "wavegan_dist.prepare --data=builtin"
    ) in line


@pytest.mark.slow
def test_prepared_input_on_a_multi_host_tpu_passes_the_check(tmp_path, prepared):
    # It goes on to connect to the hosts, and stops at the first that does not answer.
    line = error_line(
        run_module(
            "train",
            "--strategy=tpu",
            f"--tpu={TWO_HOSTS}",
            *TINY,
            f"--data={prepared}",
            f"--model_dir={tmp_path / 'run'}",
        )
    )
    assert line.startswith("error: --strategy=tpu: no TPU answers at grpc://127.0.0.1:1 ")


def test_topology_read_from_real_resolvers():
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver
    local = resolver(tpu="local")
    assert strategies.tpu_hosts(local) == 1 and not strategies.is_remote_tpu(local)
    four = resolver(tpu=",".join(f"grpc://127.0.0.{i + 2}:8470" for i in range(4)))
    assert strategies.tpu_hosts(four) == 4 and strategies.is_remote_tpu(four)
    one = resolver(tpu="grpc://127.0.0.9:8470")
    assert strategies.tpu_hosts(one) == 1 and strategies.is_remote_tpu(one)


def test_single_host_tpu_vm_and_prepared_pods_pass_the_input_check():
    cfg = make_config("tiny", data="gcs://bucket/nsynth/train")
    local = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
    tpu_input.check_tpu_input(
        strategies.tpu_hosts(local), strategies.is_remote_tpu(local), False, cfg
    )  # deeplake on a single-host TPU VM
    tpu_input.check_tpu_input(4, True, True, cfg.replace(data="gs://bucket/prepared"))
    with pytest.raises(strategies.TpuInputError, match="cannot feed the 32 hosts"):
        tpu_input.check_tpu_input(32, True, False, cfg)


def test_prepare_command_carries_the_selection_and_enough_shards():
    cfg = make_config(
        "paper",
        data="gcs://b/nsynth/{split}",
        subset="gansynth",
        condition="pitch",
        velocity=(75, 100),
        seed=3,
    )
    assert tpu_input.prepare_command(cfg, hosts=32) == (
        "python -m wavegan_dist.prepare --data=gcs://b/nsynth/{split} --subset=gansynth "
        "--velocity=75,100 --condition=pitch --seed=3 --dest=gs://BUCKET/PREPARED --shards=32"
    )
    assert "--shards" not in tpu_input.prepare_command(cfg, hosts=4)


def test_replicas_in_blocks_per_host_pass():
    assert tpu_input.check_replica_hosts(_devices([0] * 8)) == 1
    assert tpu_input.check_replica_hosts(_devices([0] * 4 + [1] * 4 + [2] * 4 + [3] * 4)) == 4
    assert tpu_input.replica_hosts(_devices([0, 0, 1, 1])) == [[0, 1], [2, 3]]


def test_replicas_interleaved_across_hosts_are_refused_in_one_line():
    with pytest.raises(strategies.TpuInputError) as err:
        tpu_input.check_replica_hosts(_devices([0, 1, 0, 1]))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "TPU host 0 of 2 holds replicas 0, 2, but its input pipeline feeds replicas 0, 1: "
    )
    with pytest.raises(strategies.TpuInputError, match="holds replicas 0, 1, 2, but"):
        tpu_input.check_replica_hosts(_devices([0, 0, 0, 1]))  # unequal shares
    with pytest.raises(UserError, match="3 replicas cannot be split evenly over 2"):
        tpu_input.check_replica_hosts(_devices([0, 0, 1]))
