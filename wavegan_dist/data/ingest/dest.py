"""Opening the dataset an ingest writes to: create, resume or refuse, under a lock."""

from __future__ import annotations

import fcntl
import os

from wavegan_dist.data import schema
from wavegan_dist.data.ingest.state import IngestState
from wavegan_dist.errors import UserError, first_line
from wavegan_dist.paths import local_path


def _check_local_dest(path: str, dest: str) -> None:
    if os.path.isfile(path):
        raise UserError(f"--dest={dest} is a file; give a folder for the dataset")
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"--dest={dest} is not writable")
        return
    try:
        os.makedirs(path)
    except OSError as e:
        raise UserError(f"cannot create --dest={dest}: {e.strerror or e}") from e


class DestLock:
    """An exclusive flock on a local dest folder, so two ingests never write one dataset
    at once (deeplake 4 does not stop that: both would append). No-op for URLs."""

    def __init__(self, path: str | None, dest: str):
        self.path, self.dest, self.fd = path, dest, None

    def acquire(self) -> None:
        """Locks the folder; UserError if another process holds it."""
        if self.path is None:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"another ingest is writing to --dest={self.dest}; wait for it to "
                "finish (or stop it) and run this again"
            ) from None
        self.fd = fd

    def release(self) -> None:
        """Unlocks (safe to call twice)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _describe(identity: dict) -> str:
    text = f"{identity['format']} {identity['source']}"
    if identity.get("metadata"):
        text += f" (metadata {identity['metadata']})"
    if identity.get("split"):
        text += (
            f" (its {identity['split']} split, held out with --valid_fraction="
            f"{identity['fractions'][0]:g} --test_fraction={identity['fractions'][1]:g})"
        )
    return text + f" at {identity['sample_rate']} Hz, {identity['num_samples']} samples"


def open_dest(dest: str, identity: dict, log=None) -> tuple[object, IngestState, DestLock]:
    """Opens the dataset an ingest writes to, creating it if needed.

    An ingest dataset with no rows (a run that failed or was killed before its
    first row) holds nothing to keep: an ingest of another source replaces it.

    Args:
      dest: deeplake path (local folder, file://, s3://, ...).
      identity: {"source", "format", "metadata", "sample_rate", "num_samples"}.
      log: called with a one-line note when an empty ingest is replaced.
    Returns:
      (writable dataset, its committed IngestState, the held DestLock: release it
      when done). Raises UserError if dest cannot be written, is not an ingest
      dataset, or is an ingest of something else with rows (then it is left
      untouched).
    """
    local = local_path(dest)
    if local is not None:
        _check_local_dest(local, dest)
    lock = DestLock(local, dest)
    lock.acquire()
    try:
        return _open_or_create(dest, local, identity, lock, log or (lambda _: None)) + (lock,)
    except BaseException:
        lock.release()
        raise


def _open_or_create(dest: str, local: str | None, identity: dict, lock: DestLock, log):
    import deeplake

    try:
        exists = deeplake.exists(dest)
    except Exception as e:
        raise UserError(f"cannot reach --dest={dest}: {first_line(e)}") from e
    if exists:
        try:
            ds = deeplake.open(dest)
        except Exception as e:
            raise UserError(f"cannot open --dest={dest} for writing: {first_line(e)}") from e
        state = IngestState.load(ds, dest)
        replace = state is not None and state.identity != identity and len(ds) == 0
        if replace:
            log(
                f"note: --dest={dest} holds an ingest of {_describe(state.identity)} with no "
                "rows; replacing it"
            )
        elif state is not None:
            if state.identity != identity:
                raise UserError(
                    f"--dest={dest} already holds an ingest of "
                    f"{_describe(state.identity)}; refusing to add "
                    f"{_describe(identity)} to it; choose another --dest"
                )
            schema.check_schema(ds, dest)
            return ds, state
        if not replace and (len(ds.schema.columns) or len(ds) or list(ds.metadata.keys())):
            raise UserError(
                f"--dest={dest} is an existing deeplake dataset that ingest did not "
                "make; choose a new --dest"
            )
        # An empty shell (an earlier run was killed between create and its first commit),
        # or an ingest without rows.
        del ds
        lock.release()
        deeplake.delete(dest)
        if local is not None:
            os.makedirs(local, exist_ok=True)
        lock.acquire()
    elif local is not None and os.listdir(local):
        raise UserError(
            f"--dest={dest} is a non-empty folder that is not a deeplake dataset; "
            "choose a new --dest"
        )
    try:
        ds = schema.create_nsynth_dataset(dest, identity["num_samples"], identity["sample_rate"])
        state = IngestState(identity=identity)
        state.store(ds, [], with_identity=True)
        ds.commit("ingest: created")
    except Exception as e:
        raise UserError(f"cannot create a dataset at --dest={dest}: {first_line(e)}") from e
    return ds, state
