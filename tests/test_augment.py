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


def _db_windows(n: int, bands: int = 48, frames: int = 40, seed: int = 0) -> np.ndarray:
    """dB windows as the features give them: peak 0, floor -80."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-50, 10, (n, bands, frames))
    x -= x.max(axis=(1, 2), keepdims=True)
    return np.maximum(x, -80).astype(np.float32)


def test_recorder_response_keeps_the_scale_and_changes_only_the_drawn_windows():
    from deepdive.augment import recorder_response

    x = _db_windows(300)
    before = x.copy()
    assert np.array_equal(recorder_response(x, np.random.default_rng(0), 0.0), x)
    out = recorder_response(x, np.random.default_rng(0), 1.0)
    assert np.array_equal(x, before)  # the input is not modified
    assert np.array_equal(out, recorder_response(x, np.random.default_rng(0), 1.0))  # seeded
    assert (out != x).any(axis=(1, 2)).all()
    assert np.allclose(out.max(axis=(1, 2)), 0.0) and out.min() >= -80.0
    half = recorder_response(x, np.random.default_rng(1), 0.5)
    assert 0.35 < (half != x).any(axis=(1, 2)).mean() < 0.65
    # some windows lose their top bands, some their bottom ones (to the floor), none loses bands 8-11
    top = (out[:, -1, :] == -80).all(axis=1).mean()
    bottom = (out[:, 0, :] == -80).all(axis=1).mean()
    assert 0.3 < top < 0.7 and 0.05 < bottom < 0.35
    assert not (out[:, 10, :] == -80).all(axis=1).any()  # above the lowest 15%, within the lowest quarter
    with pytest.raises(ValueError):
        recorder_response(x, np.random.default_rng(0), 1.5)


def test_recorder_response_without_band_limits_keeps_every_band_and_the_other_draws():
    from deepdive.augment import recorder_response

    x = _db_windows(300)
    cut = recorder_response(x, np.random.default_rng(0), 1.0)
    kept = recorder_response(x, np.random.default_rng(0), 1.0, band_limits=False)
    floor = (kept == -80).all(axis=2)  # bands at the floor all through a window
    assert not floor[:, [0, -1]].any()  # neither the top nor the bottom band is cut away
    assert (cut[:, -1, :] == -80).all(axis=1).mean() > 0.3  # where the default cuts them
    # the same windows drawn, the same curve, noise and hum: windows that no cut reached are equal
    untouched = ~(cut == -80).all(axis=2).any(axis=1)
    assert untouched.any() and np.array_equal(cut[untouched], kept[untouched])


def test_recorder_response_tilts_the_spectrum_and_mixes_the_noise_it_is_given():
    from deepdive.augment import recorder_response

    x = np.full((400, 48, 40), -30.0, np.float32)
    x[:, :, 0] = 0.0  # a flat spectrum, 30 dB above the floor... with one loud frame for the peak
    out = recorder_response(x, np.random.default_rng(0), 1.0, eq_db=18.0, noise=None)
    profile = out[:, 8:40, 1:].mean(axis=2)  # bands that no cut reaches in most windows
    spread = profile.max(axis=1) - profile.min(axis=1)
    assert np.median(spread) > 3.0  # a random frequency response, not a flat one
    quiet = np.full((400, 48, 40), -80.0, np.float32)
    quiet[:, 30, :] = 0.0  # one tone high up, nothing else
    noise = np.full((1, 48, 40), -80.0, np.float32)
    noise[0, :6, :] = 0.0  # background only in the lowest six bands
    mixed = recorder_response(quiet, np.random.default_rng(0), 1.0, noise=noise, noise_db=(-20.0, -20.0))
    low = (mixed[:, 1:6, :] > -60).all(axis=(1, 2)).mean()
    assert 0.1 < low < 0.5  # about a quarter: noise drawn (1/2), the real background chosen (1/2), bottom kept


def test_noise_windows_takes_the_noise_clips_of_a_challenge_folder(synth_kaggle):
    import csv

    from deepdive.augment import noise_windows
    from deepdive.features.spectrogram import MelConfig

    feats = MelConfig(sr=2000, n_fft=256, hop_length=64, n_mels=32, fmin=20, fmax=1000, window_s=2.0)
    rows = list(csv.DictReader(open(synth_kaggle / "train.csv")))
    n_noise = sum(r["label"] == "0" for r in rows)
    wins = noise_windows(str(synth_kaggle), feats, limit=10_000)
    assert wins.shape == (n_noise, *feats.shape) and 0 < n_noise < len(rows)
    assert noise_windows(str(synth_kaggle), feats, limit=3).shape[0] == 3
    folder = noise_windows(str(synth_kaggle / "test"), feats, limit=5)  # any folder of audio files
    assert folder.shape == (5, *feats.shape)
