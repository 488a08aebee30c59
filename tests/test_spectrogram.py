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
