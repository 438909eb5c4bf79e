"""The built-in procedural dataset: schema, content, determinism and cache handling.

Builds a small instance on disk once per module with real deeplake.
"""

import os
import threading

import deeplake
import numpy as np
import pytest

from wavegan_dist.data import builtin
from wavegan_dist.data.schema import (
    COLUMNS,
    FAMILIES,
    NSYNTH_NUM_SAMPLES,
    QUALITIES,
    SOURCES,
    SPLITS,
    VELOCITIES,
    check_schema,
)
from wavegan_dist.errors import UserError

SIZES = {"train": 24, "valid": 8, "test": 8}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(cache dir, root, log lines, {split: {column: numpy array or list}})."""
    cache = str(tmp_path_factory.mktemp("cache"))
    lines = []
    root = builtin.ensure_builtin_dataset(cache, sizes=SIZES, log=lines.append)
    data = {}
    for split in SPLITS:
        ds = deeplake.open_read_only(os.path.join(root, split))
        check_schema(ds, split)
        data[split] = {name: ds[name][:] for name in COLUMNS}
        data[split]["_metadata"] = {key: ds.metadata[key] for key in ds.metadata.keys()}
    return cache, root, lines, data


def _rms(audio):
    return np.sqrt(np.mean(np.asarray(audio, np.float64) ** 2, axis=-1))


def test_layout_and_log(built):
    cache, root, lines, _ = built
    assert root.startswith(builtin.builtin_root(cache))
    assert root != builtin.builtin_root(cache)  # non-default sizes get their own folder
    assert sorted(os.listdir(root)) == sorted([*SPLITS, builtin.MARKER])
    assert not [name for name in os.listdir(cache) if ".tmp-" in name]
    assert len(lines) == 2
    assert lines[0].startswith("building built-in dataset (40 notes) at ")
    assert lines[1].startswith("built built-in dataset")


def test_schema_and_row_counts(built):
    *_, data = built
    for split, columns in data.items():
        n = SIZES[split]
        assert columns["audio"].dtype == np.int16
        assert columns["audio"].shape == (n, NSYNTH_NUM_SAMPLES)
        assert columns["qualities"].dtype == np.int8
        assert columns["qualities"].shape == (n, len(QUALITIES))
        for name, dtype in COLUMNS.items():
            assert len(columns[name]) == n, name
            if dtype == "text":
                assert all(isinstance(s, str) and s for s in columns[name]), name
            else:
                assert columns[name].dtype == dtype, name
        assert (columns["sample_rate"] == 16000).all()
        assert columns["_metadata"]["sample_rate"] == 16000


def test_names_and_ranges(built):
    *_, data = built
    all_notes = []
    for columns in data.values():
        notes = list(columns["note_str"])
        assert len(set(notes)) == len(notes)
        all_notes += notes
        for i, note in enumerate(notes):
            inst = columns["instrument_str"][i]
            family = FAMILIES[columns["instrument_family"][i]]
            source = SOURCES[columns["instrument_source"][i]]
            assert inst == f"{family}_{source}_{columns['instrument'][i]:03d}"
            assert note == f"{inst}-{columns['pitch'][i]:03d}-{columns['velocity'][i]:03d}"
    assert len(set(all_notes)) == len(all_notes)  # splits are disjoint

    train = data["train"]
    checks = {
        "pitch": (24, 96),
        "instrument_family": (0, len(FAMILIES) - 1),
        "instrument_source": (0, len(SOURCES) - 1),
    }
    for name, (lo, hi) in checks.items():
        assert lo <= train[name].min() and train[name].max() <= hi, name
        assert len(set(train[name])) > 1, name
    assert set(train["velocity"]) <= set(VELOCITIES)
    assert len(set(train["velocity"])) > 1
    assert set(np.unique(train["qualities"])) <= {0, 1}
    assert train["qualities"].any()


def test_audio_is_sound(built):
    *_, data = built
    audio = np.concatenate([columns["audio"] for columns in data.values()])
    velocity = np.concatenate([columns["velocity"] for columns in data.values()])
    peak = np.abs(audio.astype(np.int32)).max(axis=1)
    assert (peak > 100).all()  # not silent
    assert peak.max() < 32000  # not clipping
    rms = _rms(audio)
    assert rms[velocity >= 100].mean() > 2 * rms[velocity <= 50].mean()


def test_velocity_sets_loudness_of_matched_notes():
    for family in range(len(FAMILIES)):
        rms = [_rms(builtin.synthesize_note(60, v, family, 7)) for v in VELOCITIES]
        assert np.all(np.diff(rms) > 0), FAMILIES[family]


def test_synthesize_note_shape_range_and_determinism():
    for family in range(len(FAMILIES)):
        for pitch in (24, 60, 96):
            a = builtin.synthesize_note(pitch, 127, family, 42)
            assert a.dtype == np.float32 and a.shape == (NSYNTH_NUM_SAMPLES,)
            assert np.isfinite(a).all() and 0.1 < np.abs(a).max() <= 1.0
            b = builtin.synthesize_note(pitch, 127, family, 42)
            assert a.tobytes() == b.tobytes()
    other = builtin.synthesize_note(60, 127, 0, 43)
    assert other.tobytes() != builtin.synthesize_note(60, 127, 0, 42).tobytes()
    short = builtin.synthesize_note(60, 100, 3, 1, sample_rate=8000, num_samples=1000)
    assert short.shape == (1000,)


def test_pitch_is_the_fundamental():
    # Organ (harmonic) and mallet (stretched partials) both sound at the note's pitch.
    for family in (FAMILIES.index("organ"), FAMILIES.index("mallet")):
        audio = builtin.synthesize_note(69, 100, family, 3)[:16000]
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
        band = (freqs > 300) & (freqs < 600)
        assert abs(freqs[band][np.argmax(spectrum[band])] - 440) <= 2


def test_second_call_reuses(built):
    cache, root, _, data = built
    before = os.stat(os.path.join(root, "train")).st_mtime_ns
    lines = []
    assert builtin.ensure_builtin_dataset(cache, sizes=SIZES, log=lines.append) == root
    assert lines == [f"using built-in dataset at {root}"]
    assert os.stat(os.path.join(root, "train")).st_mtime_ns == before


def test_same_seed_same_bytes_other_seed_differs(built, tmp_path):
    *_, data = built
    same = builtin.ensure_builtin_dataset(str(tmp_path), sizes=SIZES, log=lambda _: None)
    other = builtin.ensure_builtin_dataset(str(tmp_path), sizes=SIZES, seed=5, log=lambda _: None)
    assert same != other
    for split in SPLITS:
        ds = deeplake.open_read_only(os.path.join(same, split))
        assert ds["audio"][:].tobytes() == data[split]["audio"].tobytes()
        assert list(ds["note_str"][:]) == list(data[split]["note_str"])
    other_train = deeplake.open_read_only(os.path.join(other, "train"))
    assert list(other_train["note_str"][:]) != list(data["train"]["note_str"])


def test_foreign_folder_raises_and_is_left_alone(tmp_path):
    root = os.path.join(tmp_path, "builtin-v%d-s1-2x1x1" % builtin.BUILTIN_VERSION)
    os.makedirs(os.path.join(root, "train"))
    with open(os.path.join(root, "train", "mine.txt"), "w") as f:
        f.write("keep me")
    with pytest.raises(UserError, match="not a complete built-in dataset"):
        builtin.ensure_builtin_dataset(
            str(tmp_path), seed=1, sizes={"train": 2, "valid": 1, "test": 1}
        )
    assert os.listdir(root) == ["train"]
    with open(os.path.join(root, "train", "mine.txt")) as f:
        assert f.read() == "keep me"


def test_bad_sizes_or_seed_raise(tmp_path):
    for sizes in ({"train": 0}, {"training": 3}, {"train": 2.5}, {"train": 100000}):
        with pytest.raises(UserError):
            builtin.ensure_builtin_dataset(str(tmp_path), sizes=sizes)
    with pytest.raises(UserError):
        builtin.ensure_builtin_dataset(str(tmp_path), seed=-1)
    assert os.listdir(tmp_path) == []


def test_concurrent_builders_build_once(tmp_path):
    sizes = {"train": 3, "valid": 1, "test": 1}
    # Left over from a killed build: removed by the next builder.
    stale = os.path.join(tmp_path, "builtin-v%d-s1234-3x1x1.tmp-1" % builtin.BUILTIN_VERSION)
    os.makedirs(stale)
    lines, roots, errors = [], [], []

    def run():
        try:
            roots.append(
                builtin.ensure_builtin_dataset(str(tmp_path), sizes=sizes, log=lines.append)
            )
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(roots) == 2 and roots[0] == roots[1]
    assert sum(line.startswith("building") for line in lines) == 1
    assert not os.path.exists(stale)
    assert os.path.isfile(os.path.join(roots[0], builtin.MARKER))


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("WAVEGAN_DIST_CACHE", str(tmp_path))
    assert builtin.default_cache_dir() == str(tmp_path)
    assert builtin.builtin_root() == os.path.join(tmp_path, f"builtin-v{builtin.BUILTIN_VERSION}")
    monkeypatch.delenv("WAVEGAN_DIST_CACHE")
    assert builtin.default_cache_dir() == os.path.expanduser("~/.cache/wavegan_dist")
