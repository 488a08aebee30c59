"""The package's own exceptions: each carries a one-line message naming the file and the fix."""

from __future__ import annotations


class DeepdiveError(Exception):
    """Base class for errors a user can cause; the CLI prints the message, no traceback."""


class AudioError(DeepdiveError):
    """A file that cannot be used as audio (not audio, truncated, empty, NaN, unusable rate)."""


class UnreadableAudioError(AudioError):
    """A file that libsndfile cannot open as audio at all (a PDF, a text file, an unknown format)."""


class DatasetError(DeepdiveError):
    """A dataset folder, metadata file or manifest that cannot be read."""


class ModelError(DeepdiveError):
    """A model bundle that is missing, incomplete or does not fit the input."""


class DownloadError(DeepdiveError):
    """A download that failed or did not verify."""
