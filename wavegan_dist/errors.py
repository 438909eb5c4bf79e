"""Errors that a user can fix; the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """A problem with the user's input or environment, with a message saying what to do.

    Command-line entry points catch it, print `error: <message>` on one line to
    stderr and exit with status 2, instead of showing a traceback.
    """


def first_line(err: BaseException, limit: int = 240) -> str:
    """An exception -> one line for a message: its first line, else its type name."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:limit]
