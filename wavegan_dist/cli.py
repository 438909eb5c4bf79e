"""What every command-line entry point shares: quiet TF logs and one-line errors."""

from __future__ import annotations

import os
import sys
import traceback

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
        _exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        _exit(130)
    except Exception as err:
        message = _cluster_failure(err)
        if message is None:
            if not _exit_may_hang():
                raise
            traceback.print_exc()
            _exit(1)
        print(f"error: {message}", file=sys.stderr, flush=True)
        _exit(1)


def _exit_may_hang() -> bool:
    """True if deeplake may have native threads retrying a remote store: its exit handlers
    join them, which takes minutes or never ends when the store is unreachable."""
    source = sys.modules.get("wavegan_dist.data.source")
    return source is not None and source.remote_store_contacted()


def _exit(status: int) -> None:
    """Exits an error path: a hard exit (os._exit, after flushing the output) when
    _exit_may_hang(), else sys.exit. An error path has nothing left to write."""
    if _exit_may_hang():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def _cluster_failure(err: Exception) -> str | None:
    """One line for a lost multi-worker peer, None for anything else."""
    if "tensorflow" not in sys.modules:  # only TensorFlow raises these
        return None
    from wavegan_dist import strategy

    return strategy.cluster_failure_message(err)
