"""wavegan_dist: a distributed WaveGAN (WGAN-GP) trainer on NSynth through deeplake.

Layout:
  config.py, flags.py   one Config object, built from absl flags in flags.py only
  strategy.py           tf.distribute strategy selection (auto/mirrored/multiworker/tpu/cpu)
  data/                 NSynth schema, built-in procedural dataset, deeplake -> tf.data pipeline
  models/               generator and critic networks
  losses.py             WGAN-GP losses, per example
  noise.py              per-example randomness that is identical for any replica count
  training/             the compiled train step, checkpoints, summaries, the outer loop
  train.py              `python -m wavegan_dist.train`
"""

__version__ = "0.1.0"
