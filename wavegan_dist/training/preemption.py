"""Watching a Google Cloud VM's metadata server for a preemption or maintenance notice.

A Spot or preemptible VM is told it will be stopped through the metadata server
(instance/preempted turns TRUE), and a VM that is terminated for host maintenance (a GPU
VM, or one whose policy is TERMINATE) sees instance/maintenance-event turn to
TERMINATE_ON_HOST_MAINTENANCE about a minute before. A watcher thread polls both every
POLL_S seconds and requests a stop (the same one SIGTERM requests), so the run
checkpoints and exits before the VM goes.

TensorFlow's PreemptionCheckpointHandler does not serve here: in TF 2.17 it does nothing
on Cloud TPU VMs and GCE CPU VMs, and where it does watch (GCE GPU VMs) it reads only
maintenance-event. Like it, the server is http://$GCE_METADATA_IP (default
metadata.google.internal) with the header Metadata-Flavor: Google.

Off Google Cloud nothing is contacted: `auto` looks for the server only when
GCE_METADATA_IP is set or the machine's DMI product name says Google, and then asks it
once with a PROBE_TIMEOUT_S timeout.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.error
import urllib.request

from wavegan_dist.errors import UserError

DEFAULT_HOST = "metadata.google.internal"
DMI_PRODUCT_NAME = "/sys/class/dmi/id/product_name"
PROBE_TIMEOUT_S = 1.0
POLL_S = 1.0
MODES = ("auto", "on", "off")
# What each watched key reads when the VM is about to stop.
NOTICES = {"preempted": "TRUE", "maintenance-event": "TERMINATE_ON_HOST_MAINTENANCE"}


def metadata_base(environ=None) -> str:
    """URL of this VM's instance metadata: http://$GCE_METADATA_IP/computeMetadata/v1/instance/
    (GCE_METADATA_IP is a host[:port], as TensorFlow reads it), else the standard host."""
    environ = os.environ if environ is None else environ
    host = environ.get("GCE_METADATA_IP") or DEFAULT_HOST
    return f"http://{host}/computeMetadata/v1/instance/"


def read_key(base: str, key: str, timeout: float) -> str:
    """The value of instance metadata `key` (stripped). Raises OSError if the server does
    not answer as Google's metadata server does (status 200 and Metadata-Flavor: Google)."""
    request = urllib.request.Request(base + key, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        if reply.headers.get("Metadata-Flavor") != "Google":
            raise OSError(f"{base} answered without Metadata-Flavor: Google")
        return reply.read().decode("utf-8", "replace").strip()


def notice(base: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """'instance/KEY is VALUE' if the metadata server at `base` says the VM is about to
    stop, else None. Raises OSError if the server cannot be read."""
    for key, value in NOTICES.items():
        if read_key(base, key, timeout).upper() == value:
            return f"instance/{key} is {value}"
    return None


def _looks_like_gce(environ, dmi_path: str) -> bool:
    if environ.get("GCE_METADATA_IP"):
        return True
    try:
        with open(dmi_path, encoding="utf-8", errors="replace") as f:
            return "google" in f.read().lower()
    except OSError:
        return False


def find_server(mode: str, environ=None, dmi_path: str = DMI_PRODUCT_NAME, log=print) -> str | None:
    """The metadata server to watch for `mode`, or None.

    Args:
      mode: 'off' (never), 'auto' (only on what looks like a Google Cloud VM, and only if
        its server answers within PROBE_TIMEOUT_S), 'on' (the server must answer).
      environ: the environment (GCE_METADATA_IP); default os.environ.
      dmi_path: the DMI product name file ('Google Compute Engine' on GCE and Cloud TPU VMs).
      log: one-line notes (auto found no server on a machine that looked like GCE).
    Returns:
      The instance metadata base URL. Raises UserError for 'on' without a server.
    """
    environ = os.environ if environ is None else environ
    if mode == "off" or (mode == "auto" and not _looks_like_gce(environ, dmi_path)):
        return None
    base = metadata_base(environ)
    try:
        notice(base)
    except (OSError, ValueError) as err:  # URLError and timeouts are OSErrors
        reason = getattr(err, "reason", None) or err
        if mode == "on":
            raise UserError(
                f"--preemption_watch=on: no metadata server answers at {base} "
                f"({reason}); run on a Google Cloud VM, set GCE_METADATA_IP, "
                "or use --preemption_watch=auto"
            ) from err
        log(
            f"note: no metadata server answers at {base} ({reason}): not watching for "
            "a preemption notice"
        )
        return None
    return base


class Watcher:
    """A daemon thread that polls the metadata server at `base` every `poll_s` seconds and
    calls `on_notice(reason)` once when the VM is about to stop, then ends.

    A failed poll (the server briefly unreachable) is retried at the next poll. Use as a
    context manager; the thread stops on exit.
    """

    def __init__(self, base: str, on_notice, poll_s: float = POLL_S):
        self.base = base
        self.on_notice = on_notice
        self.poll_s = poll_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="preemption-watch", daemon=True)

    def _poll(self) -> None:
        while not self._done.wait(self.poll_s):
            try:
                reason = notice(self.base)
            except (OSError, ValueError):
                continue
            if reason:
                self.on_notice(reason)
                return

    def __enter__(self) -> "Watcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=PROBE_TIMEOUT_S * len(NOTICES) + 1)


def watch(mode: str, on_notice, log=print, environ=None):
    """A context manager that watches for a preemption notice while it is open, as
    `mode` says (see find_server), calling on_notice(reason) when one comes; it does
    nothing when there is no server to watch."""
    base = find_server(mode, environ, log=log)
    if base is None:
        return contextlib.nullcontext()
    log(f"watching {base} for a preemption or maintenance notice (every {POLL_S:g} s)")
    return Watcher(base, on_notice)
