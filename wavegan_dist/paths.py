"""Checks on the folders a command writes to, made before any work is done.

Only local paths are checked here (plain paths and file://); a URL (gs://, s3://, ...)
is left to the storage client, which reports its own errors.
"""

from __future__ import annotations

import os

from wavegan_dist.errors import UserError


def local_path(path: str) -> str | None:
    """The filesystem path of a local path (plain or file://), None for other URLs."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


def check_output_folder(flag: str, path: str) -> None:
    """Raises UserError unless `path` is a folder this process can write, or can create.

    Args:
      flag: the command-line flag that named the folder, e.g. "--model_dir" (for messages).
      path: the folder (may not exist yet; created later by the caller).
    """
    local = local_path(path)
    if local is None:
        return
    given = f"{flag}={path}"
    if os.path.exists(local) and not os.path.isdir(local):
        raise UserError(
            f"{given} is a file, not a folder; pass a folder (new, or one this "
            "command wrote before)"
        )
    existing = os.path.abspath(local)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{given} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "on a read-only file system" if _read_only(existing) else "not writable"
        if existing == os.path.abspath(local):
            raise UserError(f"{given} is {what}; pass a folder you can write to")
        raise UserError(
            f"{given} cannot be created: {existing} is {what}; pass a folder you can write to"
        )


def _read_only(path: str) -> bool:
    """True if `path` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
