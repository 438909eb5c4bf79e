"""Audio files -> mono int16 PCM at the dataset's sample rate.

16-bit PCM WAV at the target rate (every NSynth file) is read with the `wave`
module and numpy: exact and about a hundred times cheaper than a TF op call.
Everything else (other WAV widths, FLAC, Ogg Vorbis, MP3 where tensorflow-io
can decode it) goes through `tfio.audio.AudioIOTensor`; audio is mixed to mono
by averaging the channels and resampled with tensorflow-io's resample kernel
(what `tfio.audio.resample` runs).

Decoders raise `DecodeError` with a one-line reason, which readers turn into
skipped items.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import wave

import numpy as np

from wavegan_dist.data.ingest.records import float_to_int16
from wavegan_dist.errors import UserError, first_line

AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3")
# Extra input samples read past the needed span, so the resampler's filter sees
# real signal at the cut instead of an edge.
_RESAMPLE_MARGIN = 256
_tfio = None
# tensorflow-io's audio kernels are not thread-safe: decoding FLAC/Ogg and resampling
# from several threads at once aborted the process (a TF dtype check failure, or a
# segfault). Every tfio call holds this lock; the numpy WAV path runs in parallel.
_TFIO_LOCK = threading.Lock()


class DecodeError(Exception):
    """A file that could not be decoded; str(err) is the one-line reason."""


def _tensorflow_io():
    """tensorflow_io, checked to have its native audio kernels (they fail to load on a
    TensorFlow it was not built for, and then every audio op raises)."""
    global _tfio
    if _tfio is None:
        import tensorflow_io as tfio
        from tensorflow_io.python.ops import core_ops

        try:
            core_ops.io_audio_resample  # noqa: B018  (lookup fails if the .so did not load)
        except NotImplementedError as e:
            raise UserError(
                "tensorflow-io's audio kernels did not load; install the pinned "
                "pair tensorflow-cpu 2.17.x + tensorflow-io 0.37.1 "
                "(pip install -c constraints.txt '.[cpu]')"
            ) from e
        _tfio = tfio
    return _tfio


def tf_error_reason(err: Exception) -> str:
    """A TF op error -> one line: drops the '{{function_node ...}}' prefix and the
    '[Op:...]' suffix."""
    text = first_line(err, 1000)
    if "}}" in text:
        text = text.split("}}", 1)[1].strip()
    if " [Op:" in text:
        text = text.split(" [Op:", 1)[0]
    return text[:200] or type(err).__name__


def read_wav16(path) -> tuple[np.ndarray, int] | None:
    """A 16-bit PCM WAV (path or file object) -> (int16 [frames, channels], rate), or
    None if the file is a WAV of another sample width or encoding. Raises
    DecodeError for a file that is not a readable WAV."""
    try:
        with wave.open(path, "rb") as w:
            if w.getsampwidth() != 2:
                return None
            channels, rate, frames = w.getnchannels(), w.getframerate(), w.getnframes()
            data = w.readframes(frames)
    except wave.Error as e:
        if "unknown format" in str(e):  # e.g. float or WAVE_FORMAT_EXTENSIBLE: let tfio try
            return None
        raise DecodeError(f"not a readable WAV file ({e})") from e
    except (EOFError, OSError) as e:
        raise DecodeError(f"not a readable WAV file ({str(e) or type(e).__name__})") from e
    if len(data) != frames * channels * 2:
        raise DecodeError(
            f"truncated WAV: header says {frames} frames, data holds {len(data) // (2 * channels)}"
        )
    if frames == 0:
        raise DecodeError("WAV file holds no audio frames")
    return np.frombuffer(data, "<i2").reshape(frames, channels), rate


def _to_float(x: np.ndarray) -> np.ndarray:
    """Decoded samples of any tfio dtype -> float32 in [-1, 1]."""
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if x.dtype == np.int32:  # tfio left-aligns 24- and 32-bit PCM in int32
        return (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / 128.0
    return x.astype(np.float32)


def to_mono_pcm16(x: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """Samples [frames, channels] (int16/int32/uint8/float) at `rate` -> int16 [n] mono at
    `sample_rate`. int16 mono at the same rate is passed through unchanged."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if rate == sample_rate and x.dtype == np.int16 and x.shape[1] == 1:
        return x[:, 0]
    mono = _to_float(x).mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        _tensorflow_io()
        from tensorflow_io.python.ops import core_ops

        # tfio.audio.resample wraps this kernel in tf.vectorized_map, which traces a
        # tf.function on every call; the kernel alone gives identical output.
        with _TFIO_LOCK:
            mono = core_ops.io_audio_resample(
                mono[:, None], rate_in=int(rate), rate_out=int(sample_rate)
            ).numpy()[:, 0]
    return float_to_int16(mono)


def decode_file(path: str, sample_rate: int, max_samples: int | None = None) -> np.ndarray:
    """An audio file -> int16 [n] mono PCM at `sample_rate`.

    Args:
      path: a .wav/.flac/.ogg/.mp3 file (the content decides the decoder).
      sample_rate: target rate in Hz.
      max_samples: if given, only about this many output samples are decoded
        (the caller cuts to length anyway; saves decoding long files).
    Returns:
      int16 [n], n >= 1. Raises DecodeError if it cannot be decoded.
    """
    if path.lower().endswith((".wav", ".wave")):
        got = read_wav16(path)
        if got is not None:
            pcm, rate = got
            if max_samples is not None:
                pcm = pcm[: _input_span(max_samples, rate, sample_rate)]
            return to_mono_pcm16(pcm, rate, sample_rate)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # TF takes paths as UTF-8: hand tfio a copy with a plain name
        with open(path, "rb") as f:
            return decode_bytes(f.read(), sample_rate, max_samples)
    tfio = _tensorflow_io()
    import tensorflow as tf

    try:
        with _TFIO_LOCK:
            audio = tfio.audio.AudioIOTensor(path)
            rate = int(audio.rate.numpy())
            frames = int(audio.shape[0].numpy())
            if frames <= 0 or rate <= 0:
                raise DecodeError(f"no audio frames (frames={frames}, rate={rate})")
            span = (
                frames
                if max_samples is None
                else min(frames, _input_span(max_samples, rate, sample_rate))
            )
            samples = audio[0:span].numpy()
    except tf.errors.OpError as e:
        raise DecodeError(tf_error_reason(e)) from e
    if samples.size == 0:
        raise DecodeError("no audio frames decoded")
    return to_mono_pcm16(samples, rate, sample_rate)


def decode_bytes(data: bytes, sample_rate: int, max_samples: int | None = None) -> np.ndarray:
    """Encoded audio bytes (WAV, FLAC, Ogg Vorbis, MP3) -> int16 [n] mono at `sample_rate`;
    goes through a temporary file because tfio's readers take paths."""
    suffix = {b"RIFF": ".wav", b"fLaC": ".flac", b"OggS": ".ogg"}.get(bytes(data[:4]), ".mp3")
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return decode_file(tmp, sample_rate, max_samples)
    finally:
        os.unlink(tmp)


def _input_span(out_samples: int, rate: int, sample_rate: int) -> int:
    if rate == sample_rate:
        return out_samples
    return math.ceil(out_samples * rate / sample_rate) + _RESAMPLE_MARGIN
