"""`tensorboard --logdir` (the command the README gives) serving a real training run.

TensorBoard runs as a user starts it, from this Python's environment, on a loopback
port the OS picks; the test reads the run back through TensorBoard's HTTP data API
(the routes its web page calls) and always stops the server.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from conftest import TINY_TEST_FLAGS, run_module

pytestmark = pytest.mark.slow

START_SECONDS = 120  # bound on TensorBoard starting and loading the run


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    """A folder holding one tiny finished run, `tiny`, as `runs/` would."""
    root = tmp_path_factory.mktemp("runs")
    proc = run_module(
        "train",
        "--preset=tiny",
        "--train_steps=2",
        f"--model_dir={root / 'tiny'}",
        *[f"--{k}={v}" for k, v in TINY_TEST_FLAGS.items()],
    )
    assert proc.returncode == 0, proc.stderr
    return root


def _tensorboard_command():
    """The `tensorboard` script installed beside this Python (what a venv's PATH finds)."""
    return os.path.join(os.path.dirname(sys.executable), "tensorboard")


def _start(logdir, log_path):
    """Starts TensorBoard on 127.0.0.1 and an OS-chosen port; returns (process, base URL).

    Fails with TensorBoard's own output if it exits or does not announce its address
    within START_SECONDS.
    """
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [_tensorboard_command(), f"--logdir={logdir}", "--host=127.0.0.1", "--port=0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=os.environ,
    )
    log.close()
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        with open(log_path) as f:
            found = re.search(r"at (http://127\.0\.0\.1:\d+/)", f.read())
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    return proc, None


def _stop(proc):
    """Stops TensorBoard and the data server it started (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _get(base, route, **query):
    """The body of GET base + route?query (bytes)."""
    url = base + route + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return response.read()


def _get_json(base, route, **query):
    return json.loads(_get(base, route, **query))


def _wait_for_scalars(base, run, tag):
    """Polls TensorBoard's scalar tags until `tag` of `run` is loaded (bounded)."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if tag in _get_json(base, "data/plugin/scalars/tags").get(run, {}):
            return
        time.sleep(1)
    raise AssertionError(f"TensorBoard did not load {run}/{tag} in {START_SECONDS} s")


def test_tensorboard_serves_a_run(run_root, tmp_path):
    proc, base = _start(run_root, tmp_path / "tensorboard.log")
    try:
        assert base, (tmp_path / "tensorboard.log").read_text()[-3000:]
        _wait_for_scalars(base, "tiny", "loss/critic")
        assert _get_json(base, "data/runs") == ["tiny"]
        plugins = _get_json(base, "data/plugins_listing")
        assert all(plugins[name]["enabled"] for name in ("scalars", "audio", "images"))

        scalar_tags = _get_json(base, "data/plugin/scalars/tags")["tiny"]
        assert {
            "loss/critic",
            "loss/generator",
            "loss/gradient_penalty",
            "loss/wasserstein",
        } <= scalar_tags.keys()
        critic = _get_json(base, "data/plugin/scalars/scalars", run="tiny", tag="loss/critic")
        assert [step for _, step, _ in critic] == [1, 2]  # [wall time, step, value] per point
        assert all(abs(value) < 1e6 for *_, value in critic)

        assert {"audio/generated", "audio/real"} <= _get_json(base, "data/plugin/audio/tags")[
            "tiny"
        ].keys()
        clips = _get_json(base, "data/plugin/audio/audio", run="tiny", tag="audio/generated")
        assert [clip["step"] for clip in clips] == [2]
        wav = _get(base, "data/plugin/audio/individualAudio?" + clips[0]["query"])
        assert wav[:4] == b"RIFF" and int.from_bytes(wav[24:28], "little") == 16000

        images = _get_json(
            base, "data/plugin/images/images", run="tiny", tag="spectrogram/generated"
        )
        assert [image["step"] for image in images] == [2]
        png = _get(base, "data/plugin/images/individualImage?" + images[0]["query"])
        assert png[:4] == b"\x89PNG"
    finally:
        _stop(proc)
    assert proc.returncode is not None
