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


def test_arrays_from_python_are_taken_unambiguously():
    """(channels, n) and (n, channels) give the same answer (the longer axis is time); a list is an
    array, not a path; integer arrays are PCM; 3-D arrays, text, a square array, a rate given as text:
    one clear error of the package's own."""
    import deepdive
    from deepdive import synth
    from deepdive.errors import AudioError

    y = synth.recording("whistle", 16000, 3.0, np.random.default_rng(2))
    mono = deepdive.classify(y, sr=16000)[0]
    for samples in (np.stack([y, y]), np.stack([y, y], axis=1), list(y), (y * 32767).astype(np.int16)):
        top = deepdive.classify(samples, sr=16000)[0]
        # (16-bit PCM rounds the samples: its probability may move by a few thousandths; 0.0064 with the
        # 21-species bundle, whose int8 activations carry the rounding further)
        assert top["species"] == mono["species"] and top["probability"] == pytest.approx(mono["probability"], abs=0.01)
    assert 0 <= deepdive.detect(np.stack([y, y]), sr=16000) <= 1
    for samples, sr, says in ((y[None, None], 16000, "3-D"), (np.array(["a", "b"]), 16000, "numbers"),
                              (np.zeros((4, 4)), 16000, "4 x 4"), (y, "48000", "whole number"), (y, 48000.5, "whole number"),
                              (y[:100], 16000, "too short"), (y, 100, "outside")):
        with pytest.raises(AudioError, match=says):
            deepdive.classify(samples, sr=sr)


def test_extreme_float_samples_give_finite_answers(tmp_path):
    import deepdive
    from deepdive import synth

    y = synth.recording("upcall", 2000, 2.0, np.random.default_rng(4), n_calls=1)
    sf.write(tmp_path / "huge.wav", (y / np.abs(y).max() * 3e38).astype(np.float32), 2000, subtype="FLOAT")
    p = deepdive.detect(tmp_path / "huge.wav")
    assert np.isfinite(p) and p == pytest.approx(deepdive.detect(y, sr=2000), abs=1e-3)  # the level does not matter
    stereo = np.stack([y, y], axis=1) / np.abs(y).max() * 3e38  # float64: their sum would overflow float32
    assert np.isfinite(deepdive.detect(stereo, sr=2000))


def test_truncated_compressed_files_are_errors(tmp_path):
    from deepdive import audio
    from deepdive.errors import AudioError

    y = np.random.default_rng(0).standard_normal(16000 * 6).astype(np.float32) * 0.1
    for ext, fmt, sub in (("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III")):
        whole = tmp_path / f"whole.{ext}"
        sf.write(whole, y, 48000 if sub == "OPUS" else 16000, format=fmt, subtype=sub)
        assert len(audio.load(whole)[0]) == sf.info(str(whole)).frames
        cut = tmp_path / f"cut.{ext}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        with pytest.raises(AudioError, match="truncated"):
            audio.load(cut)
        with pytest.raises(AudioError, match="truncated"):
            list(audio.stream(cut, block_s=1.0))
