"""`--help` on every command: its description and its own flags, exit 0, no internal names."""

import pytest

from conftest import run_module

pytestmark = pytest.mark.slow

# Entry point (module and subcommand) -> first words of its help, and flags it must list.
COMMANDS = {
    ("train",): (
        "`python -m wavegan_dist.train`",
        {"model_dir", "preset", "strategy", "batch_size", "data", "train_steps"},
    ),
    ("models",): (
        "`python -m wavegan_dist.models",
        {"model", "slice_len", "dim", "kernel_len", "phase_shuffle"},
    ),
    ("ingest",): (
        "`python -m wavegan_dist.ingest`",
        {"source", "format", "dest", "metadata", "chunk_rows"},
    ),
    ("prepare",): (
        "`python -m wavegan_dist.prepare`",
        {"data", "dest", "shards", "slice_len", "slice_offset", "condition", "seed"},
    ),
    ("generate",): (
        "`python -m wavegan_dist.generate`",
        {"model_dir", "n", "out", "export", "pitch", "weights"},
    ),
    ("evaluate",): (
        "`python -m wavegan_dist.evaluate`",
        {"model_dir", "classifier", "heldout_split", "json", "compare_png"},
    ),
    ("evaluate", "train-classifier"): (
        "`python -m wavegan_dist.evaluate`",
        {"out", "target", "epochs"},
    ),
    ("bench",): (
        "`python -m wavegan_dist.bench {data,train,learn,scale,make-nsynth-size}",
        {"batches", "repeats", "learn_steps", "json"},
    ),
    ("bench", "data"): ("`python -m wavegan_dist.bench data", {"batches", "train_batch", "json"}),
    ("bench", "train"): ("`python -m wavegan_dist.bench train", {"repeats", "no_torch", "device"}),
    ("bench", "learn"): (
        "`python -m wavegan_dist.bench learn",
        {"learn_steps", "generated", "workdir"},
    ),
    ("bench", "scale"): (
        "`python -m wavegan_dist.bench scale",
        {"from_json", "utilization", "write_mb_per_sec", "json"},
    ),
    ("bench", "make-nsynth-size"): (
        "`python -m wavegan_dist.bench make-nsynth-size",
        {"dest", "rows", "json"},
    ),
}
# Words from the code that are no help to a user (exception classes, module constants,
# absl's module-by-module listing, notes meant for developers).
INTERNAL = (
    "UserError",
    "schema.",
    "FLAGS",
    "tests",
    "Traceback",
    "absl",
    "wavegan_dist/",
    ".py",
    "issue",
    "--helpfull",
)


def _listed_flags(text):
    """Names of the flags listed under `flags:` (one `  --name...` line each)."""
    listing = text.split("\nflags:\n", 1)[1]
    heads = [line.strip() for line in listing.splitlines() if line.startswith("  --")]
    return {
        head.split("=")[0].split(" ")[0].removeprefix("--").removeprefix("[no]") for head in heads
    }


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_lists_the_commands_own_flags(command):
    module, *subcommand = command
    proc = run_module(module, *subcommand, "--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    first_words, expected = COMMANDS[command]
    assert proc.stdout.startswith(first_words), proc.stdout[:200]
    listed = _listed_flags(proc.stdout)
    assert expected <= listed, expected - listed
    assert not {"verbosity", "logtostderr", "pdb", "help"} & listed  # absl's, not the command's
    for word in INTERNAL:
        assert word not in proc.stdout, word


def test_generate_help_says_a_pitch_range_includes_its_stop():
    text = " ".join(run_module("generate", "--help", timeout=60).stdout.split())
    assert "start:stop:step whose stop is included" in text
    assert "36:84:6 is 36, 42, ..., 84" in text


def test_every_help_flag_gives_the_same_help():
    texts = [
        run_module("train", flag, timeout=60)
        for flag in ("--help", "-h", "-?", "--helpshort", "--helpfull", "-helpfull")
    ]
    assert [p.returncode for p in texts] == [0] * len(texts)
    assert len({p.stdout for p in texts}) == 1


def test_examples_keep_their_continuation_lines():
    for module in ("train", "evaluate", "ingest"):
        text = run_module(module, "--help", timeout=60).stdout
        continued = [line for line in text.splitlines() if line.endswith(" \\")]
        assert continued, module
        assert all("  " not in line.strip() for line in continued), continued


def test_bench_subcommand_help_lists_only_its_flags():
    listed = _listed_flags(run_module("bench", "train", "--help", timeout=60).stdout)
    assert {"repeats", "device", "json"} <= listed
    assert "learn_steps" not in listed and "batches" not in listed


def test_help_after_other_flags_and_errors_point_to_it():
    proc = run_module("generate", "--n=3", "--help", timeout=60)
    assert proc.returncode == 0 and "--export=<string>" in proc.stdout
    bad = run_module("generate", "--nonsense=1", timeout=60)
    assert bad.returncode == 2 and "(see --help)" in bad.stderr
