#!/usr/bin/env bash
# Train on one host with every local device: MirroredStrategy over all GPUs, or,
# on a machine without GPUs, over CPU_REPLICAS logical CPU devices (default 2).
#
#   launch/single_host.sh MODEL_DIR [more train flags...]
#   CPU_REPLICAS=4 launch/single_host.sh runs/cpu4 --preset=tiny
set -euo pipefail
if [[ $# -lt 1 || "$1" == --* ]]; then
  echo "usage: launch/single_host.sh MODEL_DIR [train flags...]" >&2
  exit 2
fi
model_dir=$1
shift
exec python -m wavegan_dist.train --strategy=mirrored --cpu_replicas="${CPU_REPLICAS:-2}" \
  --model_dir="$model_dir" "$@"
