"""The names and numbers that data flags and NSynth's label columns take, without
deeplake or TensorFlow, so a configuration can be checked (and a command line refuse
bad input) before anything heavy is imported. schema.py re-exports them."""

FAMILIES = (
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "synth_lead",
    "vocal",
)
SOURCES = ("acoustic", "electronic", "synthetic")
QUALITIES = (
    "bright",
    "dark",
    "distortion",
    "fast_decay",
    "long_release",
    "multiphonic",
    "nonlinear_env",
    "percussive",
    "reverb",
    "tempo-synced",
)
VELOCITIES = (25, 50, 75, 100, 127)
SPLITS = ("train", "valid", "test")
# Integer metadata that a source does not give (pitch, velocity, instrument ids) is
# stored as UNKNOWN, and text as "" — never as a guess.
UNKNOWN = -1

# Columns a model can be conditioned on, and their class counts: a label is the stored
# value itself (MIDI pitch 0-127, family id 0-10), so exported generators take the
# numbers people know rather than a training set's private class index.
LABEL_CLASSES = {"pitch": 128, "instrument_family": len(FAMILIES)}

# Orders of rows a run can read in (data/pipeline.BatchPlan).
SHUFFLES = ("rows", "blocks", "none")
