"""Evaluation metrics on cases with known answers."""

import math

import numpy as np
import pytest

from wavegan_dist.evaluation import metrics


def test_inception_score_of_uniform_and_confident_predictions():
    assert metrics.inception_score(np.full((40, 10), 0.1)) == pytest.approx(1.0)
    one_hot = np.eye(10)[np.arange(40) % 10]  # confident, spread evenly over 10 classes
    assert metrics.inception_score(one_hot) == pytest.approx(10.0, rel=1e-6)
    collapsed = np.eye(10)[np.zeros(40, int)]  # confident but always the same class
    assert metrics.inception_score(collapsed) == pytest.approx(1.0)
    half = np.eye(10)[np.arange(40) % 5]  # 5 of the 10 classes
    assert metrics.inception_score(half) == pytest.approx(5.0, rel=1e-6)


def test_frechet_distance_of_identical_and_shifted_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.arange(8) / 4.0
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)
    # Scaled by 2: the covariance term alone, Tr(S + 4S - 2*2S) = Tr(S).
    assert metrics.frechet_distance(a, 2 * a) == pytest.approx(
        np.sum(a.mean(0) ** 2) + np.trace(np.cov(a, rowvar=False)), rel=1e-6
    )
    with pytest.raises(ValueError):
        metrics.frechet_distance(a, a[:, :4])
    # The mean term is the whole distance of a shift and none of a centred rescale.
    assert metrics.frechet_mean_term(a, a + shift) == pytest.approx(np.sum(shift**2))
    centred = a - a.mean(0)
    assert metrics.frechet_mean_term(centred, 2 * centred) == pytest.approx(0.0, abs=1e-12)


def test_pitch_accuracy_and_entropy():
    labels = np.array([0, 1, 2, 3])
    assert metrics.pitch_accuracy(np.eye(4)[labels], labels) == 1.0
    assert metrics.pitch_accuracy(np.eye(4)[[1, 1, 2, 0]], labels) == 0.5
    assert metrics.pitch_entropy(np.eye(4)[labels]) == pytest.approx(0.0, abs=1e-9)
    assert metrics.pitch_entropy(np.full((4, 4), 0.25)) == pytest.approx(math.log(4))


def test_ndb_of_identical_and_collapsed_sets():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 4))
    same = metrics.ndb(real, real, k=20)
    assert same["ndb"] == 0 and same["k"] == 20
    # Another draw of the same distribution: few bins differ (about alpha * k by chance).
    assert metrics.ndb(real, rng.normal(size=(2000, 4)), k=20)["ndb"] <= 4
    # Mode collapse: every generated example in one spot; nearly every bin differs.
    collapsed = metrics.ndb(real, np.zeros((2000, 4)), k=20)
    assert collapsed["ndb"] >= 18 and collapsed["ndb_over_k"] == collapsed["ndb"] / 20
    assert sum(collapsed["generated_proportions"]) == pytest.approx(1.0)


def test_nearest_neighbour_distance_detects_copies():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(300, 16))
    assert metrics.nearest_neighbour_distance(train[:50], train) == pytest.approx(0.0, abs=1e-6)
    far = metrics.nearest_neighbour_distance(train[:50] + 10.0, train)
    assert far > 5.0


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(3)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    x = np.concatenate([c + rng.normal(scale=0.1, size=(100, 2)) for c in centres])
    found = metrics.kmeans(x, 3, seed=0)
    matched = metrics.nearest(centres, found)
    assert sorted(matched) == [0, 1, 2]
    assert np.abs(found[matched] - centres).max() < 0.1


def test_log_mel_frames_place_a_tone_in_its_band_and_tell_sets_apart():
    from wavegan_dist.evaluation import features

    rate, t = 16000, np.arange(4096) / 16000
    tone = lambda hz, phase=0.0: np.stack(
        [0.5 * np.sin(2 * np.pi * hz * t + i + phase) for i in range(6)]
    )
    frames = features.log_mel_frames(tone(1000.0), rate)
    per_clip = 1 + (4096 - features.FRAME_LENGTH) // features.FRAME_STEP
    assert frames.shape == (6 * per_clip, features.MEL_BANDS)
    centres = np.linspace(
        1127 * np.log1p(features.MEL_MIN_HZ / 700),
        1127 * np.log1p(features.MAX_HZ / 700),
        features.MEL_BANDS + 2,
    )[1:-1]
    band = int(np.argmin(np.abs(centres - 1127 * np.log1p(1000.0 / 700))))
    assert abs(int(np.median(frames.argmax(axis=1))) - band) <= 1
    silence = features.log_mel_frames(np.zeros((2, 4096)), rate)
    assert np.allclose(silence, np.log(features.MEL_FLOOR))  # finite, not -inf
    # The plain log-mel Frechet distance: 0 for a set and itself, small for the same tone
    # at other phases, large for a tone an octave up.
    same = metrics.frechet_distance(frames, features.log_mel_frames(tone(1000.0, 0.5), rate))
    octave = metrics.frechet_distance(frames, features.log_mel_frames(tone(2000.0), rate))
    assert metrics.frechet_distance(frames, frames) == pytest.approx(0.0, abs=1e-6)
    assert same < 0.01 * octave
    # Ten times the power of noise (which fills every band) is +10 dB; noise added where
    # a tone is alone raises the level and the distance's mean term.
    noise = 0.01 * np.random.default_rng(0).normal(size=(6, 4096))
    louder = features.log_mel_frames(np.sqrt(10) * noise, rate)
    quieter = features.log_mel_frames(noise, rate)
    assert metrics.mean_level_db(louder, quieter) == pytest.approx(10.0, abs=1e-3)
    noisy = features.log_mel_frames(tone(1000.0) + noise, rate)
    assert metrics.mean_level_db(noisy, frames) > 20
    assert metrics.frechet_mean_term(noisy, frames) > 0.5 * metrics.frechet_distance(noisy, frames)
