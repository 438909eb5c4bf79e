"""What every command-line entry point shares: quiet TF logs and one-line errors."""

from __future__ import annotations

import os
import sys
import textwrap
import traceback

# Before TensorFlow is imported anywhere: keep C++ info logs off the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# absl's help flags; absl accepts each with one dash or two.
HELP_FLAGS = {"h", "?", "help", "helpshort", "helpfull"}
_VALUE_KINDS = {"int": "<int>", "float": "<float>", "string": "<string>"}


def parse_flags_or_exit(argv: list[str], flag_values=None, describe=None) -> list[str]:
    """Parses argv into absl flags; a bad flag is `error: ...` on one line and exit 2.

    A help flag (-h, -?, --help, --helpshort, --helpfull) prints the command's
    description and its own flags (not absl's) and exits 0.

    Args:
      argv: sys.argv-style list.
      flag_values: the FlagValues to fill (default: absl's global FLAGS).
      describe: function(argv) -> (description, flag names or None for all the command's
        flags), called only for help; default: the __main__ module's docstring, all flags.
    Returns:
      The arguments that are not flags (argv[0] first), as absl.app expects.
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    if wants_help(argv):
        description, names = (describe or _main_doc)(argv)
        try:
            print(command_help(description, flag_values, names), flush=True)
        except BrokenPipeError:  # `--help | head` stopped reading: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    try:
        return flag_values(argv)
    except flags.Error as err:
        print(f"error: {str(err).splitlines()[0]} (see --help)", file=sys.stderr, flush=True)
        sys.exit(2)


def wants_help(argv: list[str]) -> bool:
    """True if a help flag comes before any `--` (after which nothing is a flag)."""
    args = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
    return any(a.startswith("-") and a.lstrip("-") in HELP_FLAGS for a in args)


def _main_doc(argv: list[str]) -> tuple[str, None]:
    return sys.modules["__main__"].__doc__ or "", None


def command_help(description: str, flag_values, names=None) -> str:
    """The text `--help` prints: the description, then the command's flags by name.

    Args:
      description: what the command does, with examples (a module docstring).
      flag_values: absl FlagValues holding the command's flags.
      names: the flags to list; default: every flag not defined by absl itself.
    Returns:
      The help text.
    """
    if names is None:
        names = {
            f.name
            for module, module_flags in flag_values.flags_by_module_dict().items()
            if not module.startswith("absl.")
            for f in module_flags
        }
    lines = [description.strip(), "", "flags:"]
    for name in sorted(names):
        lines += _flag_help(flag_values[name])
    return "\n".join(lines)


def _flag_help(flag) -> list[str]:
    """`--name=<kind> (default: x)` and the flag's help wrapped below it."""
    enum_values = getattr(flag.parser, "enum_values", None)
    text = flag.help
    if enum_values:  # absl starts an enum's help with its values; the head shows them
        text = text.removeprefix(f"<{'|'.join(enum_values)}>: ")
    if flag.boolean:
        head = f"--[no]{flag.name}"
    elif enum_values:
        head = f"--{flag.name}={'|'.join(enum_values)}"
    elif flag.flag_type().startswith("comma separated list"):
        head = f"--{flag.name}=<a,b,...>"
    else:
        head = f"--{flag.name}={_VALUE_KINDS.get(flag.flag_type(), '<value>')}"
    default = flag.default
    if isinstance(default, bool):
        default = str(default).lower()
    elif isinstance(default, list):
        default = ",".join(str(v) for v in default)
    if default not in (None, ""):
        head += f" (default: {default})"
    return ["  " + head] + textwrap.wrap(
        text,
        80,
        initial_indent=" " * 6,
        subsequent_indent=" " * 6,
        break_on_hyphens=False,
        break_long_words=False,
    )


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
