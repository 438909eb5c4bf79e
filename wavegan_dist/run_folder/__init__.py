"""What a run's folder holds, shared by training (which writes it) and by generate,
evaluate and export (which read it). Nothing here imports training/ or inference/,
and this file imports no TensorFlow (commands read config.json before they load it);
checkpoint_files.py reads and checks the checkpoints themselves.
"""

CONFIG_FILE = "config.json"  # the run's configuration, flat {flag: value}
CHECKPOINT_FOLDER = "checkpoints"  # ckpt-N.index / .data-* and the `checkpoint` state file
# Checkpoint node of the generator's moving-average copy (optional: runs with
# --generator_ema=0, and older ones, have none).
GENERATOR_EMA = "generator_ema"
