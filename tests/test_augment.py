import numpy as np
import pytest

from deepdive.augment import gain, random_noise_and_gain, time_shift, white_noise


def test_white_noise_snr():
    rng = np.random.default_rng(0)
    y = np.sin(np.arange(200000) / 10).astype(np.float32) * 0.3
    noisy = white_noise(y, 10.0, rng)
    snr = 10 * np.log10(np.mean(y**2) / np.mean((noisy - y) ** 2))
    assert snr == pytest.approx(10.0, abs=0.2)


def test_gain_and_shift():
    y = np.full(10, 0.1, np.float32)
    assert gain(y, 20.0) == pytest.approx(np.full(10, 1.0))
    assert gain(y, 40.0).max() == 1.0  # clipped
    assert list(time_shift(np.arange(5, dtype=np.float32), 2)) == [3, 4, 0, 1, 2]


def test_random_noise_and_gain_reports_what_it_did():
    rng = np.random.default_rng(3)
    y, info = random_noise_and_gain(np.ones(1000, np.float32) * 0.1, rng, (10, 30), (-6, 6))
    assert 10 <= info["snr_db"] <= 30 and -6 <= info["gain_db"] <= 6
    assert y.dtype == np.float32
