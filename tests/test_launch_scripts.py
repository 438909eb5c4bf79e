"""The launch scripts under launch/, run with bash as a user would, without gcloud or GPUs.

tpu_vm.sh is checked through --dry-run (the printed commands) and through a stand-in
`gcloud` that records its calls; multi_host_gpu.sh through --dry-run and a stand-in
`python` that reports the TF_CONFIG and argv it was exec'd with.
"""

import glob
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(REPO, "launch")
TPU_VM = os.path.join(LAUNCH, "tpu_vm.sh")
MULTI_HOST = os.path.join(LAUNCH, "multi_host_gpu.sh")
BASH = shutil.which("bash") or "/bin/bash"  # absolute: some tests run with a bare PATH
# Google's TF 2.17 TPU VM jobs install tensorflow-tpu (and its libtpu==2.17.x) from this index
# (ml-auto-solutions a96327ca, dags/solutions_team/configs/tensorflow/common.py, install_tf).
LIBTPU_TF_INDEX = "https://storage.googleapis.com/libtpu-tf-releases/index.html"
PINNED_TPU_INSTALL = f'pip install -c constraints.txt ".[tpu]" -f {LIBTPU_TF_INDEX}'
# Their env for a TF 2.17 run (common.py, export_env_variables) and the pods' TPU worker
# (common.py, set_up_pjrt), minus the Model Garden and DLRM-only settings.
XLA_FLAGS = (
    "--tf_mlir_enable_mlir_bridge=true "
    "--tf_mlir_enable_convert_control_to_data_outputs_pass=true "
    "--tf_mlir_enable_merge_control_flow_pass=true"
)
GRPC_TPU_WORKER = "gcr.io/cloud-tpu-v2-images/grpc_tpu_worker:tf-2.17.0-pjrt"
# Settings the scripts read from the environment: cleared so the caller's do not leak in.
SCRIPT_ENV = (
    "BUCKET",
    "RUN_NAME",
    "TPU_NAME",
    "ZONE",
    "ACCELERATOR_TYPE",
    "RUNTIME_VERSION",
    "PROJECT",
    "TPU_PYTHON",
    "TF_CONFIG",
    "CPU_REPLICAS",
)


def _env(path=None, **extra):
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    if path is not None:
        env["PATH"] = path
    env.update(extra)
    return env


