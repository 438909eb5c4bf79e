#!/usr/bin/env python3
r"""Runs a multi-worker training on this machine: N processes of `python -m wavegan_dist.train`.

    python launch/local_multiworker.py --workers=2 -- \
        --strategy=multiworker --preset=tiny --model_dir=runs/mw

Every worker gets its own TF_CONFIG (the same cluster of N workers on 127.0.0.1, on free
ports, and its own task index) and the train flags given after `--`, which must include
`--strategy=multiworker`. Worker 0 is the chief: it writes the run's checkpoints, config
and TensorBoard events; the others write throwaway checkpoints to a local temporary folder.

Output: every line a worker prints appears here prefixed with `[worker I] ` (stdout lines on
stdout, stderr lines on stderr); the launcher's own lines start with `[launcher] `.

Exit status: 0 if every worker exited 0. If a worker fails (non-zero status or killed by a
signal), the launcher says which and how, and gives the others --timeout seconds (default
60) to exit on their own: a multi-worker run cannot go on without a worker, and the others
normally fail by themselves within seconds. Workers still running then (and likewise
workers still running --timeout seconds after another one finished) are stopped with
SIGTERM, then SIGKILL 10 s later, and the launcher exits 1. Ctrl-C or SIGTERM to the
launcher is passed on to the workers as SIGTERM (training then checkpoints at its next step
boundary and stops); workers still running --timeout seconds later, or at a second Ctrl-C,
are killed, and the launcher exits 130 (SIGINT) or 143 (SIGTERM). Bad launcher arguments:
one `error: ...` line and exit 2. If the launcher itself is killed, the kernel kills its
workers (Linux).

Needs only the Python standard library (the workers import wavegan_dist).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
KILL_GRACE_S = 10.0  # after SIGTERM, before SIGKILL
POLL_S = 0.1
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USAGE = (
    "python launch/local_multiworker.py --workers=N [--base_port=0] [--timeout=SECONDS] "
    "-- --strategy=multiworker <train flags>"
)


class ArgError(Exception):
    """A bad launcher argument: printed as one `error:` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and a multi-line message
        raise ArgError(message)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Splits argv at the first `--` into launcher options and train flags, and checks both.

    Returns:
      (launcher options, train flags). Raises ArgError for anything wrong.
    """
    if any(a in ("-h", "--help") for a in argv[: argv.index("--") if "--" in argv else None]):
        print(__doc__.strip())
        sys.exit(0)
    if "--" not in argv:
        raise ArgError(
            "no train flags: put them after `--`, e.g. "
            "-- --strategy=multiworker --model_dir=DIR (usage: " + USAGE + ")"
        )
    split = argv.index("--")
    own, train_flags = argv[:split], argv[split + 1 :]
    parser = _Parser(prog="local_multiworker.py", add_help=False, allow_abbrev=False)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--base_port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(own)
    if args.workers < 1:
        raise ArgError(f"--workers must be >= 1, got {args.workers}")
    if args.base_port and not 1024 <= args.base_port <= 65535 - args.workers + 1:
        raise ArgError(
            f"--base_port must be 0 (free ports) or 1024..{65536 - args.workers} "
            f"for {args.workers} worker(s), got {args.base_port}"
        )
    if not args.timeout > 0:
        raise ArgError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    if not train_flags:
        raise ArgError(
            "no train flags after `--`: give at least --strategy=multiworker and --model_dir=DIR"
        )
    strategy = _strategy_flag(train_flags)
    if strategy != "multiworker":
        given = f"--strategy={strategy}" if strategy else "no --strategy"
        raise ArgError(
            f"the train flags have {given}; add --strategy=multiworker after `--` "
            "(every worker must run MultiWorkerMirroredStrategy)"
        )
    return args, train_flags


def _strategy_flag(flags: list[str]) -> str | None:
    """The value of the last --strategy flag in `flags` (absl syntax), or None."""
    value = None
    for i, arg in enumerate(flags):
        name, eq, rest = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name != "strategy":
            continue
        if eq:
            value = rest
        elif i + 1 < len(flags):
            value = flags[i + 1]
    return value


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports that were free on HOST a moment ago (all bound at once, so no
    port is handed out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    """TF_CONFIG for worker `index` of a cluster of workers at `addresses`."""
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


def describe_status(returncode: int) -> str:
    """'exited with status N' or 'was killed by signal SIGNAME (N)'."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown signal"
    return f"was killed by signal {name} ({-returncode})"


