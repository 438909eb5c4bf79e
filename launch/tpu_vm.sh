#!/usr/bin/env bash
# Train wavegan_dist on a Cloud TPU VM, driven from your own machine with gcloud:
# create the TPU VM (or reuse it if it exists), copy this working tree to it, install
# the pinned stack in a venv there, run the training with --strategy=tpu (logs stream
# back here), and optionally delete the TPU VM at the end.
#
#   launch/tpu_vm.sh --bucket=BUCKET --name=RUN [options] [-- train flags...]
#   launch/tpu_vm.sh --bucket=my-bucket --name=paper-v4 --dry-run -- --train_steps=1000
#
# Run `launch/tpu_vm.sh --help` for the options. --dry-run prints every command
# (gcloud and the local tar) without running any of them.
set -euo pipefail

LIBTPU_INDEX=https://storage.googleapis.com/libtpu-releases/index.html
REMOTE_DIR=wavegan_dist                  # on the TPU VM, relative to the home folder
REMOTE_TARBALL=wavegan_dist_src.tar.gz   # likewise

usage() {
  cat <<'EOF'
usage: launch/tpu_vm.sh --bucket=BUCKET --name=RUN [options] [-- train flags...]

Creates (or reuses) a Cloud TPU VM, copies this working tree to every worker, installs
the pinned stack in a venv there, runs
  python -m wavegan_dist.train --strategy=tpu --data=DATA --model_dir=MODEL_DIR [train flags]
on every worker (--worker=all) with its output streamed here, then deletes the TPU VM
if --delete is given.

required (flag or environment variable):
  --bucket=BUCKET        GCS bucket, with or without gs://              ($BUCKET)
  --name=RUN             run name: model_dir is gs://BUCKET/runs/RUN    ($RUN_NAME)

options (flag, environment variable, default):
  --tpu=NAME             TPU VM name        ($TPU_NAME, wavegan-tpu)
  --zone=ZONE            zone               ($ZONE, us-central2-b: has v4)
  --accelerator=TYPE     accelerator type   ($ACCELERATOR_TYPE, v4-8; v3-8 also single-host)
  --runtime=VERSION      TPU runtime        ($RUNTIME_VERSION, tpu-ubuntu2204-base)
  --project=PROJECT      GCP project        ($PROJECT, gcloud's configured project)
  --python=NAME          Python on the VM   ($TPU_PYTHON, python3.11; installed with apt
                         if missing; the pinned stack needs Python 3.11 or newer)
  --data=URL             deeplake dataset   (gcs://BUCKET/nsynth/{split}; {split} becomes
                         --split, so train/valid/test live side by side)
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
runtime=${RUNTIME_VERSION:-tpu-ubuntu2204-base}
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
[[ -n "$runtime" ]] || die "no runtime version: pass --runtime=VERSION or set RUNTIME_VERSION"
[[ "$remote_python" =~ ^python3\.[0-9]+$ ]] || die "--python must look like python3.11, got '$remote_python'"
for flag in "${train_flags[@]+"${train_flags[@]}"}"; do
  case $flag in
    --strategy|--strategy=*|--model_dir|--model_dir=*|--data|--data=*|--tpu|--tpu=*)
      die "train flag '$flag' is set by this script (use --data / --model_dir before --)" ;;
  esac
done
default_data="gcs://$bucket/nsynth/{split}"
data=${data:-$default_data}
model_dir=${model_dir:-gs://$bucket/runs/$run_name}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f "$repo/pyproject.toml" && -f "$repo/constraints.txt" ]] \
  || die "$repo does not look like the wavegan_dist repository (no pyproject.toml / constraints.txt)"

if [[ $dry_run -eq 0 ]] && ! command -v gcloud >/dev/null 2>&1; then
  die "gcloud not found on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install) or use --dry-run"
fi

# Pod slices (more than one host) are a different launch: say so, but let it run.
chips=${accelerator##*-}
if [[ "$chips" =~ ^[0-9]+$ && $chips -gt 8 ]]; then
  echo "note: $accelerator looks like a multi-host pod slice; the trainer supports single-host TPU VMs (BUILD_NOTES.md, Known limits), so expect it to refuse" >&2
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

train_cmd=(python -m wavegan_dist.train --strategy=tpu "--data=$data" "--model_dir=$model_dir"
           "${train_flags[@]+"${train_flags[@]}"}")
train_script="set -o pipefail; cd $REMOTE_DIR && . .venv/bin/activate && mkdir -p logs"
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
train_ssh_cmd=(gcloud compute tpus tpu-vm ssh "$tpu" "${where[@]}" --worker=all --command="$train_script")
delete_cmd=(gcloud compute tpus tpu-vm delete "$tpu" "${where[@]}" --quiet)

if [[ $dry_run -eq 1 ]]; then
  echo "# 2. pack this working tree (without .git, .venv, runs, caches):"
  show "${tar_cmd[@]}"
  echo "# 3. copy it to every worker:"
  show "${scp_cmd[@]}"
  echo "# 4. unpack, create the venv and install the pinned stack on every worker:"
  show "${setup_cmd[@]}"
  echo "# 5. train on every worker, output streamed here (and kept in ~/$REMOTE_DIR/logs/$run_name.log there):"
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
