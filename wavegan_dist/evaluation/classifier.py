"""The pitch (or instrument-family) classifier that the sample-quality metrics use.

A small 1-D convolutional network over log spectrograms (evaluation/features.py):
three conv blocks over time with the frequency bins as channels, a global average
pool whose 128 values are the embedding for the Frechet distance, and a linear
layer to class logits. Labels are the stored metadata values (MIDI pitch 0-127,
family 0-10), as for conditioning.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from wavegan_dist.data.schema import LABEL_CLASSES
from wavegan_dist.errors import UserError
from wavegan_dist.evaluation import features

MODEL_FILE = "classifier.keras"
INFO_FILE = "classifier.json"
EMBEDDING = "embedding"


@dataclasses.dataclass(frozen=True)
class ClassifierInfo:
    """What a saved classifier was trained for.

    Attributes:
      target: "pitch" or "instrument_family".
      num_classes: LABEL_CLASSES[target].
      slice_len: samples per example it takes (other lengths are cut or zero-padded).
      sample_rate: Hz.
      heldout_accuracy: accuracy on the held-out split at the end of training.
      data: the dataset it was trained on.
    """

    target: str
    num_classes: int
    slice_len: int
    sample_rate: int
    heldout_accuracy: float
    data: str


def build(num_classes: int, frames: int, bins: int, seed: int = 0) -> keras.Model:
    """Returns the classifier: log spectrogram [B, frames, bins] -> logits [B, num_classes].

    The layer named "embedding" gives the [B, 128] features used for the Frechet distance.
    """
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)  # noqa: E731
    inputs = keras.Input((frames, bins), name="log_spectrogram")
    x = keras.layers.LayerNormalization(axis=-1, name="norm")(inputs)
    for i, width in enumerate((128, 128, 128)):
        x = keras.layers.Conv1D(
            width,
            3,
            padding="same",
            activation="relu",
            kernel_initializer=init(i),
            name=f"conv_{i}",
        )(x)
        if i < 2 and x.shape[1] >= 2:
            x = keras.layers.MaxPooling1D(2, name=f"pool_{i}")(x)
    embedding = keras.layers.GlobalAveragePooling1D(name=EMBEDDING)(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=init(9), name="logits")(
        keras.layers.Dropout(0.2, seed=seed, name="dropout")(embedding)
    )
    return keras.Model(inputs, logits, name="classifier")


def fit_length(waves: np.ndarray, slice_len: int) -> np.ndarray:
    """Cuts or zero-pads waveforms [N, T(, 1)] to [N, slice_len]."""
    waves = np.asarray(waves, np.float32).reshape(len(waves), -1)
    if waves.shape[1] >= slice_len:
        return waves[:, :slice_len]
    return np.pad(waves, [(0, 0), (0, slice_len - waves.shape[1])])


def train(
    waves: np.ndarray,
    labels: np.ndarray,
    heldout_waves: np.ndarray,
    heldout_labels: np.ndarray,
    target: str,
    sample_rate: int,
    epochs: int = 40,
    batch_size: int = 32,
    seed: int = 0,
    log=print,
) -> tuple[keras.Model, float]:
    """Trains a classifier on real audio and measures it on a held-out set.

    Args:
      waves: float32 [N, T] training audio in [-1, 1]; labels: int [N] stored values.
      heldout_waves, heldout_labels: the same for the held-out split.
      target: "pitch" or "instrument_family".
    Returns:
      (model, held-out accuracy).
    """
    keras.utils.set_random_seed(seed)
    x, xh = (features.log_spectrogram(w, sample_rate) for w in (waves, heldout_waves))
    model = build(LABEL_CLASSES[target], x.shape[1], x.shape[2], seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    every = max(1, epochs // 4)

    class _Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every == 0 or epoch + 1 == epochs:
                log(
                    f"epoch {epoch + 1}/{epochs}: loss {logs['loss']:.3f}, "
                    f"train accuracy {logs['accuracy']:.3f}"
                )

    model.fit(
        x,
        np.asarray(labels),
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_Progress()],
    )
    accuracy = float(np.mean(np.argmax(model(xh, training=False), axis=1) == heldout_labels))
    return model, accuracy


def save(model: keras.Model, info: ClassifierInfo, folder: str) -> None:
    """Writes the model and its ClassifierInfo into `folder` (created if missing)."""
    os.makedirs(folder, exist_ok=True)
    model.save(os.path.join(folder, MODEL_FILE))
    with open(os.path.join(folder, INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(info), f, indent=2)


def load(folder: str) -> tuple[keras.Model, ClassifierInfo]:
    """Reads a folder written by save(); UserError if it is not one."""
    model_path, info_path = (os.path.join(folder, n) for n in (MODEL_FILE, INFO_FILE))
    if not (os.path.isfile(model_path) and os.path.isfile(info_path)):
        raise UserError(
            f"--classifier={folder} is not a classifier folder (it needs {MODEL_FILE} "
            f"and {INFO_FILE}); make one with `python -m wavegan_dist.evaluate "
            "train-classifier`"
        )
    with open(info_path, encoding="utf-8") as f:
        info = ClassifierInfo(**json.load(f))
    return keras.models.load_model(model_path), info


def predict(
    model: keras.Model, info: ClassifierInfo, waves: np.ndarray, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and embeddings of audio.

    Args:
      waves: float32 [N, T(, 1)] at info.sample_rate; cut or padded to info.slice_len.
    Returns:
      (probabilities float [N, num_classes], embeddings float [N, 128]).
    """
    x = features.log_spectrogram(fit_length(waves, info.slice_len), info.sample_rate)
    both = keras.Model(model.inputs[0], [model.output, model.get_layer(EMBEDDING).output])
    # Plain eager calls: Keras's predict() would trace a new function for every call.
    parts = [both(x[i : i + batch_size], training=False) for i in range(0, len(x), batch_size)]
    logits = np.concatenate([np.asarray(p[0]) for p in parts])
    embeddings = np.concatenate([np.asarray(p[1]) for p in parts])
    return tf.nn.softmax(logits).numpy(), embeddings
