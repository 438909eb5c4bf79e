"""Any folder of audio files (recursive): wav, flac, ogg and mp3 (where tfio decodes it).

Items are the audio files in sorted relative-path order. Audio is decoded,
mixed to mono and resampled to the dataset's rate (audio_decode.py). Metadata,
per column: the sidecar's value if it gives one (sidecar.py), else what the file
name gives (filenames.py), else unknown (schema.UNKNOWN / ""). note_str
defaults to the NSynth-style stem, else to the relative path without extension,
so it names the file (a name that is not UTF-8 with escapes, see records.py).
"""

from __future__ import annotations

import copy
import os
from typing import Iterator

from wavegan_dist.data.ingest.audio_decode import AUDIO_EXTENSIONS, DecodeError, decode_file
from wavegan_dist.data.ingest.filenames import metadata_from_name
from wavegan_dist.data.ingest.records import (
    Record,
    Skip,
    fit_length,
    ordered_map,
    safe_text,
    unknown_metadata,
)
from wavegan_dist.data.ingest.sidecar import load_sidecar, lookup
from wavegan_dist.errors import UserError, first_line


def list_audio_files(folder: str) -> list[str]:
    """Relative `/`-separated paths of the audio files under `folder`, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            if name.lower().endswith(AUDIO_EXTENSIONS):
                rel = os.path.relpath(os.path.join(root, name), folder)
                found.append(rel.replace(os.sep, "/"))
    return sorted(found)


class AudioFolderReader:
    """Reads a folder of audio files.

    Args:
      source: the folder (searched recursively).
      sample_rate, num_samples: the dataset's rate (Hz) and row length.
      metadata: optional sidecar CSV/JSON path.
      workers: decode threads.
    """

    format = "audio-folder"

    def __init__(
        self,
        source: str,
        sample_rate: int,
        num_samples: int,
        metadata: str | None = None,
        workers: int = 2,
    ):
        if not os.path.isdir(source):
            raise UserError(
                f"--source={source}: no such folder; --format=audio-folder wants a "
                "folder of audio files"
            )
        self.folder = os.path.realpath(source)
        self.source_id = self.folder
        self.files = list_audio_files(self.folder)
        self.listing = self.files  # all files, also when `files` is narrowed to one split
        if not self.files:
            raise UserError(
                f"--source={source}: no audio files "
                f"({', '.join(AUDIO_EXTENSIONS)}) found in that folder or below"
            )
        self.sidecar = load_sidecar(metadata) if metadata else {}
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.workers = workers

    def only(self, files: list[str]) -> "AudioFolderReader":
        """A reader of the same folder and settings whose items are `files`, a subset of
        this reader's `files` (relative paths), in the order given."""
        part = copy.copy(self)
        part.files = list(files)
        return part

    def count(self) -> int:
        """Number of items (audio files)."""
        return len(self.files)

    def item_names(self) -> list[str]:
        """The items in order (relative paths, as safe_text), to notice a changed source on
        resume."""
        return [safe_text(rel) for rel in self.files]

    def unmatched_sidecar_keys(self) -> list[str]:
        """Sidecar keys that name no audio file (likely typos), sorted."""
        used = set()
        for rel in map(safe_text, self.listing):
            name = os.path.basename(rel)
            used.update((rel, os.path.splitext(rel)[0], name, os.path.splitext(name)[0]))
        return sorted(k for k in self.sidecar if k not in used)

    def read(self, start: int = 0) -> Iterator[Record | Skip]:
        """Yields one Record or Skip per file, from item index `start` on."""
        yield from ordered_map(self._item, self.files[start:], self.workers)

    def metadata_for(self, rel: str) -> dict:
        """All metadata columns for the file at relative path `rel` (no audio)."""
        rel = safe_text(rel)
        stem = os.path.splitext(os.path.basename(rel))[0]
        columns = unknown_metadata()
        columns["note_str"] = os.path.splitext(rel)[0]
        columns.update(metadata_from_name(stem))
        columns.update(lookup(self.sidecar, rel))
        columns["sample_rate"] = self.sample_rate
        return columns

    def _item(self, rel: str) -> Record | Skip:
        try:
            pcm = decode_file(os.path.join(self.folder, rel), self.sample_rate, self.num_samples)
        except DecodeError as e:
            return Skip(safe_text(rel), str(e))
        except UserError:
            raise
        except Exception as e:  # a decoder bug must not end a long run: report the file
            return Skip(safe_text(rel), f"{type(e).__name__}: {first_line(e)}")
        columns = self.metadata_for(rel)
        columns["audio"] = fit_length(pcm, self.num_samples)
        return Record(safe_text(rel), columns)