class Output:
    """Writes lines from several threads without interleaving them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._closed = set()  # streams whose reader went away (e.g. `| head`)

    def write(self, stream, data: bytes) -> None:
        with self._lock:
            if stream in self._closed:
                return  # keep draining the workers' pipes so they never block
            try:
                stream.buffer.write(data)
                stream.buffer.flush()
            except (BrokenPipeError, ValueError, OSError):
                self._closed.add(stream)

    def note(self, message: str) -> None:
        self.write(sys.stderr, f"[launcher] {message}\n".encode())


def _pump(pipe, stream, prefix: bytes, out: Output) -> None:
    """Copies `pipe` line by line to `stream` with `prefix` until EOF."""
    with pipe:
        for line in iter(pipe.readline, b""):
            if not line.endswith(b"\n"):
                line += b"\n"
            out.write(stream, prefix + line)


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl() if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


class Worker:
    """One training process and the threads that copy its output."""

    def __init__(self, index: int, cmd: list[str], env: dict, out: Output):
        self.index = index
        parent = os.getpid()

        def preexec():
            # In the child before exec: if the launcher itself dies without stopping its
            # workers (SIGKILL, a crash), the kernel kills them too, so none is left
            # behind waiting for peers. (Loaded beforehand: no import after fork.)
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the launcher died before prctl took effect
                os._exit(1)

        # Its own session: a Ctrl-C at the terminal reaches the launcher only, which
        # passes it on; the worker's group can be signalled as a whole.
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec if _PRCTL else None,
        )
        prefix = f"[worker {index}] ".encode()
        self.threads = [
            threading.Thread(target=_pump, args=(pipe, stream, prefix, out), daemon=True)
            for pipe, stream in ((self.proc.stdout, sys.stdout), (self.proc.stderr, sys.stderr))
        ]
        for t in self.threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the worker and anything it started
        except (ProcessLookupError, PermissionError):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def join_output(self, timeout: float = 5.0) -> None:
        for t in self.threads:
            t.join(timeout)


class Launcher:
    """Starts the workers, watches them and decides the exit status."""

    def __init__(self, args: argparse.Namespace, train_flags: list[str], out: Output):
        self.args = args
        self.train_flags = train_flags
        self.out = out
        self.workers: list[Worker] = []
        self.interrupted: int | None = None  # the signal that asked us to stop
        self._signals = 0

    def _on_signal(self, signum, _frame) -> None:
        self._signals += 1
        if self.interrupted is None:
            self.interrupted = signum
        # A first signal asks the workers to stop (below, in the main loop); a second
        # one kills them at once.
        if self._signals > 1:
            for w in self.workers:
                w.signal(signal.SIGKILL)

    def _env(self, config: str) -> dict:
        env = dict(os.environ, TF_CONFIG=config, PYTHONUNBUFFERED="1")
        if os.path.isfile(os.path.join(REPO_ROOT, "wavegan_dist", "__init__.py")):
            # The package next to this script, even when it is not installed.
            path = env.get("PYTHONPATH", "")
            env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
        return env

    def start(self) -> None:
        n = self.args.workers
        ports = (
            list(range(self.args.base_port, self.args.base_port + n))
            if self.args.base_port
            else free_ports(n)
        )
        addresses = [f"{HOST}:{p}" for p in ports]
        self.out.note(f"starting {n} worker(s): {', '.join(addresses)}")
        cmd = [sys.executable, "-m", "wavegan_dist.train", *self.train_flags]
        for i in range(n):
            w = Worker(i, cmd, self._env(tf_config(addresses, i)), self.out)
            self.workers.append(w)
            self.out.note(f"worker {i} is pid {w.pid}")

    def _running(self) -> list[Worker]:
        return [w for w in self.workers if w.poll() is None]

    def _stop(self, workers: list[Worker], why: str, grace: float) -> None:
        """SIGTERM to `workers`, SIGKILL to those still running `grace` seconds later."""
        if not workers:
            return
        self.out.note(
            f"{why}: sending SIGTERM to worker(s) {', '.join(str(w.index) for w in workers)}"
        )
        for w in workers:
            w.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self._running() and time.monotonic() < deadline and self._signals < 2:
            time.sleep(POLL_S)
        for w in self._running():
            self.out.note(f"worker {w.index} still running {grace:g} s after SIGTERM: SIGKILL")
            w.signal(signal.SIGKILL)
        for w in workers:
            w.proc.wait()

    def watch(self) -> int:
        """Waits for the workers; returns the launcher's exit status."""
        first_failure: Worker | None = None
        reported: set[int] = set()
        deadline = None  # when still-running workers get stopped
        forwarded = False
        stopped_by_launcher: set[int] = set()
        while True:
            if self.interrupted is not None and not forwarded:
                forwarded = True
                name = signal.Signals(self.interrupted).name
                running = self._running()
                stopped_by_launcher.update(w.index for w in running)
                # The workers checkpoint and stop at their next step boundary (or at
                # once before training starts); a second signal kills them.
                self._stop(running, f"got {name}", self.args.timeout)
            for w in self.workers:
                code = w.poll()
                if code is None or w.index in reported:
                    continue
                reported.add(w.index)
                if w.index in stopped_by_launcher:
                    continue
                if code == 0:
                    self.out.note(f"worker {w.index} finished (exit status 0)")
                else:
                    self.out.note(f"worker {w.index} (pid {w.pid}) {describe_status(code)}")
                    first_failure = first_failure or w
                if deadline is None and self._running() and (code or not forwarded):
                    # A multi-worker run ends together: after a failure the others cannot
                    # go on (they normally fail by themselves within seconds), and after a
                    # success they are at most a few steps of chief-only work behind.
                    deadline = time.monotonic() + self.args.timeout
                    self.out.note(
                        f"waiting up to {self.args.timeout:g} s for the other worker(s) to exit"
                    )
            running = self._running()
            if not running:
                break
            if deadline is not None and time.monotonic() >= deadline and not forwarded:
                stopped_by_launcher.update(w.index for w in running)
                self._stop(
                    running,
                    f"worker(s) still running {self.args.timeout:g} s after "
                    f"worker {(first_failure or self._first_done()).index} exited",
                    KILL_GRACE_S,
                )
                deadline = None
            time.sleep(POLL_S)
        for w in self.workers:
            w.join_output()
        return self._summary(first_failure, stopped_by_launcher)

    def _first_done(self) -> Worker:
        return next(w for w in self.workers if w.poll() is not None)

    def _summary(self, first_failure: Worker | None, stopped: set[int]) -> int:
        if self.interrupted is not None:
            name = signal.Signals(self.interrupted).name
            states = ", ".join(
                f"worker {w.index} {describe_status(w.proc.returncode)}" for w in self.workers
            )
            print(f"error: interrupted by {name}: {states}", file=sys.stderr, flush=True)
            return 128 + self.interrupted
        if first_failure is None and not stopped:
            self.out.note(f"all {len(self.workers)} worker(s) exited 0")
            return 0
        first = first_failure or next(w for w in self.workers if w.index in stopped)
        parts = []
        for w in [first] + [w for w in self.workers if w is not first]:
            how = describe_status(w.proc.returncode)
            if w.index in stopped:
                how = f"did not exit within {self.args.timeout:g} s and was stopped ({how})"
            parts.append(f"worker {w.index} {how}")
        print(f"error: {'; '.join(parts)}", file=sys.stderr, flush=True)
        return 1


def main(argv: list[str]) -> int:
    try:
        args, train_flags = parse_args(argv)
    except ArgError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    out = Output()
    launcher = Launcher(args, train_flags, out)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, launcher._on_signal)
    try:
        launcher.start()
    except OSError as err:
        for w in launcher.workers:
            w.signal(signal.SIGKILL)
        print(f"error: cannot start the workers: {err}", file=sys.stderr, flush=True)
        return 1
    return launcher.watch()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
