"""Feature extraction: spectrograms (numpy, no librosa at run time) and, later, ordinal measures."""

from .spectrogram import MelConfig, log_mel, mel_filterbank, melspectrogram, power_to_db, stft_power

__all__ = ["MelConfig", "log_mel", "mel_filterbank", "melspectrogram", "power_to_db", "stft_power"]
