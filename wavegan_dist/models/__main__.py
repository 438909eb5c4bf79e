"""`python -m wavegan_dist.models [model flags]`: print both networks' layer tables.

Takes the training flags (--model, --preset, --slice_len, --dim, --kernel_len,
--latent_dim, --phase_shuffle, ...), so it shows exactly what a training run builds.
"""

from wavegan_dist import cli

from absl import app

from wavegan_dist.flags import FLAGS, config_from_flags


def main(argv):
    """Builds the configured generator and critic and prints their layer tables."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) > 1:
            raise UserError(f"unexpected arguments {' '.join(argv[1:])}")
        cfg = config_from_flags(FLAGS)
        from wavegan_dist import models
        from wavegan_dist.models.summary import format_table, layer_table

        generator, critic = models.build_models(cfg.model_spec())
        what = f"slice {cfg.net.slice_len}, d={cfg.net.dim}, kernel {cfg.net.kernel_len}"
        if cfg.condition != "none":
            what += f", conditioned on {cfg.condition}"
        g_rows, g_total = layer_table(generator, (cfg.net.latent_dim,))
        c_rows, c_total = layer_table(critic, (cfg.net.slice_len, 1))
        print(
            format_table(
                f"{cfg.net.model} generator ({what}, z {cfg.net.latent_dim})", g_rows, g_total
            )
        )
        print()
        print(format_table(f"{cfg.net.model} critic ({what})", c_rows, c_total))
        print()
        print(f"generator {g_total:,} + critic {c_total:,} = {g_total + c_total:,} parameters")

    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags_or_exit)
