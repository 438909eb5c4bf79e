"""A preemption or maintenance notice from a Google Cloud VM's metadata server, served here
by a fake metadata server on 127.0.0.1 (nothing else is contacted), stops a real training
process with a checkpoint, as SIGTERM does."""

import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS
from wavegan_dist.errors import UserError
from wavegan_dist.training import preemption

pytestmark = pytest.mark.slow

SERVER_LIFETIME_S = 300  # the fake server shuts itself down after this, whatever happens


class FakeMetadataServer:
    """Answers instance/preempted and instance/maintenance-event as Google's metadata
    server does (only to requests with Metadata-Flavor: Google), with the all-clear
    values until `notice` is set, then `key`'s notice value."""

    def __init__(self, key="preempted"):
        self.key = key
        self.notice = threading.Event()
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                values = {"preempted": "FALSE", "maintenance-event": "NONE"}
                if self.headers.get("Metadata-Flavor") != "Google" or name not in values:
                    self.send_error(403 if name in values else 404)
                    return
                if fake.notice.is_set() and name == fake.key:
                    values[name] = preemption.NOTICES[name]
                body = values[name].encode()
                self.send_response(200)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", "application/text")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._timer = threading.Timer(SERVER_LIFETIME_S, self.server.shutdown)

    def __enter__(self):
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()


def _closed_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connections are refused


def _cli(model_dir, *extra):
    flags = {**TINY_TEST_FLAGS, "num_wavs": 0}
    return [
        sys.executable,
        "-u",
        "-m",
        "wavegan_dist.train",
        "--preset=tiny",
        "--strategy=cpu",
        f"--model_dir={model_dir}",
        *[f"--{k}={v}" for k, v in flags.items()],
        *extra,
    ]


@pytest.mark.parametrize("key", ["preempted", "maintenance-event"])
def test_a_preemption_notice_checkpoints_and_stops_the_run(tmp_path, key):
    run = tmp_path / "run"
    with FakeMetadataServer(key) as server:
        env = dict(os.environ, GCE_METADATA_IP=server.address)
        proc = subprocess.Popen(
            _cli(run, "--train_steps=500", "--ckpt_every=1000", "--sample_every=1000"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines = []
        try:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("step 3/500"):
                    server.notice.set()
            proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = "\n".join(lines)
    assert proc.returncode == 0, out[-4000:]
    base = f"http://{server.address}/computeMetadata/v1/instance/"
    assert f"watching {base} for a preemption or maintenance notice (every 1 s)" in lines
    value = preemption.NOTICES[key]
    stopped = [
        ln
        for ln in lines
        if ln.startswith(f"stopped by a preemption notice (instance/{key} is {value}) at step ")
    ]
    assert len(stopped) == 1, out[-4000:]
    step = int(stopped[0].split(" at step ")[1].split(":")[0])
    assert 3 <= step < 500
    state = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    assert state.model_checkpoint_path.endswith(f"ckpt-{step}")
    assert f"checkpoint {run}/checkpoints/ckpt-{step}" in lines
    assert not (run / "run.lock").exists()
    assert set(server.requests) <= {
        "/computeMetadata/v1/instance/preempted",
        "/computeMetadata/v1/instance/maintenance-event",
    }


def test_off_google_cloud_nothing_is_contacted_and_nothing_waits(tmp_path):
    not_google = tmp_path / "product_name"
    not_google.write_text("Standard PC (i440FX + PIIX, 1996)\n")
    notes = []
    # No GCE_METADATA_IP and a non-Google (or absent) DMI name: no server is looked for.
    for dmi in (not_google, tmp_path / "absent"):
        assert preemption.find_server("auto", {}, str(dmi), log=notes.append) is None
    assert notes == []
    # 'off' never looks, even where the server would answer.
    with FakeMetadataServer() as server:
        assert (
            preemption.find_server("off", {"GCE_METADATA_IP": server.address}, str(not_google))
            is None
        )
        assert server.requests == []


def test_a_google_cloud_machine_without_a_server_is_a_note_for_auto_and_an_error_for_on(tmp_path):
    google = tmp_path / "product_name"
    google.write_text("Google Compute Engine\n")
    env = {"GCE_METADATA_IP": f"127.0.0.1:{_closed_loopback_port()}"}
    notes = []
    assert preemption.find_server("auto", env, str(google), log=notes.append) is None
    assert len(notes) == 1 and notes[0].startswith(
        f"note: no metadata server answers at http://{env['GCE_METADATA_IP']}/"
    ), notes
    with pytest.raises(
        UserError,
        match=r"--preemption_watch=on: no metadata server answers "
        r"at http://127\.0\.0\.1:\d+/computeMetadata/v1/",
    ):
        preemption.find_server("on", env, str(google))
    with FakeMetadataServer() as server:
        base = preemption.find_server(
            "auto", {"GCE_METADATA_IP": server.address}, str(tmp_path / "absent")
        )
        assert base == f"http://{server.address}/computeMetadata/v1/instance/"
        assert preemption.notice(base) is None
        server.notice.set()
        assert preemption.notice(base) == "instance/preempted is TRUE"
