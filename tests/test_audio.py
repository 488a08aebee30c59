import numpy as np
import pytest
import soundfile as sf

from deepdive import audio
from deepdive.errors import AudioError


def tone(sr, seconds=1.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.5 * np.sin(2 * np.pi * 200 * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.mark.parametrize(
    "ext,fmt,subtype",
    [
        ("wav", "WAV", "PCM_U8"), ("wav", "WAV", "PCM_16"), ("wav", "WAV", "PCM_24"), ("wav", "WAV", "PCM_32"),
        ("wav", "WAV", "FLOAT"), ("aiff", "AIFF", "PCM_16"), ("flac", "FLAC", "PCM_24"), ("wav", "WAV", "DOUBLE"),
    ],
)
def test_formats_and_depths(tmp_path, ext, fmt, subtype):
    p = tmp_path / f"x.{ext}"
    sf.write(p, tone(8000), 8000, format=fmt, subtype=subtype)
    y, sr = audio.load(p)
    assert sr == 8000 and y.dtype == np.float32 and len(y) == 8000
    assert np.allclose(y, tone(8000), atol=0.02)


@pytest.mark.parametrize("channels", [2, 4])
def test_multichannel_mixed_to_mono(tmp_path, channels):
    p = tmp_path / "multi.wav"
    data = tone(16000, 0.5, channels)
    data[:, 0] = 0.0  # mix is the mean of the channels
    sf.write(p, data, 16000)
    y, _ = audio.load(p)
    assert y.ndim == 1
    assert np.allclose(y, tone(16000, 0.5) * (channels - 1) / channels, atol=1e-3)


@pytest.mark.parametrize("sr", [500, 600, 2000, 44100, 166600, 384000])
def test_sample_rates_accepted_and_resampled(tmp_path, sr):
    p = tmp_path / "r.wav"
    sf.write(p, tone(sr, 0.5), sr)
    y, out_sr = audio.load(p, sr=32000)
    assert out_sr == 32000 and abs(len(y) - 16000) <= 2


def test_sample_rate_out_of_range(tmp_path):
    p = tmp_path / "low.wav"
    sf.write(p, np.zeros(100), 400)
    with pytest.raises(AudioError, match="400 Hz"):
        audio.load(p)


def test_short_recording(tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, tone(8000, 0.1), 8000)
    y, _ = audio.load(p)
    assert len(y) == 800


@pytest.mark.parametrize("content", [b"", b"this is not audio at all" * 10])
def test_not_audio(tmp_path, content):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match="bad.wav"):
        audio.load(p)


def test_zero_length(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0), 8000)
    with pytest.raises(AudioError, match="zero length"):
        audio.load(p)


def test_truncated(tmp_path):
    p = tmp_path / "t.wav"
    sf.write(p, tone(8000, 2.0), 8000, subtype="PCM_16")
    data = p.read_bytes()
    p.write_bytes(data[:60])
    with pytest.raises(AudioError):
        audio.load(p)


def test_nan_samples(tmp_path):
    p = tmp_path / "nan.wav"
    y = tone(8000).astype(np.float32)
    y[100] = np.nan
    sf.write(p, y, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        audio.load(p)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.load(tmp_path / "nope.wav")


def test_stream_equals_load_with_resampling(tmp_path):
    p = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(p, rng.standard_normal(44100 * 7).astype(np.float32) * 0.1, 44100, subtype="FLOAT")
    whole, _ = audio.load(p, sr=16000)
    blocks = list(audio.stream(p, block_s=1.3, sr=16000))
    streamed = np.concatenate([b for _, b, _ in blocks])
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    # interior samples agree: block edges are seamless
    assert np.max(np.abs(streamed[1000 : n - 1000] - whole[1000 : n - 1000])) < 1e-3
    assert blocks[1][0] == pytest.approx(len(blocks[0][1]) / 16000)
