"""`python -m wavegan_dist.evaluate` on the built-in dataset and a real (tiny) run."""

import functools
import json
import math
import os
import shutil

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist.config import make_config
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow


_evaluate = functools.partial(run_module, "evaluate")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, builtin_root):
    """A pitch classifier (few epochs) and a tiny conditional run, made once."""
    root = tmp_path_factory.mktemp("eval")
    proc = _evaluate("train-classifier", f"--out={root / 'cls'}", "--slice_len=2048", "--epochs=3")
    assert proc.returncode == 0, proc.stderr
    run = root / "run"
    run_training(
        make_config(
            "tiny",
            **{
                **TINY_TEST_FLAGS,
                "slice_len": 1024,
                "train_steps": 2,
                "condition": "pitch",
                "num_wavs": 0,
                "model_dir": str(run),
            },
        ),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=lambda _: None,
    )
    return root, proc.stdout


def test_train_classifier_reports_held_out_accuracy_and_saves(trained):
    root, out = trained
    line = [x for x in out.splitlines() if x.startswith("held-out accuracy (valid): ")]
    assert len(line) == 1 and "over 128 pitch classes" in line[0]
    info = json.loads((root / "cls" / "classifier.json").read_text())
    assert info["target"] == "pitch" and info["slice_len"] == 2048 and info["sample_rate"] == 16000
    assert 0.0 <= info["heldout_accuracy"] <= 1.0
    # Nothing is overwritten.
    assert "already holds a classifier" in error_line(
        _evaluate("train-classifier", f"--out={root / 'cls'}", "--epochs=1")
    )


