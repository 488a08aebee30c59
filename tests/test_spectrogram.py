import numpy as np
import pytest

from deepdive.features.spectrogram import MelConfig, log_mel, mel_filterbank, melspectrogram, power_to_db

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize(
    "sr,n_fft,hop,n_mels,fmin,fmax",
    [(32000, 2048, 1024, 64, 20.0, 16000.0), (22050, 2048, 512, 128, 0.0, None), (2000, 256, 32, 40, 10.0, 1000.0),
     (16000, 1024, 256, 48, 50.0, 7000.0)],
)
def test_melspectrogram_matches_librosa(sr, n_fft, hop, n_mels, fmin, fmax):
    rng = np.random.default_rng(1)
    y = (rng.standard_normal(int(sr * 2.3)) * 0.2).astype(np.float32)
    ours = melspectrogram(y, sr, n_fft, hop, n_mels, fmin, fmax)
    ref = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())
    np.testing.assert_allclose(power_to_db(ours, ref="max"), librosa.power_to_db(ref, ref=np.max), atol=1e-3)


def test_filterbank_matches_librosa():
    ours = mel_filterbank(32000, 2048, 64, 20.0, 16000.0)
    ref = librosa.filters.mel(sr=32000, n_fft=2048, n_mels=64, fmin=20.0, fmax=16000.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


def test_power_to_db_rules():
    S = np.array([[1.0, 0.1, 1e-12]])
    np.testing.assert_allclose(power_to_db(S, top_db=None), [[0.0, -10.0, -100.0]], atol=1e-5)
    assert power_to_db(S, top_db=80).min() == pytest.approx(-80.0)


def test_log_mel_shape_and_range():
    cfg = MelConfig()
    y = np.random.default_rng(0).standard_normal(cfg.window_samples).astype(np.float32)
    x = log_mel(y, cfg.sr, cfg)
    assert x.shape == cfg.shape
    assert abs(x.max()) < 1e-4 and x.min() >= -cfg.top_db - 1e-4
    with pytest.raises(ValueError):
        log_mel(y, 16000, cfg)


def test_stft_image_matches_librosa():
    from deepdive.features import StftImageConfig

    rng = np.random.default_rng(4)
    y = rng.standard_normal(4000).astype(np.float32) * 0.1
    cfg = StftImageConfig()
    img = cfg.compute(y, 2000)
    assert img.shape == cfg.shape == (129, 126)  # 256-sample segments, hop 32 (87.5% overlap), 2 s at 2 kHz
    ref = np.abs(librosa.stft(y, n_fft=256, hop_length=32, window="hann", center=True, pad_mode="constant")) ** 2
    ref_db = librosa.power_to_db(ref, ref=np.max, top_db=80.0)
    np.testing.assert_allclose(img, ref_db, atol=2e-3)
    band = StftImageConfig(fmin=50, fmax=500)
    lo, hi = band.bins
    assert (lo, hi) == (7, 65) and band.compute(y, 2000).shape == (58, 126)
    assert StftImageConfig(image=(64, 48)).compute(y, 2000).shape == (64, 48)
    assert StftImageConfig.from_dict(StftImageConfig(image=(64, 48)).to_dict()) == StftImageConfig(image=(64, 48))


@pytest.mark.parametrize("size", [(64, 63), (200, 250), (129, 40)])
def test_resize_matches_torch_bilinear_antialias(size):
    torch = pytest.importorskip("torch")
    from deepdive.features.spectrogram import resize_image

    rng = np.random.default_rng(5)
    img = rng.standard_normal((129, 126)).astype(np.float32)
    ours = resize_image(img, size)
    ref = torch.nn.functional.interpolate(torch.from_numpy(img)[None, None], size=size, mode="bilinear",
                                          align_corners=False, antialias=True)[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert np.array_equal(resize_image(img, img.shape), img)


# ---------------------------------------------------------------- overview of a whole recording


def test_overview_power_is_the_same_whatever_the_blocks():
    from deepdive.features.spectrogram import overview_power

    rng = np.random.default_rng(0)
    sr = 4000
    y = rng.standard_normal(sr * 37 + 123).astype(np.float32)
    whole = overview_power([y], len(y), sr, columns=300)
    cuts = np.sort(rng.choice(len(y), 9, replace=False))
    pieces = overview_power(np.split(y, cuts), len(y), sr, columns=300)
    np.testing.assert_allclose(pieces, whole, rtol=1e-5)
    assert whole.shape == (1 + 512 // 2, 300)


def test_overview_power_averages_frames_into_columns_and_finds_a_tone():
    from deepdive.features.spectrogram import _frames_power, overview_n_fft, overview_power

    sr = 2000
    assert overview_n_fft(2000) == 256 and overview_n_fft(48000) == 2048
    t = np.arange(sr * 600) / sr
    y = (0.5 * np.sin(2 * np.pi * 250 * t)).astype(np.float32)
    y[sr * 300 :] *= 0.1  # 20 dB quieter in the second half
    out = overview_power([y], len(y), sr, columns=100)
    assert out.shape == (129, 100)
    assert (out.argmax(axis=0) == 250 * 256 // sr).all()
    # hop = n_fft for a long file: each column is the mean of the frames that start in its stretch
    frames = _frames_power(y, 256, 256, center=False)
    starts = 256 * np.arange(len(frames))
    cols = starts * 100 // len(y)
    np.testing.assert_allclose(out[:, 7], frames[cols == 7].mean(axis=0), rtol=1e-5)
    assert out[32, 10] / out[32, 90] == pytest.approx(100, rel=0.01)


def test_overview_power_of_a_file_shorter_than_a_frame():
    from deepdive.features.spectrogram import overview_power

    out = overview_power([np.ones(50, np.float32)], 50, 2000)
    assert out.shape[1] == 1 and out.sum() > 0


def test_numpy_and_scipy_ffts_give_the_same_log_mel(monkeypatch):
    """A short one-off input is transformed with numpy's FFT (importing scipy.fft costs more than it
    saves); long inputs and scans with scipy's. Both give the same features, to float rounding."""
    import scipy.fft

    from deepdive.features import spectrogram
    from deepdive.features.spectrogram import MelConfig, log_mel

    y = np.random.default_rng(0).standard_normal(32000 * 5).astype(np.float32) * 0.1
    cfg = MelConfig()
    monkeypatch.setattr(spectrogram, "_rfft_for", lambda n: np.fft.rfft)
    a = log_mel(y, 32000, cfg)
    monkeypatch.setattr(spectrogram, "_rfft_for", lambda n: scipy.fft.rfft)
    b = log_mel(y, 32000, cfg)
    assert np.abs(a - b).max() < 1e-3  # dB


def test_a_one_off_classify_imports_neither_scipy_fft_nor_pydantic(tmp_path):
    """What `deepdive classify` of a 5 s file imports (its cold start is an aim): not scipy.fft, whose
    import costs about half a second, nor pydantic (typer >= 0.29 brings it in). Imports, not time."""
    import subprocess
    import sys
    from pathlib import Path

    import soundfile as sf

    path = tmp_path / "five.wav"
    sf.write(path, np.random.default_rng(0).standard_normal(32000 * 5).astype(np.float32) * 0.05, 32000)
    exe = str(Path(sys.executable).parent / "deepdive")
    run = subprocess.run([sys.executable, "-X", "importtime", exe, "classify", str(path), "--format", "json"],
                         capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "deepdive.bundle" in imported and "onnxruntime" in imported  # the list is real
    assert "scipy.fft" not in imported and "pydantic" not in imported
