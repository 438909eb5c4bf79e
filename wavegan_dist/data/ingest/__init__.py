"""Building NSynth-schema deeplake datasets from other sources (`python -m wavegan_dist.ingest`).

Modules:
  runner.py           ingest(): reader -> chunked, resumable writer -> IngestReport
  dest.py             opening, creating or refusing the dest (locked)
  state.py            the progress record kept in the dataset's metadata
  writer.py           chunked appends + commits, matching rows a kill left behind
  records.py          Record/Skip items and the conversions readers share
  audio_decode.py     audio files -> mono int16 at the dataset rate (numpy, tensorflow-io)
  nsynth_jsonwav.py   NSynth json/wav release (examples.json + audio/*.wav)
  nsynth_tfrecord.py  NSynth TFRecord files
  audio_folder.py     any folder of audio files (+ filenames.py, sidecar.py for metadata)
  splits.py           an audio folder held out into train/valid/test datasets
  deeplake_v3.py      deeplake v3 NSynth (deeplake.convert) and v4 sets with v3 columns
  progress.py         the stderr progress display
"""

from wavegan_dist.data.ingest.runner import FORMATS, IngestReport, ingest, make_reader
from wavegan_dist.data.ingest.splits import SplitReport, ingest_splits

__all__ = ["FORMATS", "IngestReport", "SplitReport", "ingest", "ingest_splits", "make_reader"]