def test_evaluate_prints_a_table_and_writes_json(trained):
    root, _ = trained
    report = root / "new" / "report.json"  # its folder is created
    proc = _evaluate(
        f"--model_dir={root / 'run'}",
        f"--classifier={root / 'cls'}",
        "--n=24",
        "--k=10",
        f"--json={report}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "metric" in proc.stdout and "real held-out" in proc.stdout
    assert "reference data: builtin (the run's --data, from " in proc.stdout
    result = json.loads(report.read_text())
    assert result["n_generated"] == 24 and result["n_heldout"] == 48 and result["k"] == 10
    assert result["weights"] == "ema"  # the tiny preset keeps a generator EMA
    for row in ("generated", "real_heldout"):
        values = result[row]
        assert 1.0 <= values["inception_score"] <= 128
        assert values["frechet_distance"] >= 0 and 0 <= values["ndb"] <= 10
        assert 0.0 <= values["pitch_accuracy"] <= 1.0  # conditional on pitch: scored
        assert values["nearest_train_distance"] >= 0
        # The independent judge: pYIN accuracy (a pitch-conditional run) and artifact lines.
        assert 0.0 <= values["judge_pitch_accuracy"] <= values["judge_pitch_accuracy_octave"] <= 1
        assert 0.0 < values["artifact_power_sr_over_256"] < 1.0
    assert result["generated"]["artifact_vs_real_sr_over_16"] > 0


def test_compare_png_puts_a_real_note_beside_a_generated_one_per_pitch(
    trained, tmp_path, builtin_root
):
    from wavegan_dist.inference import compare
    from wavegan_dist.media import grid
    from wavegan_dist.media.labels import midi_hz

    root, _ = trained
    png = tmp_path / "pictures" / "compare.png"  # its folder is created
    proc = _evaluate(
        f"--model_dir={root / 'run'}",
        f"--classifier={root / 'cls'}",
        "--n=8",
        "--k=4",
        f"--compare_png={png}",
    )
    assert proc.returncode == 0, proc.stderr
    pitches = sorted(set(_column(os.path.join(builtin_root, "valid"), "pitch").tolist()))
    line = proc.stdout.splitlines()[-1]
    assert line.startswith(
        f"wrote {png}: {len(pitches)} pitch labels ({pitches[0]}-"
        f"{pitches[-1]}), real valid note beside generated"
    ), line
    image = tf.io.decode_png(tf.io.read_file(str(png))).numpy()
    h, w = grid.cell_size()
    cols = 2 * compare.pairs_per_row(len(pitches))
    rows = -(-2 * len(pitches) // cols)
    assert image.shape == (rows * h + (rows - 1) * grid.GAP, cols * w + (cols - 1) * grid.GAP, 3)
    for i, pitch in enumerate(pitches):
        y = grid.TOP + grid.freq_row(midi_hz(pitch), 16000)
        for side in (0, 1):  # real, then generated: both marked at the pitch's f0
            top, left = divmod(2 * i + side, cols)
            cell = image[top * (h + grid.GAP) :, left * (w + grid.GAP) :]
            mark = cell[y, grid.LEFT + grid.PANEL_W + 1 : grid.LEFT + grid.PANEL_W + 6]
            assert (mark == grid.MARK).all(), (pitch, side)
    for side in (0, 1):  # spectrograms, not flat fills
        left = side * (w + grid.GAP) + grid.LEFT
        panel = image[grid.TOP : grid.TOP + grid.PANEL_H, left : left + grid.PANEL_W]
        assert panel.std() > 10
    # Never overwritten; an unconditional run has no labels to pair notes by.
    before = png.read_bytes()
    assert "already exists; nothing is overwritten" in error_line(
        _evaluate(
            f"--model_dir={root / 'run'}", f"--classifier={root / 'cls'}", f"--compare_png={png}"
        )
    )
    assert png.read_bytes() == before
    unconditional = tmp_path / "unconditional"
    shutil.copytree(root / "run", unconditional)
    config = json.loads((unconditional / "config.json").read_text())
    (unconditional / "config.json").write_text(json.dumps({**config, "condition": "none"}))
    assert "is unconditional" in error_line(
        _evaluate(
            f"--model_dir={unconditional}",
            f"--classifier={root / 'cls'}",
            f"--compare_png={tmp_path / 'u.png'}",
        )
    )
    assert not (tmp_path / "u.png").exists()


def test_evaluate_bad_input_is_one_line(trained, tmp_path):
    root, _ = trained
    assert "pass --model_dir=RUN and --classifier" in error_line(_evaluate())
    assert "is not a classifier folder" in error_line(
        _evaluate(f"--model_dir={root / 'run'}", f"--classifier={tmp_path}")
    )
    assert "unknown subcommand" in error_line(_evaluate("judge"))


def test_eval_every_writes_eval_scalars_hparams_and_keeps_the_best_checkpoint(trained, tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    root, _ = trained
    logs = []
    run_training(
        make_config(
            "tiny",
            **{
                **TINY_TEST_FLAGS,
                "slice_len": 1024,
                "train_steps": 4,
                "num_wavs": 0,
                "eval_every": 2,
                "ckpt_every": 4,
                "condition": "pitch",
                "eval_classifier": str(root / "cls"),
                "model_dir": str(tmp_path),
            },
        ),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=logs.append,
    )
    evals = [line for line in logs if line.startswith("eval at step ")]
    assert [line.split()[3].rstrip(":") for line in evals] == ["2", "4"]
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"eval/inception_score", "eval/frechet_distance", "eval/ndb"} <= tags
    assert {
        "eval/judge_pitch_accuracy",
        "eval/judge_pitch_accuracy_octave",
        "eval/artifact_power_sr_over_256",
        "eval/artifact_vs_real_sr_over_16",
    } <= tags
    assert "_hparams_/session_start_info" in tags
    assert [e.step for e in acc.Tensors("eval/frechet_distance")] == [2, 4]
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    fids = {
        e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("eval/frechet_distance")
    }
    assert best["step"] == min(fids, key=fids.get)
    assert abs(best["frechet_distance"] - fids[best["step"]]) < 1e-3
    # The best checkpoint is a complete copy that tf.train finds on its own.
    found = tf.train.latest_checkpoint(str(tmp_path / "best"))
    assert found.endswith(f"ckpt-{best['step']}")
    assert (
        int(tf.train.load_checkpoint(found).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
        == best["step"]
    )


def test_scoring_data_at_another_rate_than_the_classifier_is_refused(builtin_root):
    """load_references (evaluate, --eval_every and bench learn all score through it)."""
    from wavegan_dist.data.schema import LABEL_CLASSES
    from wavegan_dist.errors import UserError
    from wavegan_dist.evaluation import classifier, run as evaluation

    info = classifier.ClassifierInfo("pitch", LABEL_CLASSES["pitch"], 1024, 8000, 0.5, "x")
    with pytest.raises(UserError, match="is 16000 Hz audio but the classifier takes 8000 Hz"):
        evaluation.load_references(info, builtin_root, "none", log=lambda _: None)


def _column(split_path, name):
    import deeplake
    import numpy as np

    ds = deeplake.open_read_only(str(split_path))  # kept open while its column is read
    return np.asarray(ds[name][:])


def _heldout_count(split_path, pitch_min):
    import numpy as np

    return int(np.sum(_column(split_path, "pitch") >= pitch_min))


def test_evaluate_scores_against_the_data_and_filters_the_run_recorded(
    trained, tmp_path, builtin_root
):
    root, _ = trained
    data = tmp_path / "nsynth"  # its valid split is the built-in test split
    data.mkdir()
    (data / "train").symlink_to(os.path.join(builtin_root, "train"))
    (data / "valid").symlink_to(os.path.join(builtin_root, "test"))
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": str(data), "pitch_min": 60}))
    report = tmp_path / "report.json"
    proc = _evaluate(
        f"--model_dir={run}",
        f"--classifier={root / 'cls'}",
        "--n=8",
        "--k=4",
        "--max_train=40",
        f"--json={report}",
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        f"reference data: {data} (the run's --data, from {run}/config.json): training notes "
        "from its train split, held-out notes from valid, rows filtered as the run's "
        "(pitch_min=60)"
    ) in proc.stdout
    result = json.loads(report.read_text())
    assert result["data"] == str(data)
    assert result["n_heldout"] == _heldout_count(data / "valid", 60)
    # An explicit --data wins; the run's filters still describe what it learned.
    proc = _evaluate(
        f"--model_dir={run}",
        f"--classifier={root / 'cls'}",
        "--n=8",
        "--k=4",
        "--max_train=40",
        "--data=builtin",
        f"--json={report}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "reference data: builtin (--data)" in proc.stdout
    result = json.loads(report.read_text())
    assert result["n_heldout"] == _heldout_count(os.path.join(builtin_root, "valid"), 60)


def test_a_held_out_split_that_is_the_training_data_is_refused(trained, tmp_path, builtin_root):
    """A dataset without splits is read whatever the split: its "held-out" notes would be
    the training notes, and the real held-out Frechet distance 0."""
    from wavegan_dist.errors import UserError
    from wavegan_dist.evaluation.run import check_heldout_split

    root, _ = trained
    single = os.path.join(builtin_root, "train")
    line = error_line(
        _evaluate("train-classifier", f"--data={single}", f"--out={tmp_path / 'cls'}", "--epochs=1")
    )
    assert f"--data={single} is one dataset with no valid split" in line
    assert "ingest --format=audio-folder --valid_fraction=" in line
    assert "--heldout_split=train" in line
    assert not (tmp_path / "cls").exists()
    assert "one dataset with no test split" in error_line(
        _evaluate(
            f"--model_dir={root / 'run'}",
            f"--classifier={root / 'cls'}",
            f"--data={single}",
            "--heldout_split=test",
        )
    )
    check_heldout_split(single, "train")  # scoring against the training notes on purpose
    with pytest.raises(UserError, match="one dataset with no valid split"):
        run_training(
            make_config(
                "tiny",
                **{
                    **TINY_TEST_FLAGS,
                    "train_steps": 2,
                    "num_wavs": 0,
                    "data": single,
                    "eval_every": 2,
                    "eval_classifier": str(root / "cls"),
                    "model_dir": str(tmp_path / "run"),
                },
            ),
            tf.distribute.OneDeviceStrategy("/cpu:0"),
            log=lambda _: None,
        )


def test_evaluate_outputs_are_checked_before_the_work(trained, tmp_path):
    root, _ = trained
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    line = error_line(
        _evaluate(
            f"--model_dir={root / 'run'}",
            f"--classifier={root / 'cls'}",
            f"--json={a_file}/report.json",
        )
    )
    assert (
        line == f"error: --json={a_file}/report.json: {a_file} is a file, not a folder; "
        "pass another path"
    )
    line = error_line(_evaluate("train-classifier", f"--out={a_file}", "--epochs=1"))
    assert line == f"error: --out={a_file}: {a_file} is a file, not a folder; pass another path"
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("module,flag", [("evaluate", "--classifier"), ("generate", "--out")])
def test_a_run_folder_on_unreachable_cloud_storage_is_one_line(module, flag, tmp_path):
    """No network here (nor in CI): TensorFlow's gs:// file system raises; one line, no
    traceback."""
    proc = run_module(
        module, "--model_dir=gs://bucket/runs/tiny", f"{flag}={tmp_path / 'x'}", timeout=150
    )
    assert error_line(proc).startswith("error: cannot read gs://bucket/runs/tiny (")


def test_bench_learn_reports_the_independent_judge(trained, tmp_path):
    from wavegan_dist.bench.learn import measure_learning

    root, _ = trained
    report = measure_learning(
        1,
        condition="pitch",
        classifier_dir=str(root / "cls"),
        workdir=str(tmp_path / "learn"),
        generated=8,
        log=lambda _: None,
    )
    for name in ("untrained", "trained", "real"):
        assert 0.0 <= report[f"judge_pitch_accuracy_{name}"] <= 1.0
        assert (
            report[f"judge_pitch_accuracy_octave_{name}"] >= report[f"judge_pitch_accuracy_{name}"]
        )
        assert 0.0 < report[f"artifact_power_sr_over_256_{name}"] < 1.0
        assert 0.0 < report[f"artifact_power_sr_over_16_{name}"] < 1.0
    assert report["judge_pitch_accuracy_real"] >= 0.9  # the procedural notes are on pitch
    # The plain log-mel Frechet distance: real held-out notes sit far closer to the
    # training notes than the untrained generator's noise.
    assert (
        0
        < report["log_mel_frechet_distance_real"]
        < 0.5 * report["log_mel_frechet_distance_untrained"]
    )
    assert report["log_mel_trained_over_untrained"] == pytest.approx(
        report["log_mel_frechet_distance_trained"] / report["log_mel_frechet_distance_untrained"]
    )
    for name in ("untrained", "trained", "real"):
        assert (
            0
            <= report[f"log_mel_mean_term_{name}"]
            <= report[f"log_mel_frechet_distance_{name}"] * (1 + 1e-9)
        )
        assert math.isfinite(report[f"log_mel_level_db_{name}"])
    assert report["preset"] == "tiny" and report["frechet_distance_real"] >= 0
