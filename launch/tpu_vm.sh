#!/usr/bin/env bash
# Train wavegan_dist on a Cloud TPU VM, driven from your own machine with gcloud:
# create the TPU VM (or reuse it if it exists), copy this working tree to every worker,
# install the pinned stack in a venv there, run the training with --strategy=tpu on
# worker 0 (logs stream back here), and optionally delete the TPU VM at the end.
#
# The set-up follows Google's own TensorFlow 2.17 TPU VM release tests
# (GoogleCloudPlatform/ml-auto-solutions, dags/solutions_team/configs/tensorflow/,
# commits a96327ca and eae9158c; BUILD_NOTES.md, "Cloud TPU VM set-up"): runtime image
# per accelerator, tensorflow-tpu from the libtpu-tf-releases index, PJRT variables on a
# single host, and on a pod slice one TensorFlow client on worker 0 with TPU_NAME set to
# the TPU's name while every host runs the gRPC TPU worker of TF 2.17.
#
#   launch/tpu_vm.sh --bucket=BUCKET --name=RUN [options] [-- train flags...]
#   launch/tpu_vm.sh --bucket=my-bucket --name=paper-v4 --dry-run -- --train_steps=1000
#
# Run `launch/tpu_vm.sh --help` for the options. --dry-run prints every command
# (gcloud and the local tar) without running any of them.
set -euo pipefail

LIBTPU_INDEX=https://storage.googleapis.com/libtpu-tf-releases/index.html
# The TPU runtime container every host of a pod slice runs (ml-auto-solutions set_up_pjrt).
GRPC_TPU_WORKER=gcr.io/cloud-tpu-v2-images/grpc_tpu_worker:tf-2.17.0-pjrt
TPU_RUNTIME_UNIT=/etc/systemd/system/tpu-runtime.service
# TF's MLIR bridge settings of those tests (their sparse-core flag is for DLRM only).
TF_XLA_FLAGS_VALUE="--tf_mlir_enable_mlir_bridge=true --tf_mlir_enable_convert_control_to_data_outputs_pass=true --tf_mlir_enable_merge_control_flow_pass=true"
REMOTE_DIR=wavegan_dist                  # on the TPU VM, relative to the home folder
REMOTE_TARBALL=wavegan_dist_src.tar.gz   # likewise

