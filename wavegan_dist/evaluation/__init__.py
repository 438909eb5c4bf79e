"""Judging generated audio: sample-quality metrics, the pitch classifier they use, reports."""
