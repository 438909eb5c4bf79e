#!/usr/bin/env bash
# Multi-worker training over several GPU hosts (MultiWorkerMirroredStrategy). Run it on
# EACH host, with the same --hosts list and train flags everywhere and that host's own
# --index (0 on the first host of the list, which is the chief):
#
#   launch/multi_host_gpu.sh --hosts=h1:port,h2:port --index=I MODEL_DIR [train flags...]
#   launch/multi_host_gpu.sh --hosts=10.0.0.2:2222,10.0.0.3:2222 --index=0 gs://b/runs/mw
#
# It builds this host's TF_CONFIG (a worker job over --hosts, task index I), prints it and
# execs python -m wavegan_dist.train --strategy=multiworker --model_dir=MODEL_DIR [flags].
# --dry-run prints TF_CONFIG and the command instead of running it.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/multi_host_gpu.sh --hosts=HOST:PORT,HOST:PORT,... --index=I [--dry-run] MODEL_DIR [train flags...]

Run on every host, with the same --hosts (same order) and the same train flags, and each
host's own --index (its position in --hosts, from 0; 0 is the chief). HOST is a name or
IPv4 address the other hosts can reach, or an IPv6 address in brackets; PORT is a free
TCP port on that host. MODEL_DIR must be one place every host reaches (gs://..., or a
shared file system).
EOF
}

die() {  # one-line error, exit 2
  echo "error: $*" >&2
  exit 2
}

hosts=""
index=""
dry_run=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --dry-run|--dry_run) dry_run=1; shift ;;
    --hosts=*) hosts=${1#*=}; shift ;;
    --index=*) index=${1#*=}; shift ;;
    --hosts|--index)
      [[ $# -ge 2 ]] || die "$1 needs a value (usage: launch/multi_host_gpu.sh --hosts=H:P,H:P --index=I MODEL_DIR [train flags])"
      if [[ $1 == --hosts ]]; then hosts=$2; else index=$2; fi
      shift 2 ;;
    --) shift; break ;;
    -*) die "unknown option '$1' before MODEL_DIR (train flags go after MODEL_DIR; see --help)" ;;
    *) break ;;
  esac
done

[[ -n "$hosts" ]] || die "no --hosts: give every worker as HOST:PORT, comma-separated, e.g. --hosts=h1:2222,h2:2222"
[[ -n "$index" ]] || die "no --index: give this host's position in --hosts (0 to N-1)"
[[ $# -ge 1 && -n "$1" && "$1" != -* ]] || die "no MODEL_DIR: usage: launch/multi_host_gpu.sh --hosts=H:P,H:P --index=I MODEL_DIR [train flags]"
model_dir=$1
shift

IFS=, read -r -a workers <<<"$hosts"
[[ "$hosts" != *, && "$hosts" != ,* && "$hosts" != *,,* ]] || die "--hosts has an empty entry: '$hosts'"
declare -A seen=()
for w in "${workers[@]}"; do
  if [[ "$w" =~ ^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):([0-9]+)$ ]]; then
    port=${BASH_REMATCH[3]}
    (( ${#port} <= 5 && 10#$port >= 1 && 10#$port <= 65535 )) || die "port out of range 1-65535 in --hosts entry '$w'"
  else
    die "--hosts entry '$w' is not HOST:PORT (a host name or IPv4 address, or [IPv6], then :PORT)"
  fi
  [[ -z "${seen[$w]:-}" ]] || die "--hosts lists '$w' twice"
  seen[$w]=1
done
n=${#workers[@]}
[[ "$index" =~ ^[0-9]+$ ]] || die "--index must be a whole number from 0 to $((n - 1)), got '$index'"
(( 10#$index < n )) || die "--index=$index is out of range: --hosts lists $n worker(s), so it must be 0 to $((n - 1))"
index=$((10#$index))

for flag in "$@"; do
  case $flag in
    --strategy|--strategy=*|--model_dir|--model_dir=*)
      die "train flag '$flag' is set by this script (MODEL_DIR is the first argument)" ;;
  esac
done

# Entries were checked above (no quotes or backslashes), so plain JSON strings are safe.
cluster=""
for w in "${workers[@]}"; do
  cluster+="${cluster:+, }\"$w\""
done
TF_CONFIG=$(printf '{"cluster": {"worker": [%s]}, "task": {"type": "worker", "index": %d}}' \
  "$cluster" "$index")
export TF_CONFIG

if [[ $n -gt 1 && "$model_dir" != *://* ]]; then
  echo "note: MODEL_DIR '$model_dir' is a local path: every host must see the same folder (a shared file system), or use gs://..." >&2
fi

cmd=(python -m wavegan_dist.train --strategy=multiworker --model_dir="$model_dir" "$@")
echo "TF_CONFIG=$TF_CONFIG"
if [[ $dry_run -eq 1 ]]; then
  printf 'command:'
  printf ' %q' "${cmd[@]}"
  printf '\n'
  exit 0
fi
echo "worker $index of $n: exec ${cmd[*]}" >&2
exec "${cmd[@]}"
