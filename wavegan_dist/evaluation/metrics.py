"""GANSynth-style sample-quality metrics, in numpy, from classifier outputs and features.

GANSynth (Engel et al., ICLR 2019) judged NSynth models with a pitch classifier:
Inception Score over pitch classes, the Frechet distance between classifier
embeddings of real and generated sets, pitch accuracy and entropy, and NDB
(number of statistically different bins). Its code was never released; these are
written from the definitions. All functions take plain arrays, so they can be
checked on cases with known answers.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-12


def _probabilities(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"expected class probabilities [N, C] with N >= 1, got {probs.shape}")
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), _EPS)


def inception_score(probs: np.ndarray) -> float:
    """exp(mean over examples of KL(p(y|x) || p(y))), p(y) the mean prediction.

    Args:
      probs: [N, C] predicted class probabilities (rows are normalised here).
    Returns:
      A float in [1, C]: 1 when every prediction is the same, C when predictions
      are confident (one-hot) and spread evenly over all C classes.
    """
    p = _probabilities(probs)
    marginal = p.mean(axis=0, keepdims=True)
    kl = np.sum(p * (np.log(p + _EPS) - np.log(marginal + _EPS)), axis=1)
    return float(np.exp(kl.mean()))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of embeddings.

    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). The trace of the matrix
    square root is taken as the sum of square roots of the eigenvalues of the
    symmetric S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues and needs no
    general (complex) matrix square root.

    Args:
      a: [N, D] embeddings (N >= 2); b: [M, D] embeddings (M >= 2).
    Returns:
      A float >= 0 (0 for identical sets; |shift|^2 for a set and its shifted copy).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"expected two [N >= 2, D] sets of one width, got {a.shape}, {b.shape}")
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sum(np.sqrt(np.clip(cross, 0, None)))
    spread = np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(frechet_mean_term(a, b) + spread, 0.0))


def frechet_mean_term(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2: the part of frechet_distance(a, b) that the sets' means make.

    Args:
      a: [N, D] embeddings; b: [M, D] embeddings.
    Returns:
      A float >= 0; frechet_distance(a, b) minus it is what their covariances make.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))


def mean_level_db(log_power_a: np.ndarray, log_power_b: np.ndarray) -> float:
    """How much more power set a has than set b per feature, on average, in dB.

    Args:
      log_power_a: [N, D] natural-log powers (e.g. log-mel frames); log_power_b: [M, D].
    Returns:
      10 log10(e) x (mean of a - mean of b): positive when a is louder, or fills with
      noise the bands where b is near silent.
    """
    difference = np.mean(log_power_a, dtype=np.float64) - np.mean(log_power_b, dtype=np.float64)
    return float(10 * math.log10(math.e) * difference)


def pitch_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of examples whose most probable class is their label ([N, C], [N])."""
    p = _probabilities(probs)
    return float(np.mean(np.argmax(p, axis=1) == np.asarray(labels)))


def pitch_entropy(probs: np.ndarray) -> float:
    """Mean entropy (nats) of the predicted class distribution: 0 for confident
    predictions, log C for uniform ones. Lower means clearer pitch."""
    p = _probabilities(probs)
    return float(np.mean(-np.sum(p * np.log(p + _EPS), axis=1)))


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding.

    Args:
      x: [N, D] points, N >= k.
    Returns:
      [k, D] centres.
    """
    x = np.asarray(x, np.float64)
    if len(x) < k:
        raise ValueError(f"k-means needs at least k={k} points, got {len(x)}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(_squared_distances(x, np.array(centres)), axis=1)
        total = d2.sum()
        pick = rng.integers(len(x)) if total <= 0 else rng.choice(len(x), p=d2 / total)
        centres.append(x[pick])
    centres = np.array(centres)
    for _ in range(iterations):
        assign = nearest(x, centres)
        moved = np.array(
            [x[assign == j].mean(axis=0) if np.any(assign == j) else centres[j] for j in range(k)]
        )
        if np.allclose(moved, centres):
            break
        centres = moved
    return centres


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d2 = (x * x).sum(1)[:, None] - 2 * x @ y.T + (y * y).sum(1)[None, :]
    return np.maximum(d2, 0)


def nearest(x: np.ndarray, centres: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest centre for each row of x: int [N]."""
    x, centres = np.asarray(x, np.float64), np.asarray(centres, np.float64)
    return (
        np.concatenate(
            [
                np.argmin(_squared_distances(x[i : i + chunk], centres), axis=1)
                for i in range(0, len(x), chunk)
            ]
        )
        if len(x)
        else np.zeros(0, int)
    )


def ndb(
    real: np.ndarray, generated: np.ndarray, k: int = 50, alpha: float = 0.05, seed: int = 0
) -> dict:
    """Number of statistically different bins (Richardson & Weiss, 2018).

    The real set is clustered into k bins by k-means; both sets are assigned to the
    nearest centre, and each bin's two proportions are compared with a two-sided
    two-proportion z-test (pooled variance) at level `alpha`.

    Args:
      real: [N, D] features of real examples (e.g. flattened log spectrograms), N >= k.
      generated: [M, D] features of generated examples.
    Returns:
      {"ndb": different bins, "k": k, "ndb_over_k": ndb / k,
       "real_proportions": [k], "generated_proportions": [k]}.
    """
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    centres = kmeans(real, k, seed)
    p_real = np.bincount(nearest(real, centres), minlength=k) / len(real)
    p_gen = np.bincount(nearest(generated, centres), minlength=k) / len(generated)
    pooled = (p_real * len(real) + p_gen * len(generated)) / (len(real) + len(generated))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(real) + 1 / len(generated)))
    z = np.divide(np.abs(p_real - p_gen), se, out=np.zeros(k), where=se > 0)
    p_values = np.array([math.erfc(v / math.sqrt(2)) for v in z])
    different = int(np.sum((p_values < alpha) & (se > 0)))
    return {
        "ndb": different,
        "k": k,
        "ndb_over_k": different / k,
        "real_proportions": p_real.tolist(),
        "generated_proportions": p_gen.tolist(),
    }


def nearest_neighbour_distance(
    generated: np.ndarray, training: np.ndarray, chunk: int = 1024
) -> float:
    """Mean Euclidean distance from each generated example to its nearest training
    example ([M, D], [N, D]): near 0 means the model reproduces training data."""
    generated = np.asarray(generated, np.float64)
    training = np.asarray(training, np.float64)
    best = [
        np.sqrt(np.min(_squared_distances(generated[i : i + chunk], training), axis=1))
        for i in range(0, len(generated), chunk)
    ]
    return float(np.mean(np.concatenate(best)))
