r"""`python -m wavegan_dist.train`: train WaveGAN with WGAN-GP under a tf.distribute strategy.

Examples:
  python -m wavegan_dist.train --preset=tiny --model_dir=runs/tiny
  python -m wavegan_dist.train --strategy=mirrored --cpu_replicas=2 --preset=tiny \
      --train_steps=20 --model_dir=runs/mirrored
"""

from wavegan_dist import cli  # noqa: F401  (sets TF log level before TensorFlow loads)

import sys

from absl import app, logging

from wavegan_dist.flags import FLAGS, config_from_flags


def _log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str]) -> None:
    """absl entry point: parse flags into a Config and train."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) > 1:
            raise UserError(
                f"unexpected arguments {' '.join(argv[1:])}; flags look like --name=value"
            )
        cfg = config_from_flags(FLAGS)
        from wavegan_dist.training.loop import run_training  # imports TensorFlow

        result = run_training(cfg, log=_log, exit_at_once=True)
        if result.stop_signal == "SIGINT":
            sys.exit(130)  # the shell's code for Ctrl-C, although the run saved and stopped cleanly

    logging.set_verbosity(logging.WARNING)
    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags_or_exit)