usage() {
  cat <<'EOF'
usage: launch/tpu_vm.sh --bucket=BUCKET --name=RUN [options] [-- train flags...]

Creates (or reuses) a Cloud TPU VM, copies this working tree to every worker, installs
the pinned stack in a venv there (on a pod slice also the TF 2.17 gRPC TPU worker on
every host), runs
  python -m wavegan_dist.train --strategy=tpu --data=DATA --model_dir=MODEL_DIR [train flags]
on worker 0 only (the one TensorFlow client: TPU_NAME=local on a single host, the TPU's
name on a pod slice) with its output streamed here, then deletes the TPU VM if
--delete is given.

required (flag or environment variable):
  --bucket=BUCKET        GCS bucket, with or without gs://              ($BUCKET)
  --name=RUN             run name: model_dir is gs://BUCKET/runs/RUN    ($RUN_NAME)

options (flag, environment variable, default):
  --tpu=NAME             TPU VM name        ($TPU_NAME, wavegan-tpu)
  --zone=ZONE            zone               ($ZONE, us-central2-b: has v4)
  --accelerator=TYPE     accelerator type   ($ACCELERATOR_TYPE, v4-8): v2-N, v3-N, v4-N,
                         v5p-N, v5litepod-N (v5e); more than 8 (cores, or v5e chips)
                         is a multi-host pod slice; v6e is refused (no TF 2.17 set-up)
  --runtime=VERSION      TPU runtime        ($RUNTIME_VERSION; default by accelerator:
                         v2-alpha-tpuv5-lite for v5litepod, v2-alpha-tpuv5 otherwise)
  --project=PROJECT      GCP project        ($PROJECT, gcloud's configured project)
  --python=NAME          Python on the VM   ($TPU_PYTHON, python3.11; installed with apt
                         if missing; the pinned stack needs Python 3.11 or newer)
  --data=URL             deeplake dataset   (gcs://BUCKET/nsynth/{split}; {split} becomes
                         --split, so train/valid/test live side by side); on a pod
                         slice required: prepared data on gs:// (python -m
                         wavegan_dist.prepare --dest=gs://...), read by every host
  --model_dir=URL        run folder         (gs://BUCKET/runs/RUN)
  --spot                 create the TPU VM as a Spot VM
  --delete               delete the TPU VM when the script ends (after training or a failure)
  --dry-run              print the commands instead of running them (gcloud not needed)
  -h, --help             this text

Everything after `--` is passed to python -m wavegan_dist.train (not --strategy,
--model_dir or --data: use the options above). Exit status: the training's, or 2 for
bad arguments / missing settings, or gcloud's if a gcloud step fails.
EOF
}

die() {  # one-line error, exit 2
  echo "error: $*" >&2
  exit 2
}

# Quote one word for a POSIX shell so that it reads well: bare when plainly safe, else in
# single quotes (embedded ones as '\'').
shquote() {
  local s=$1
  if [[ -n "$s" && "$s" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$s"
  elif [[ "$s" =~ ^(--[A-Za-z0-9_-]+=)(.+)$ ]]; then  # --flag='value' rather than '--flag=value'
    printf '%s' "${BASH_REMATCH[1]}"
    shquote "${BASH_REMATCH[2]}"
  else
    printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}

# The same for a word inside a remote command line that is itself printed in single quotes:
# double quotes when they suffice, so the printed line keeps no '\'' noise.
shquote_inner() {
  local s=$1
  if [[ -n "$s" && "$s" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$s"
  elif [[ "$s" != *[\"\$\`\\\!]* ]]; then
    printf '"%s"' "$s"
  else
    shquote "$s"
  fi
}

# Join words into one command line, each quoted with shquote (or the function in $QUOTE).
shjoin() {
  local out="" w
  for w in "$@"; do
    out+="${out:+ }$("${QUOTE:-shquote}" "$w")"
  done
  printf '%s' "$out"
}

dry_run=0
delete_at_end=0
spot=0
bucket=${BUCKET:-}
run_name=${RUN_NAME:-}
tpu=${TPU_NAME:-wavegan-tpu}
zone=${ZONE:-us-central2-b}
accelerator=${ACCELERATOR_TYPE:-v4-8}
runtime=${RUNTIME_VERSION:-}
project=${PROJECT:-}
remote_python=${TPU_PYTHON:-python3.11}
data=""
model_dir=""
train_flags=()

need_value() {  # $1 = option name, $2 = number of remaining args
  [[ $2 -ge 2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --) shift; train_flags=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    --dry-run|--dry_run) dry_run=1 ;;
    --delete) delete_at_end=1 ;;
    --spot) spot=1 ;;
    --bucket=*) bucket=${1#*=} ;;
    --name=*) run_name=${1#*=} ;;
    --tpu=*) tpu=${1#*=} ;;
    --zone=*) zone=${1#*=} ;;
    --accelerator=*|--accelerator_type=*|--accelerator-type=*) accelerator=${1#*=} ;;
    --runtime=*|--runtime_version=*) runtime=${1#*=} ;;
    --project=*) project=${1#*=} ;;
    --python=*) remote_python=${1#*=} ;;
    --data=*) data=${1#*=} ;;
    --model_dir=*) model_dir=${1#*=} ;;
    --bucket|--name|--tpu|--zone|--accelerator|--runtime|--project|--python|--data|--model_dir)
      need_value "$1" $#
      opt=${1#--}; val=$2; shift
      case $opt in
        bucket) bucket=$val ;; name) run_name=$val ;; tpu) tpu=$val ;; zone) zone=$val ;;
        accelerator) accelerator=$val ;; runtime) runtime=$val ;; project) project=$val ;;
        python) remote_python=$val ;; data) data=$val ;; model_dir) model_dir=$val ;;
      esac ;;
    *) die "unknown option '$1' (train flags go after --; see --help)" ;;
  esac
  shift
done

