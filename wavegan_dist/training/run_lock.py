"""One training per model folder: the `run.lock` file a run holds while it trains.

Two kinds, chosen by the path:
  - a local folder: an advisory lock (flock) on `<model_dir>/run.lock`. The kernel drops
    it when the process ends in any way (kill -9 included), so a crash never leaves a
    stale lock; the file also names the holder for the message a second run prints.
  - a tf.io.gfile URL (gs://, s3://, ...), where no file system lock exists: the file
    holds the holder and a heartbeat time that a thread rewrites every
    HEARTBEAT_SECONDS while training. A lock whose heartbeat is older than
    STALE_SECONDS is taken over (its run crashed or lost the network). Writing then
    reading back is the only check that this run won a simultaneous start, so two
    runs started within a write's latency of each other can both pass; the heartbeat
    times are the hosts' clocks, so clocks skewed by more than the margin between the
    two constants weaken the stale test.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import threading
import time
import uuid

from wavegan_dist.errors import UserError, first_line

LOCK_FILE = "run.lock"
HEARTBEAT_SECONDS = 60.0
# A remote lock unrefreshed for this long belongs to a dead run (5 missed heartbeats).
STALE_SECONDS = 300.0


def is_local(path: str) -> bool:
    """True for a plain file system path (no URL scheme such as gs://)."""
    return "://" not in path


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _describe(holder: dict) -> str:
    """'host H, pid P, since T' from a lock file's contents (missing fields shown as ?)."""
    return (
        f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"since {holder.get('since', '?')}"
    )


def _in_use(model_dir: str, holder: dict) -> UserError:
    return UserError(
        f"--model_dir={model_dir} is in use by another training ({_describe(holder)}); "
        "wait for it to end or use another --model_dir"
    )


def _parse(text: str) -> dict:
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


class RunLock:
    """Holds `<model_dir>/run.lock` from `acquire()` to `release()` (or the `with` block).

    Args:
      model_dir: the run's folder (created if missing), local or a tf.io.gfile URL.
      enabled: False makes the lock a no-op (non-chief workers of a multi-worker run,
        which share the chief's folder).
      kind: "auto" (flock for local paths, heartbeat otherwise), "flock" or "heartbeat"
        (the remote kind also works on a local path, through tf.io.gfile).
      stale_seconds, heartbeat_seconds: the heartbeat kind's bounds.
    Raises UserError from acquire() when another live run holds the folder, naming it.
    """

    def __init__(
        self,
        model_dir: str,
        enabled: bool = True,
        kind: str = "auto",
        stale_seconds: float = STALE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ):
        if kind == "auto":
            kind = "flock" if is_local(model_dir) else "heartbeat"
        if kind not in ("flock", "heartbeat"):
            raise ValueError(f"unknown lock kind {kind!r}")
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, LOCK_FILE)
        self.enabled = enabled
        self.kind = kind
        self.stale_seconds = stale_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._fd: int | None = None
        self._created_dir = False  # the lock made model_dir (removed again if left empty)
        self._token = ""
        self._held: dict = {}
        self._stop_heartbeat = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._release_lock = threading.Lock()  # release() may come from a signal watcher

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _holder(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": _now(),
            "token": self._token,
            "heartbeat": time.time(),
        }

    def acquire(self) -> None:
        """Takes the lock or raises UserError (another run holds it, or the folder
        cannot be written)."""
        if not self.enabled:
            return
        self._token = uuid.uuid4().hex
        self._held = self._holder()
        try:
            if self.kind == "flock":
                self._acquire_flock()
            else:
                self._acquire_heartbeat()
        except OSError as err:
            if not os.path.isdir(self.model_dir):
                raise UserError(
                    f"cannot create {self.path}: {err.strerror or err}; --model_dir "
                    "must be a folder this user can write"
                ) from err
            raise UserError(
                f"cannot write {self.path}: {err.strerror or err}; free space or "
                "pass a --model_dir you can write to"
            ) from err

    def _acquire_flock(self) -> None:
        import fcntl

        self._created_dir = not os.path.isdir(self.model_dir)
        os.makedirs(self.model_dir, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with os.fdopen(fd) as f:
                    raise _in_use(self.model_dir, _parse(f.read())) from None
            # The holder before us removes the file on release: if it did so between our
            # open and our flock, we hold a lock on a file nobody else can see. Retry.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(self._held).encode())
            os.fsync(fd)
        except OSError:
            os.unlink(self.path)  # e.g. a full disk: leave no empty lock file behind
            os.close(fd)
            raise
        self._fd = fd

    def _read_remote(self) -> dict | None:
        import tensorflow as tf

        try:
            with tf.io.gfile.GFile(self.path) as f:
                return _parse(f.read())
        except tf.errors.NotFoundError:
            return None

    def _write_remote(self, holder: dict) -> None:
        import tensorflow as tf

        with tf.io.gfile.GFile(self.path, "w") as f:
            f.write(json.dumps(holder))

    def _acquire_heartbeat(self) -> None:
        import tensorflow as tf

        try:
            tf.io.gfile.makedirs(self.model_dir)
            holder = self._read_remote()
            if holder is not None and not self.is_stale(holder):
                raise _in_use(self.model_dir, holder)
            self._write_remote(self._held)
            holder = self._read_remote()
        except tf.errors.OpError as err:
            raise UserError(
                f"cannot create {self.path} ({first_line(err, 200)}); check the "
                "path, the network and the credentials"
            ) from err
        if not holder or holder.get("token") != self._token:
            raise _in_use(self.model_dir, holder or {})  # another run wrote it just now
        self._heartbeat = threading.Thread(
            target=self._beat, name="run-lock-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def is_stale(self, holder: dict) -> bool:
        """True if a heartbeat lock's contents are older than `stale_seconds` (or unreadable)."""
        beat = holder.get("heartbeat")
        return not isinstance(beat, (int, float)) or time.time() - beat > self.stale_seconds

    def _beat(self) -> None:
        import tensorflow as tf

        holder = dict(self._held)
        while not self._stop_heartbeat.wait(self.heartbeat_seconds):
            try:
                current = self._read_remote()
                if not current or current.get("token") != self._token:
                    return  # taken over after we looked dead: leave it to its new holder
                holder["heartbeat"] = time.time()
                self._write_remote(holder)
            except tf.errors.OpError:
                pass  # a network blip; the next beat tries again well before it is stale

    def release(self) -> None:
        """Gives the lock up and removes the file (only if this run still holds it)."""
        with self._release_lock:
            if self._fd is not None:
                try:
                    os.unlink(self.path)  # while still holding it: see _acquire_flock
                except FileNotFoundError:
                    pass
                os.close(self._fd)
                self._fd = None
                if self._created_dir:
                    # A run refused before it wrote anything leaves no empty folder behind.
                    try:
                        os.rmdir(self.model_dir)
                    except OSError:
                        pass  # not empty: the run wrote something, which stays
            if self._heartbeat is not None:
                self._stop_heartbeat.set()
                self._heartbeat.join(timeout=10)
                self._heartbeat = None
                self._remove_remote()

    def _remove_remote(self) -> None:
        import tensorflow as tf

        try:
            current = self._read_remote()
            if current and current.get("token") == self._token:
                tf.io.gfile.remove(self.path)
        except tf.errors.OpError:
            pass  # unreachable now: the lock goes stale after STALE_SECONDS
