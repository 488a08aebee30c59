"""Feature extraction in numpy (no librosa at run time): log-mel windows, spectrogram images and
complexity-entropy series; and BirdNET embeddings (optional: a TFLite runtime and BirdNET's model). Each configuration is a frozen dataclass with `kind`, `sr`, `window_s`,
`window_samples`, `shape`, `to_dict()` and `compute(y, sr)`; `from_dict` rebuilds one from a card."""

from __future__ import annotations

from .birdnet import BirdnetConfig
from .ordinal import OrdinalConfig
from .spectrogram import (
    MelConfig,
    StftImageConfig,
    log_mel,
    mel_filterbank,
    melspectrogram,
    power_to_db,
    stft_power,
)

KINDS = {c.kind: c for c in (MelConfig, StftImageConfig, OrdinalConfig, BirdnetConfig)}
FeatureConfig = MelConfig | StftImageConfig | OrdinalConfig | BirdnetConfig


def from_dict(d: dict) -> FeatureConfig:
    """The feature configuration a card or store describes (no `kind`: log-mel, the first format)."""
    kind = d.get("kind", "log-mel")
    if kind not in KINDS:
        from ..errors import ModelError

        raise ModelError(f"unknown feature kind '{kind}'; this deepdive knows {', '.join(KINDS)}")
    return KINDS[kind].from_dict(d)


__all__ = ["KINDS", "BirdnetConfig", "FeatureConfig", "MelConfig", "OrdinalConfig", "StftImageConfig", "from_dict", "log_mel",
           "mel_filterbank", "melspectrogram", "power_to_db", "stft_power"]