bucket=${bucket#gs://}
bucket=${bucket#gcs://}
bucket=${bucket%/}
[[ -n "$bucket" ]] || die "no bucket: pass --bucket=BUCKET or set BUCKET (checkpoints and logs go to gs://BUCKET/runs/RUN)"
[[ -n "$run_name" ]] || die "no run name: pass --name=RUN or set RUN_NAME (the run is written to gs://$bucket/runs/RUN)"
[[ "$bucket" =~ ^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$ ]] || die "bucket '$bucket' is not a valid GCS bucket name"
[[ "$run_name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "run name '$run_name' may only use letters, digits, '.', '_' and '-'"
[[ "$tpu" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] || die "TPU name '$tpu' must be lowercase letters, digits and '-', starting with a letter"
[[ -n "$zone" ]] || die "no zone: pass --zone=ZONE or set ZONE"
[[ -n "$accelerator" ]] || die "no accelerator type: pass --accelerator=TYPE or set ACCELERATOR_TYPE"

# Accelerator -> runtime image and hosts, as Google's TF 2.17 release tests chose them
# (ml-auto-solutions a96327ca, dags/solutions_team/solutionsteam_tf_release_supported.py:
# v2-8, v3-8, v4-8, v4-32, v5p-8 and v5p-32 on v2-alpha-tpuv5; v5litepod-4 and -16 on
# v2-alpha-tpuv5-lite). A host has 8 TensorCores (v2, v3, v4, v5p count cores) or up to
# 8 chips (v5litepod counts chips), so a larger size is a multi-host pod slice.
case $accelerator in
  v6e-*)
    die "$accelerator: there is no Google-tested TensorFlow 2.17 set-up for v6e (Google's TF 2.17 release tests ran v2, v3, v4, v5p and v5litepod, none on v6e, and name no TF 2.17 runtime for it); use v4-*, v5p-* or v5litepod-*" ;;
  v5e-*)
    die "$accelerator: Cloud TPU names v5e slices v5litepod-N (e.g. v5litepod-8)" ;;
esac
[[ "$accelerator" =~ ^v(2|3|4|5p|5litepod)-([0-9]+)$ ]] \
  || die "accelerator type '$accelerator' is not one of v2-N, v3-N, v4-N, v5p-N, v5litepod-N"
if [[ ${BASH_REMATCH[1]} == 5litepod ]]; then
  runtime=${runtime:-v2-alpha-tpuv5-lite}
else
  runtime=${runtime:-v2-alpha-tpuv5}
fi
pod=0
[[ ${BASH_REMATCH[2]} -gt 8 ]] && pod=1
[[ "$remote_python" =~ ^python3\.[0-9]+$ ]] || die "--python must look like python3.11, got '$remote_python'"
for flag in "${train_flags[@]+"${train_flags[@]}"}"; do
  case $flag in
    --strategy|--strategy=*|--model_dir|--model_dir=*|--data|--data=*|--tpu|--tpu=*)
      die "train flag '$flag' is set by this script (use --data / --model_dir before --)" ;;
  esac
done
prepare_hint="write it once with python -m wavegan_dist.prepare --data=gcs://$bucket/nsynth/train --dest=gs://$bucket/prepared/NAME (README, Preparing data for large runs)"
if [[ $pod -eq 1 ]]; then
  # Every host reads its own shards; the deeplake input runs only in the client's process.
  [[ -n "$data" ]] || die "$accelerator is a multi-host pod slice: pass --data=gs://BUCKET/PREPARED, prepared data every host reads; $prepare_hint"
  [[ "$data" == gs://* ]] || die "--data=$data: a multi-host pod slice ($accelerator) trains on prepared data on gs://, which every host reads (the deeplake input cannot feed other hosts); $prepare_hint"
fi
default_data="gcs://$bucket/nsynth/{split}"
data=${data:-$default_data}
model_dir=${model_dir:-gs://$bucket/runs/$run_name}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f "$repo/pyproject.toml" && -f "$repo/constraints.txt" ]] \
  || die "$repo does not look like the wavegan_dist repository (no pyproject.toml / constraints.txt)"

if [[ $dry_run -eq 0 ]] && ! command -v gcloud >/dev/null 2>&1; then
  die "gcloud not found on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install) or use --dry-run"
fi

if [[ $pod -eq 1 ]]; then
  echo "note: $accelerator is a multi-host pod slice: every worker gets the install and the TF 2.17 gRPC TPU worker; training runs on worker 0 only, the one TensorFlow client (TPU_NAME=$tpu)" >&2
fi

# gcloud flags shared by every TPU VM command.
where=(--zone="$zone")
[[ -n "$project" ]] && where+=(--project="$project")

# The remote steps, each one shell line run by the login shell (bash) on every worker. They
# hold no single quote, so the dry run prints each as one readable '...' word.
py=$remote_python
setup_script="set -euo pipefail; mkdir -p $REMOTE_DIR; cd $REMOTE_DIR"
setup_script+='; find . -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +'
setup_script+="; tar -xzf ~/$REMOTE_TARBALL; rm -f ~/$REMOTE_TARBALL"
# Ubuntu ships venv support (ensurepip) apart from the interpreter.
setup_script+="; if ! $py -c \"import ensurepip\" 2>/dev/null; then sudo apt-get update -q"
setup_script+=" && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q $py $py-venv; fi"
# shellcheck disable=SC2016  # $(...) is for the remote shell
setup_script+='; if [ "$(.venv/bin/python -V 2>&1)" != "$('"$py"' -V 2>&1)" ]; then rm -rf .venv; '"$py"' -m venv .venv; fi'
setup_script+="; . .venv/bin/activate"
setup_script+="; pip install -c constraints.txt \".[tpu]\" -f $LIBTPU_INDEX"
setup_script+='; python -c "import tensorflow as tf; print(tf.__version__)"'
if [[ $pod -eq 1 ]]; then
  # The TPU runtime container serves this host's TPU to the client on worker 0.
  setup_script+='; sudo sed -i "s|TF_DOCKER_URL=.*|TF_DOCKER_URL='"$GRPC_TPU_WORKER"'\"|" '"$TPU_RUNTIME_UNIT"
  setup_script+="; sudo systemctl daemon-reload && sudo systemctl restart tpu-runtime"
fi

train_cmd=(python -m wavegan_dist.train --strategy=tpu "--data=$data" "--model_dir=$model_dir"
           "${train_flags[@]+"${train_flags[@]}"}")
train_script="set -o pipefail; cd $REMOTE_DIR && . .venv/bin/activate && mkdir -p logs"
train_script+=" && export TF_XLA_FLAGS=\"$TF_XLA_FLAGS_VALUE\""
if [[ $pod -eq 1 ]]; then
  # The client only drives the hosts' TPU workers: it must not load libtpu itself.
  train_script+=" && export TPU_NAME=$tpu TPU_LOAD_LIBRARY=0"
else
  # PJRT: TensorFlow loads the installed libtpu as a pluggable device.
  # shellcheck disable=SC2016  # $(...) and $VAR are for the remote shell
  train_script+=' && export TPU_NAME=local NEXT_PLUGGABLE_DEVICE_USE_C_API=true'
  # shellcheck disable=SC2016
  train_script+=' && export TF_PLUGGABLE_DEVICE_LIBRARY_PATH=$(python -c "import libtpu; print(list(libtpu.__path__)[0])")/libtpu.so'
  # shellcheck disable=SC2016
  train_script+=' && { test -f "$TF_PLUGGABLE_DEVICE_LIBRARY_PATH" || { echo "error: no libtpu.so in the venv (the libtpu wheel from '"$LIBTPU_INDEX"' is missing)" >&2; exit 2; }; }'
fi
train_script+=" && $(QUOTE=shquote_inner shjoin "${train_cmd[@]}") 2>&1 | tee -a logs/$run_name.log"

tarball_dir=""
tarball_path=""
vm_ready=0

show() {  # print a command as a copy-pastable line
  printf '%s\n' "$(shjoin "$@")"
}

run() {  # print, then run unless --dry-run
  printf '+ %s\n' "$(shjoin "$@")" >&2
  [[ $dry_run -eq 1 ]] || "$@"
}

cleanup() {
  local status=$?
  if [[ -n "$tarball_dir" ]]; then rm -rf "$tarball_dir"; fi
  if [[ $delete_at_end -eq 1 && $vm_ready -eq 1 && $dry_run -eq 0 ]]; then
    echo "deleting TPU VM $tpu (--delete)" >&2
    run gcloud compute tpus tpu-vm delete "$tpu" "${where[@]}" --quiet || status=$?
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT  # Ctrl-C and kill also go through cleanup (and --delete)
trap 'exit 143' TERM

describe_cmd=(gcloud compute tpus tpu-vm describe "$tpu" "${where[@]}" "--format=value(state,acceleratorType)")
create_cmd=(gcloud compute tpus tpu-vm create "$tpu" "${where[@]}"
            --accelerator-type="$accelerator" --version="$runtime")
[[ $spot -eq 1 ]] && create_cmd+=(--spot)
start_cmd=(gcloud compute tpus tpu-vm start "$tpu" "${where[@]}")

if [[ $dry_run -eq 1 ]]; then
  tarball_path="${TMPDIR:-/tmp}/$REMOTE_TARBALL"
  echo "# dry run: these commands would run, in this order (none is run now)"
  echo "# 1. reuse the TPU VM if it exists:"
  show "${describe_cmd[@]}"
  echo "#    if that fails (no such TPU VM), create it:"
  show "${create_cmd[@]}"
  echo "#    if it exists but is STOPPED, start it:"
  show "${start_cmd[@]}"
else
  echo "+ $(shjoin "${describe_cmd[@]}")" >&2
  if info=$("${describe_cmd[@]}" 2>/dev/null); then
    read -r state existing_type _ <<<"$info" || true
    echo "reusing TPU VM $tpu (state ${state:-unknown}, ${existing_type:-unknown type})" >&2
    if [[ -n "${existing_type:-}" && "${existing_type}" != "$accelerator" ]]; then
      echo "note: $tpu is a ${existing_type}, not the requested $accelerator; using it as it is" >&2
    fi
    if [[ "${state:-}" == STOPPED ]]; then
      run "${start_cmd[@]}"
    fi
  else
    echo "TPU VM $tpu not found in $zone: creating it" >&2
    run "${create_cmd[@]}"
  fi
  tarball_dir=$(mktemp -d)
  tarball_path="$tarball_dir/$REMOTE_TARBALL"
fi
vm_ready=1

tar_cmd=(tar -czf "$tarball_path" --exclude=./.git --exclude=./.venv --exclude=./runs
         --exclude=./build --exclude=./.pytest_cache --exclude=__pycache__ --exclude='*.egg-info'
         -C "$repo" .)
scp_cmd=(gcloud compute tpus tpu-vm scp "$tarball_path" "$tpu:$REMOTE_TARBALL" "${where[@]}" --worker=all)
setup_cmd=(gcloud compute tpus tpu-vm ssh "$tpu" "${where[@]}" --worker=all --command="$setup_script")
train_ssh_cmd=(gcloud compute tpus tpu-vm ssh "$tpu" "${where[@]}" --worker=0 --command="$train_script")
delete_cmd=(gcloud compute tpus tpu-vm delete "$tpu" "${where[@]}" --quiet)

if [[ $dry_run -eq 1 ]]; then
  echo "# 2. pack this working tree (without .git, .venv, runs, caches):"
  show "${tar_cmd[@]}"
  echo "# 3. copy it to every worker:"
  show "${scp_cmd[@]}"
  if [[ $pod -eq 1 ]]; then
    echo "# 4. unpack, create the venv and install the pinned stack on every worker, and run the TF 2.17 gRPC TPU worker on every host:"
  else
    echo "# 4. unpack, create the venv and install the pinned stack on every worker:"
  fi
  show "${setup_cmd[@]}"
  echo "# 5. train on worker 0, the one TensorFlow client, output streamed here (and kept in ~/$REMOTE_DIR/logs/$run_name.log there):"
  show "${train_ssh_cmd[@]}"
  if [[ $delete_at_end -eq 1 ]]; then
    echo "# 6. at the end, whatever happened (--delete):"
    show "${delete_cmd[@]}"
  fi
  exit 0
fi

echo "packing $repo" >&2
run "${tar_cmd[@]}"
run "${scp_cmd[@]}"
run "${setup_cmd[@]}"
echo "training: model_dir=$model_dir data=$data" >&2
run "${train_ssh_cmd[@]}"