def _run(script, *args, env=None, timeout=60):
    return subprocess.run(
        [BASH, script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else _env(),
        cwd=REPO,
    )


def _one_error_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _assert_refused(script, args, needle):
    """A dry run with bad input: exit 2, one error line containing needle, nothing on stdout."""
    proc = _run(script, "--dry-run", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in _one_error_line(proc)
    assert proc.stdout == ""


def _commands(stdout):
    """The dry run's command lines (comments dropped), each split as a shell would."""
    return [shlex.split(line) for line in stdout.splitlines() if line and not line[0] == "#"]


def _tool_dir(tmp_path, names):
    """A folder holding links to just these system tools, for a PATH without gcloud."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in names:
        for folder in ("/usr/bin", "/bin"):
            if os.path.exists(os.path.join(folder, name)):
                os.symlink(os.path.join(folder, name), d / name)
                break
    return str(d)


@pytest.mark.parametrize(
    "script", sorted(glob.glob(os.path.join(LAUNCH, "*.sh"))), ids=os.path.basename
)
def test_launch_scripts_parse_and_are_executable(script):
    proc = subprocess.run([BASH, "-n", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.stat(script).st_mode & stat.S_IXUSR, f"{script} is not executable"
    with open(script) as f:
        text = f.read()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


def test_all_expected_launch_scripts_exist():
    for name in ("single_host.sh", "multi_host_gpu.sh", "tpu_vm.sh", "README.md"):
        assert os.path.exists(os.path.join(LAUNCH, name)), name


# --- tpu_vm.sh ---------------------------------------------------------------------------


def test_tpu_dry_run_prints_create_copy_install_and_train(tmp_path):
    # No gcloud on PATH: a dry run must not need it.
    path = _tool_dir(tmp_path, ["dirname"])
    proc = _run(
        TPU_VM,
        "--bucket=my-bucket",
        "--name=paper-v4",
        "--dry-run",
        "--",
        "--preset=tiny",
        "--train_steps=1000",
        env=_env(path=path),
    )
    assert proc.returncode == 0, proc.stderr
    cmds = _commands(proc.stdout)
    gcloud = [c for c in cmds if c[0] == "gcloud"]
    verbs = [c[4] for c in gcloud]
    assert [c[:4] for c in gcloud] == [["gcloud", "compute", "tpus", "tpu-vm"]] * len(gcloud)
    assert verbs == ["describe", "create", "start", "scp", "ssh", "ssh"]  # no delete
    describe, create, _, scp, setup, train = gcloud

    assert create[5] == "wavegan-tpu"
    assert {"--zone=us-central2-b", "--accelerator-type=v4-8", "--version=v2-alpha-tpuv5"} <= set(
        create
    )
    assert not any(a.startswith("--project") for a in create)  # gcloud's default project

    tar = next(c for c in cmds if c[0] == "tar")
    tarball = tar[tar.index("-czf") + 1]
    assert tar[-3:] == ["-C", REPO, "."]
    assert {"--exclude=./.git", "--exclude=./.venv", "--exclude=./runs"} <= set(tar)
    assert scp[5:7] == [tarball, "wavegan-tpu:wavegan_dist_src.tar.gz"]
    assert "--worker=all" in scp and "--zone=us-central2-b" in scp

    assert setup[5] == train[5] == "wavegan-tpu"
    assert "--worker=all" in setup and "--worker=0" in train
    setup_cmd = next(a for a in setup if a.startswith("--command="))
    assert PINNED_TPU_INSTALL in setup_cmd
    assert "python3.11 -m venv .venv" in setup_cmd and ". .venv/bin/activate" in setup_cmd
    assert "tar -xzf ~/wavegan_dist_src.tar.gz" in setup_cmd

    train_cmd = next(a for a in train if a.startswith("--command="))
    assert "tee -a logs/paper-v4.log" in train_cmd
    remote = shlex.split(train_cmd[len("--command=") :].split(" 2>&1 ")[0].split(" && ")[-1])
    assert remote == [
        "python",
        "-m",
        "wavegan_dist.train",
        "--strategy=tpu",
        "--data=gcs://my-bucket/nsynth/{split}",
        "--model_dir=gs://my-bucket/runs/paper-v4",
        "--preset=tiny",
        "--train_steps=1000",
    ]


def test_tpu_dry_run_takes_settings_from_environment_and_flags():
    env = _env(
        BUCKET="gs://env-bucket/",
        RUN_NAME="from-env",
        TPU_NAME="my-tpu",
        ZONE="europe-west4-a",
        ACCELERATOR_TYPE="v3-8",
        RUNTIME_VERSION="tpu-vm-tf-2.17.1-pjrt",
        PROJECT="my-proj",
    )
    proc = _run(
        TPU_VM,
        "--dry-run",
        "--delete",
        "--spot",
        "--zone",
        "us-central1-a",
        "--model_dir=gs://other/run",
        "--",
        "--seed=3",
        "--sample_every=it's 5",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    gcloud = [c for c in _commands(proc.stdout) if c[0] == "gcloud"]
    assert [c[4] for c in gcloud] == ["describe", "create", "start", "scp", "ssh", "ssh", "delete"]
    for c in gcloud:
        assert "--project=my-proj" in c and "--zone=us-central1-a" in c  # flag beats $ZONE
        assert "my-tpu" in c[5] or c[6].startswith("my-tpu:")  # scp: SRC my-tpu:DEST
    create = gcloud[1]
    assert {"--accelerator-type=v3-8", "--version=tpu-vm-tf-2.17.1-pjrt", "--spot"} <= set(create)
    assert "--quiet" in gcloud[-1]
    train_cmd = next(a for a in gcloud[5] if a.startswith("--command="))
    remote = shlex.split(train_cmd[len("--command=") :].split(" 2>&1 ")[0].split(" && ")[-1])
    assert remote[3:] == [
        "--strategy=tpu",
        "--data=gcs://env-bucket/nsynth/{split}",
        "--model_dir=gs://other/run",
        "--seed=3",
        "--sample_every=it's 5",
    ]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--name=run1"], "no bucket"),
        (["--bucket=my-bucket"], "no run name"),
        (["--bucket=my-bucket", "--name=run 1"], "run name"),
        (["--bucket=my-bucket", "--name=r", "--tpu=Bad_Name"], "TPU name"),
        (["--bucket=my-bucket", "--name=r", "--frobnicate"], "unknown option"),
        (["--bucket=my-bucket", "--name=r", "--", "--strategy=mirrored"], "set by this script"),
        (["--bucket=my-bucket", "--name=r", "--", "--model_dir=x"], "set by this script"),
    ],
)
def test_tpu_bad_settings_give_one_error_line_and_exit_2(args, needle):
    _assert_refused(TPU_VM, args, needle)


def test_tpu_without_gcloud_gives_one_error_line(tmp_path):
    path = _tool_dir(tmp_path, ["dirname"])
    proc = _run(TPU_VM, "--bucket=my-bucket", "--name=r", env=_env(path=path))
    assert proc.returncode == 2
    assert "gcloud not found" in _one_error_line(proc)


def test_tpu_help_exits_0():
    proc = _run(TPU_VM, "--help")
    assert proc.returncode == 0 and "usage: launch/tpu_vm.sh" in proc.stdout
    assert "--dry-run" in proc.stdout and "--delete" in proc.stdout


STUB_GCLOUD = r"""#!{python}
import json, os, sys, tarfile
args = sys.argv[1:]
entry = {{"args": args}}
verb = args[3] if len(args) > 3 else ""
if verb == "scp":
    with tarfile.open(args[4]) as t:
        entry["members"] = t.getnames()
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps(entry) + "\n")
if verb == "describe":
    state = os.environ.get("STUB_STATE", "")
    if not state:
        sys.exit(1)
    print(state + "\tv4-8")
if verb == "ssh" and "wavegan_dist.train" in " ".join(args):
    print("training output line", flush=True)
    import time; time.sleep(float(os.environ.get("STUB_TRAIN_SLEEP", "0")))
    sys.exit(int(os.environ.get("STUB_TRAIN_RC", "0")))
"""


def _stub_gcloud(tmp_path, **settings):
    bin_dir = tmp_path / "stub_bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(STUB_GCLOUD.format(python=sys.executable))
    gcloud.chmod(0o755)
    log = tmp_path / "gcloud_calls.jsonl"
    env = _env(
        path=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        STUB_LOG=str(log),
        TMPDIR=str(tmp_path),
        **settings,
    )
    return env, log


def _calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_tpu_run_creates_copies_installs_trains_and_deletes(tmp_path):
    env, log = _stub_gcloud(tmp_path, STUB_TRAIN_RC="3")
    proc = _run(TPU_VM, "--bucket=my-bucket", "--name=r1", "--delete", "--", "--seed=1", env=env)
    calls = _calls(log)
    assert [c["args"][3] for c in calls] == ["describe", "create", "scp", "ssh", "ssh", "delete"]
    members = calls[2]["members"]
    assert "./pyproject.toml" in members and "./constraints.txt" in members
    assert "./wavegan_dist/train.py" in members and "./launch/tpu_vm.sh" in members
    assert not [
        m
        for m in members
        if m.split("/")[1:2] in ([".git"], [".venv"], ["runs"])
        or "__pycache__" in m
        or ".egg-info" in m
    ]
    assert "training output line" in proc.stdout  # streamed back
    assert proc.returncode == 3  # the training's status, after the VM was deleted
    assert "deleting TPU VM wavegan-tpu" in proc.stderr
    assert not [p for p in os.listdir(tmp_path) if p.startswith("tmp")]  # tarball folder removed


def test_tpu_run_reuses_and_starts_a_stopped_vm_and_keeps_it(tmp_path):
    env, log = _stub_gcloud(tmp_path, STUB_STATE="STOPPED")
    proc = _run(TPU_VM, "--bucket=my-bucket", "--name=r2", env=env)
    assert proc.returncode == 0, proc.stderr
    assert [c["args"][3] for c in _calls(log)] == ["describe", "start", "scp", "ssh", "ssh"]
    assert "reusing TPU VM wavegan-tpu (state STOPPED, v4-8)" in proc.stderr


def test_tpu_run_stopped_by_sigterm_still_deletes_the_vm(tmp_path):
    env, log = _stub_gcloud(tmp_path, STUB_TRAIN_SLEEP="60")
    proc = subprocess.Popen(
        [BASH, TPU_VM, "--bucket=my-bucket", "--name=r3", "--delete"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not (
            log.exists() and [c["args"][3] for c in _calls(log)].count("ssh") == 2
        ):
            time.sleep(0.1)
        time.sleep(0.5)  # let the stub reach its sleep
        os.killpg(proc.pid, signal.SIGTERM)  # what a scheduler or `kill` does
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert [c["args"][3] for c in _calls(log)] == [
        "describe",
        "create",
        "scp",
        "ssh",
        "ssh",
        "delete",
    ]
    assert proc.returncode == 143, err


def _dry_run_steps(accelerator, *args):
    """{create, scp, setup, train}: the dry run's gcloud commands for `accelerator`; setup
    and train as (ssh args, remote command line)."""
    proc = _run(
        TPU_VM, "--bucket=my-bucket", "--name=r", f"--accelerator={accelerator}", "--dry-run", *args
    )
    assert proc.returncode == 0, proc.stderr
    gcloud = [c for c in _commands(proc.stdout) if c[0] == "gcloud"]
    _, create, _, scp, setup, train = gcloud

    def remote(ssh):
        return next(a for a in ssh if a.startswith("--command="))[len("--command=") :]

    return dict(
        create=create,
        scp=scp,
        setup=(setup, remote(setup)),
        train=(train, remote(train)),
        stderr=proc.stderr,
    )


def _train_env(remote):
    """The `export` words of the remote train line, as {name: value}."""
    env = {}
    for part in remote.split(" && "):
        if part.startswith("export ") and "$(" not in part:
            for word in shlex.split(part)[1:]:
                name, _, value = word.partition("=")
                env[name] = value
    return env


def _train_argv(remote):
    return shlex.split(remote.split(" 2>&1 ")[0].split(" && ")[-1])


@pytest.mark.parametrize(
    "accelerator, image", [("v4-8", "v2-alpha-tpuv5"), ("v5litepod-8", "v2-alpha-tpuv5-lite")]
)
def test_tpu_single_host_set_up_follows_googles_tf_2_17_jobs(accelerator, image):
    steps = _dry_run_steps(accelerator)
    assert f"--accelerator-type={accelerator}" in steps["create"]
    assert f"--version={image}" in steps["create"]
    assert "--worker=all" in steps["scp"]
    (setup, install), (train, remote) = steps["setup"], steps["train"]
    assert "--worker=all" in setup and PINNED_TPU_INSTALL in install
    assert "tpu-runtime" not in install  # a single host has no TPU workers to serve
    assert "--worker=0" in train and "--worker=all" not in train
    env = _train_env(remote)
    # PJRT on the VM's own TPU; libtpu.so is looked up in the venv when the run starts.
    assert env["TPU_NAME"] == "local" and env["NEXT_PLUGGABLE_DEVICE_USE_C_API"] == "true"
    assert (
        'export TF_PLUGGABLE_DEVICE_LIBRARY_PATH=$(python -c "import libtpu; '
        'print(list(libtpu.__path__)[0])")/libtpu.so'
    ) in remote.split(" && ")
    assert 'test -f "$TF_PLUGGABLE_DEVICE_LIBRARY_PATH"' in remote
    assert env["TF_XLA_FLAGS"] == XLA_FLAGS and "TPU_LOAD_LIBRARY" not in env
    assert _train_argv(remote)[:5] == [
        "python",
        "-m",
        "wavegan_dist.train",
        "--strategy=tpu",
        "--data=gcs://my-bucket/nsynth/{split}",
    ]


def test_tpu_pod_slice_trains_on_worker_0_with_the_tpu_name_and_prepared_data():
    steps = _dry_run_steps(
        "v4-32", "--tpu=pod-tpu", "--data=gs://my-bucket/prepared/nsynth", "--", "--train_steps=10"
    )
    assert {"--accelerator-type=v4-32", "--version=v2-alpha-tpuv5"} <= set(steps["create"])
    assert "--worker=all" in steps["scp"]
    (setup, install), (train, remote) = steps["setup"], steps["train"]
    assert "--worker=all" in setup and PINNED_TPU_INSTALL in install
    # Every host runs TF 2.17's gRPC TPU worker, which the client on worker 0 drives.
    assert (
        f'sudo sed -i "s|TF_DOCKER_URL=.*|TF_DOCKER_URL={GRPC_TPU_WORKER}\\"|" '
        "/etc/systemd/system/tpu-runtime.service; sudo systemctl daemon-reload && "
        "sudo systemctl restart tpu-runtime"
    ) in install
    assert "--worker=0" in train and "--worker=all" not in train
    env = _train_env(remote)
    assert env == {"TF_XLA_FLAGS": XLA_FLAGS, "TPU_NAME": "pod-tpu", "TPU_LOAD_LIBRARY": "0"}
    assert _train_argv(remote) == [
        "python",
        "-m",
        "wavegan_dist.train",
        "--strategy=tpu",
        "--data=gs://my-bucket/prepared/nsynth",
        "--model_dir=gs://my-bucket/runs/r",
        "--train_steps=10",
    ]
    assert "training runs on worker 0 only" in steps["stderr"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["--accelerator=v4-32"],
            "v4-32 is a multi-host pod slice: pass --data=gs://BUCKET/PREPARED",
        ),
        (
            ["--accelerator=v5p-32", "--data=gcs://my-bucket/nsynth/{split}"],
            "--data=gcs://my-bucket/nsynth/{split}: a multi-host pod slice (v5p-32) trains on "
            "prepared data on gs://",
        ),
        (
            ["--accelerator=v5litepod-16", "--data=data/prepared"],
            "trains on prepared data on gs://",
        ),
        (["--accelerator=v6e-8"], "no Google-tested TensorFlow 2.17 set-up for v6e"),
        (["--accelerator=v5e-8"], "v5litepod-N"),
        (["--accelerator=v4"], "is not one of v2-N, v3-N, v4-N, v5p-N, v5litepod-N"),
    ],
)
def test_tpu_accelerators_and_pod_data_that_cannot_work_are_refused(args, needle):
    _assert_refused(TPU_VM, ["--bucket=my-bucket", "--name=r", *args], needle)


# --- multi_host_gpu.sh -------------------------------------------------------------------

HOSTS = "10.0.0.2:2222,gpu-b.internal:2223,[fd00::3]:2224"


def _tf_config(stdout):
    line = next(x for x in stdout.splitlines() if x.startswith("TF_CONFIG="))
    return json.loads(line[len("TF_CONFIG=") :])


@pytest.mark.parametrize("index", [0, 2])
def test_multi_host_dry_run_prints_tf_config_and_command(index):
    proc = _run(
        MULTI_HOST,
        f"--hosts={HOSTS}",
        f"--index={index}",
        "--dry-run",
        "gs://b/runs/mw",
        "--preset=tiny",
        "--train_steps=10",
    )
    assert proc.returncode == 0, proc.stderr
    assert _tf_config(proc.stdout) == {
        "cluster": {"worker": ["10.0.0.2:2222", "gpu-b.internal:2223", "[fd00::3]:2224"]},
        "task": {"type": "worker", "index": index},
    }
    line = next(x for x in proc.stdout.splitlines() if x.startswith("command:"))
    assert shlex.split(line[len("command:") :]) == [
        "python",
        "-m",
        "wavegan_dist.train",
        "--strategy=multiworker",
        "--model_dir=gs://b/runs/mw",
        "--preset=tiny",
        "--train_steps=10",
    ]
    assert proc.stderr == ""  # shared model_dir: no note


def test_multi_host_notes_a_local_model_dir():
    proc = _run(MULTI_HOST, "--hosts=a:1,b:1", "--index=1", "--dry-run", "runs/mw")
    assert proc.returncode == 0
    assert proc.stderr.startswith("note: MODEL_DIR 'runs/mw' is a local path")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--hosts=a:1,b:1", "--index=2", "d"], "out of range"),
        (["--hosts=a:1,b:1", "--index=-1", "d"], "whole number"),
        (["--hosts=a:1,b:1", "--index=one", "d"], "whole number"),
        (["--hosts=a:1,b", "--index=0", "d"], "not HOST:PORT"),
        (["--hosts=a:1,b:x", "--index=0", "d"], "not HOST:PORT"),
        (["--hosts=a:1,b:70000", "--index=0", "d"], "port out of range"),
        (["--hosts=a:1,,b:2", "--index=0", "d"], "empty entry"),
        (["--hosts=a:1,a:1", "--index=0", "d"], "twice"),
        (["--index=0", "d"], "no --hosts"),
        (["--hosts=a:1", "d"], "no --index"),
        (["--hosts=a:1", "--index=0"], "no MODEL_DIR"),
        (["--hosts=a:1", "--index=0", "d", "--strategy=mirrored"], "set by this script"),
        (["--bogus", "d"], "unknown option"),
    ],
)
def test_multi_host_bad_input_gives_one_error_line_and_exit_2(args, needle):
    _assert_refused(MULTI_HOST, args, needle)


@pytest.mark.slow
def test_multi_host_execs_the_trainer_with_tf_config(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "python"
    stub.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "print('STUB ' + json.dumps({'argv': sys.argv[1:], "
        "'tf_config': json.loads(os.environ['TF_CONFIG'])}))\n"
    )
    stub.chmod(0o755)
    env = _env(path=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = _run(
        MULTI_HOST, "--hosts", "h1:5000,h2:5001", "--index", "1", "gs://b/r", "--seed=2", env=env
    )
    assert proc.returncode == 0, proc.stderr
    printed = _tf_config(proc.stdout)
    seen = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("STUB "))[5:])
    assert (
        seen["tf_config"]
        == printed
        == {"cluster": {"worker": ["h1:5000", "h2:5001"]}, "task": {"type": "worker", "index": 1}}
    )
    assert seen["argv"] == [
        "-m",
        "wavegan_dist.train",
        "--strategy=multiworker",
        "--model_dir=gs://b/r",
        "--seed=2",
    ]
