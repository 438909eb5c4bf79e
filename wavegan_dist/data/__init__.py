"""Data: the NSynth schema, the built-in procedural dataset and the deeplake -> tf.data pipeline."""
