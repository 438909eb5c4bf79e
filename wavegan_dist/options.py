"""Declaring a configuration field once: its default, its flag's help text, the values
it may take and what changing it means for a resumed run. flags.py makes each
command-line flag from these, Config.validated() checks the choices, and
training/checkpoints.py decides from `on_resume` what a resume with a new value does.

Imports nothing from the project, so models/spec.py can use it and stay a leaf.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# What a resume with a changed value does (the `on_resume` of a field):
REFUSE = "refuse"  # the checkpoint cannot be resumed: the networks' variables differ
ORDER = "order"  # allowed, but data order or random draws change: no exact continuation
# Any other non-empty string: allowed, and that string is the note saying what happens.


def option(
    default: Any, help: str, choices: tuple = (), on_resume: str = "", flag: bool = True
) -> Any:
    """A dataclass field that is also a command-line flag.

    Args:
      default: the field's default (immutable: a tuple, not a list).
      help: the flag's --help text.
      choices: the values allowed (strings: the flag is an enum); () = any.
      on_resume: REFUSE, ORDER, a note for the user, or "" (free to change).
      flag: False for a field that another field fills in (no flag of its own).
    Returns:
      A dataclasses.field carrying these in its metadata.
    """
    return dataclasses.field(
        default=default,
        metadata=dict(help=help, choices=tuple(choices), on_resume=on_resume, flag=flag),
    )


def derived(default: Any, help: str) -> Any:
    """A dataclass field filled in from other fields, so it has no flag."""
    return option(default, help, flag=False)


def flag_fields(cls) -> list[dataclasses.Field]:
    """The fields of dataclass `cls` declared with option(...) that are flags, in order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flag")]


def fields_on_resume(fields: list[dataclasses.Field], kind: str) -> tuple[str, ...]:
    """Names of the option `fields` whose on_resume is `kind` (REFUSE or ORDER)."""
    return tuple(f.name for f in fields if f.metadata["on_resume"] == kind)


def resume_notes(fields: list[dataclasses.Field]) -> dict[str, str]:
    """{name: note} of the option `fields` that may change on resume with a note."""
    return {
        f.name: f.metadata["on_resume"]
        for f in fields
        if f.metadata["on_resume"] not in ("", REFUSE, ORDER)
    }
