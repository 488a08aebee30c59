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


def test_mix_at_snr_and_background_mix():
    from deepdive.augment import BackgroundMix, mix_at_snr

    rng = np.random.default_rng(1)
    y = np.sin(np.arange(4000) / 5).astype(np.float32) * 0.2
    bg = rng.standard_normal(4000).astype(np.float32)
    mixed = mix_at_snr(y, bg, 6.0)
    assert 10 * np.log10(np.mean(y**2) / np.mean((mixed - y) ** 2)) == pytest.approx(6.0, abs=1e-3)
    assert mix_at_snr(y, np.zeros(4000, np.float32), 0.0) is not None  # silence is not divided by
    pool = {"buoys": [rng.standard_normal(5000).astype(np.float32)], "tapes": [np.ones(4000, np.float32)]}
    mix = BackgroundMix(pool, (3.0, 3.0), window=4000)
    assert mix.can_mix("buoys") and mix.can_mix("tapes") and mix.can_mix("elsewhere")
    out, info = mix(y, "tapes", np.random.default_rng(2))
    assert info["background"] == "buoys#0" and info["mix_snr_db"] == 3.0  # never its own source
    out, info = mix(y, "buoys", np.random.default_rng(2))
    assert info["background"] == "tapes#0"
    assert np.allclose(out - y, np.sqrt(np.mean(y.astype(np.float64) ** 2) / 10**0.3), atol=1e-6)
    assert not BackgroundMix({"buoys": pool["buoys"]}).can_mix("buoys")
    with pytest.raises(ValueError, match="at least 4000"):
        BackgroundMix({"a": [np.zeros(100, np.float32)]}, window=4000)
    with pytest.raises(ValueError, match="lower bound"):
        BackgroundMix(pool, (10.0, 0.0))
