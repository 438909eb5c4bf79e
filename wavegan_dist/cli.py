"""What every command-line entry point shares: quiet TF logs and one-line errors."""

from __future__ import annotations

import os
import sys

# Before TensorFlow is imported anywhere: keep C++ info logs off the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
