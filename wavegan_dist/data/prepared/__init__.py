"""The prepared form of a dataset: the selected training examples, shuffled once and
written as sharded TFRecord files with a manifest, read back with TensorFlow ops only.

  manifest.py  what a prepared folder holds, and the checks training makes against it
  writer.py    deeplake dataset -> prepared folder (`python -m wavegan_dist.prepare`)
  reader.py    prepared folder -> the per-pipeline tf.data input of a training run
"""

MANIFEST = "manifest.json"  # written last: the folder is complete
PLAN = "prepare-plan.json"  # written first: what is being written
# The Config fields that choose and shape the examples: training must ask for the same.
SELECTION = (
    "split",
    "num_samples",
    "subset",
    "instrument_source",
    "instrument_family",
    "pitch_min",
    "pitch_max",
    "velocity",
    "condition",
    "slice_len",
    "slice_offset",
    "normalize",
)
