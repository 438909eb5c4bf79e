"""Magenta's NSynth json/wav release: `examples.json` + `audio/<note_str>.wav`.

Items are the examples.json keys in sorted order; the metadata comes from the
JSON entry (never from the file), the audio from the WAV.
"""

from __future__ import annotations

import json
import os
from typing import Iterator

from wavegan_dist.data.ingest.audio_decode import DecodeError, decode_file
from wavegan_dist.data.ingest.records import Record, Skip, fit_length, nsynth_metadata, ordered_map
from wavegan_dist.errors import UserError, first_line


class NSynthJsonWavReader:
    """Reads an NSynth json/wav folder (or its examples.json path).

    Args:
      source: the release folder holding examples.json and audio/.
      sample_rate, num_samples: the dataset's rate (Hz) and row length.
      workers: decode threads.
    """

    format = "nsynth-jsonwav"

    def __init__(self, source: str, sample_rate: int, num_samples: int, workers: int = 2):
        folder = os.path.dirname(source) if os.path.basename(source) == "examples.json" else source
        if not os.path.isdir(folder):
            raise UserError(
                f"--source={source}: no such folder; --format=nsynth-jsonwav "
                "wants NSynth's json/wav folder (examples.json and audio/)"
            )
        index = os.path.join(folder, "examples.json")
        if not os.path.isfile(index):
            raise UserError(
                f"--source={source} has no examples.json; --format=nsynth-jsonwav "
                "wants NSynth's json/wav folder (examples.json and audio/*.wav)"
            )
        try:
            with open(index, encoding="utf-8") as f:
                examples = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {index}: {first_line(e)}") from e
        if not isinstance(examples, dict):
            raise UserError(f"{index} is not a JSON object mapping note_str to metadata")
        self.folder = os.path.realpath(folder)
        self.source_id = self.folder
        self.examples = examples
        self.keys = sorted(examples)
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.workers = workers

    def count(self) -> int:
        """Number of items (notes in examples.json)."""
        return len(self.keys)

    def item_names(self) -> list[str]:
        """The items in order (note_str keys), to notice a changed source on resume."""
        return self.keys

    def read(self, start: int = 0) -> Iterator[Record | Skip]:
        """Yields one Record or Skip per note, from item index `start` on."""
        yield from ordered_map(self._item, self.keys[start:], self.workers)

    def _item(self, key: str) -> Record | Skip:
        name = f"audio/{key}.wav"
        meta = self.examples[key]
        if not isinstance(meta, dict):
            return Skip(name, "its examples.json entry is not an object")
        path = os.path.join(self.folder, "audio", key + ".wav")
        if not os.path.isfile(path):
            return Skip(name, "audio file missing")
        try:
            pcm = decode_file(path, self.sample_rate, self.num_samples)
        except DecodeError as e:
            return Skip(name, str(e))
        except UserError:
            raise
        except Exception as e:  # a decoder bug must not end a long run: report the file
            return Skip(name, f"{type(e).__name__}: {first_line(e)}")
        columns = nsynth_metadata(meta)
        columns["note_str"] = columns["note_str"] or key
        columns["sample_rate"] = self.sample_rate
        columns["audio"] = fit_length(pcm, self.num_samples)
        return Record(name, columns)
