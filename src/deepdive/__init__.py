"""deepdive: which marine mammal is calling in this recording, and where a right whale calls."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    AudioError,
    DatasetError,
    DeepdiveError,
    DownloadError,
    ModelError,
    UnreadableAudioError,
)


def classify(path_or_array, sr=None, model=None, top=None, min_confidence=None):
    """Rank every species the model knows for one recording (see deepdive.predict.classify)."""
    from .predict import classify as _classify

    return _classify(path_or_array, sr=sr, model=model, top=top, min_confidence=min_confidence)


def detect(path_or_array, sr=None, model=None):
    """Probability that a right whale calls in a clip (see deepdive.predict.detect)."""
    from .predict import detect as _detect

    return _detect(path_or_array, sr=sr, model=model)


def scan(path_or_array, model="rightwhale", hop_s=None, threshold=None, sr=None):
    """Events of one long recording (see deepdive.scanning.scan)."""
    from .scanning import scan as _scan

    return _scan(path_or_array, model=model, hop_s=hop_s, threshold=threshold, sr=sr)


__all__ = ["AudioError", "DatasetError", "DeepdiveError", "DownloadError", "ModelError", "UnreadableAudioError", "classify", "detect", "scan", "__version__"]
