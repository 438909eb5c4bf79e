"""What every command-line entry point shares: quiet TF logs and one-line errors."""

from __future__ import annotations

import os
import sys

# Before TensorFlow is imported anywhere: keep C++ info logs off the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_flags_or_exit(argv: list[str], flag_values=None) -> list[str]:
    """Parses argv into absl flags; a bad flag is `error: ...` on one line and exit 2.

    Args:
      argv: sys.argv-style list.
      flag_values: the FlagValues to fill (default: absl's global FLAGS).
    Returns:
      The arguments that are not flags (argv[0] first), as absl.app expects.
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    try:
        return flag_values(argv)
    except flags.Error as err:
        print(f"error: {str(err).splitlines()[0]} (see --helpfull)", file=sys.stderr, flush=True)
        sys.exit(2)


def run_or_exit(fn) -> None:
    """Calls fn(); a UserError becomes `error: ...` on stderr and exit status 2."""
    from wavegan_dist.errors import UserError

    try:
        fn()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as err:
        message = _cluster_failure(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(1)


def _cluster_failure(err: Exception) -> str | None:
    """One line for a lost multi-worker peer, None for anything else."""
    if "tensorflow" not in sys.modules:  # only TensorFlow raises these
        return None
    from wavegan_dist import strategy

    return strategy.cluster_failure_message(err)
