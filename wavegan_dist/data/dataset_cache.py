"""Datasets the package makes itself (the built-in sets), built once into a cache folder.

Layout: `<root>/{train,valid,test}` (deeplake datasets) plus `<root>/COMPLETE` (JSON)
written last. A build goes to `<root>.tmp-<pid>` and is renamed into place, so a
folder named `<root>` with a marker is always complete; an flock on `<root>.lock`
keeps concurrent builders from doing the work twice.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import time

from wavegan_dist.errors import UserError

MARKER = "COMPLETE"
# --data values that name a set the package builds itself: the procedural notes
# (data/builtin.py) and the rendered instrument notes (data/instruments.py).
BUILTIN_SETS = ("builtin", "builtin-instruments")


def default_cache_dir() -> str:
    """$WAVEGAN_DIST_CACHE if set, else ~/.cache/wavegan_dist."""
    return os.environ.get("WAVEGAN_DIST_CACHE") or os.path.expanduser("~/.cache/wavegan_dist")


def write_marker(folder: str, marker: dict) -> None:
    """Writes the COMPLETE marker (JSON; its "version" is checked on reuse) into `folder`."""
    with open(os.path.join(folder, MARKER), "w") as f:
        json.dump(marker, f)
        f.write("\n")


def _read_marker(root: str, version: int, what: str) -> dict | None:
    """The marker's contents if `root` is a complete build, None if there is no marker."""
    path = os.path.join(root, MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            marker = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(
            f"{what} marker {path} is unreadable ({e}); delete the folder {root} to rebuild it"
        ) from e
    if marker.get("version") != version:
        raise UserError(
            f"{root} holds {what} version {marker.get('version')}, "
            f"expected {version}; delete the folder to rebuild it"
        )
    return marker


def _reuse(root: str, version: int, what: str, log) -> bool:
    """True if `root` is a complete build; raises UserError for a folder that is not ours."""
    if _read_marker(root, version, what) is not None:
        log(f"using {what} at {root}")
        return True
    if os.path.lexists(root):
        raise UserError(
            f"{root} exists but is not a complete {what} (no {MARKER} "
            "marker); move or delete it, or set WAVEGAN_DIST_CACHE to another folder"
        )
    return False


def build_once(root: str, version: int, what: str, notes: int, build, log=print) -> str:
    """Returns `root`, building it first with `build(tmp_folder)` unless it is complete.

    Args:
      root: the dataset's folder.
      version: content version; a marker with another version is refused.
      what: the dataset's name in messages, e.g. "built-in dataset".
      notes: total rows, for the progress messages.
      build: callable(folder) that creates `folder` and writes the splits and the
        marker (write_marker) into it.
      log: called with one-line progress messages.
    Raises:
      UserError: `root` exists but is not a complete build, or the cache folder
        cannot be created.
    """
    if _reuse(root, version, what, log):
        return root
    parent = os.path.dirname(root)
    try:
        os.makedirs(parent, exist_ok=True)
        lock = open(root + ".lock", "a")
    except OSError as e:
        raise UserError(
            f"cannot write the {what} cache {parent} ({e}); set "
            "WAVEGAN_DIST_CACHE to a writable folder"
        ) from e
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process to finish building {root}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        # Another process may have finished the build while we waited.
        if _reuse(root, version, what, log):
            return root
        # Under the lock, any temporary sibling is left over from a killed build.
        for stale in glob.glob(glob.escape(root) + ".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        log(f"building {what} ({notes} notes) at {root} ...")
        start = time.perf_counter()
        tmp = f"{root}.tmp-{os.getpid()}"
        try:
            build(tmp)
            os.rename(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"built {what} ({notes} notes) in {time.perf_counter() - start:.1f} s")
    return root
