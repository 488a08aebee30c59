"""End to end on synthetic calls: prepare, train a small model, evaluate (well above chance), classify."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("torch")

from deepdive import classify  # noqa: E402
from deepdive.bundle import Bundle  # noqa: E402
from deepdive.evaluate import evaluate_recordings, evaluate_store, write_report  # noqa: E402


def test_training_outputs(synth_model):
    for name in ("model.onnx", "card.json", "history.csv", "history.png", "model.pt"):
        assert (synth_model / name).is_file(), name
    card = json.loads((synth_model / "card.json").read_text())
    assert [lab["species"] for lab in card["labels"]][:2] == ["Synthetic clicks", "Synthetic moan"]
    assert card["features"]["n_mels"] == 48 and card["features"]["sr"] == 16000
    assert card["split"]["report"] and card["data_terms"] == "synthetic, no terms"
    rows = list(csv.DictReader(open(synth_model / "history.csv")))
    assert len(rows) >= 1 and {"train_loss", "val_loss", "val_acc"} <= set(rows[0])
    assert 1 <= card["training"]["best_epoch"] <= len(rows)


def test_evaluation_well_above_chance(synth_model, synth_store, tmp_path):
    report = evaluate_store(synth_model, synth_store, "test")
    chance = 1 / 5
    assert report["recording"]["n"] >= 10
    assert report["recording"]["accuracy"] >= 0.75 > 3 * chance  # measured 0.95 with this seed
    assert report["window"]["top3_accuracy"] >= report["window"]["accuracy"]
    assert set(report["recording"]["per_species"]) <= set(report["labels"])
    write_report(report, tmp_path)
    for name in ("report.json", "report.md", "confusion_window.png", "confusion_recording.png"):
        assert (tmp_path / name).is_file()
    md = (tmp_path / "report.md").read_text()
    assert "top-3" in md and "Synthetic upcall" in md


def test_classify_new_recordings(synth_model, tmp_path):
    """Fresh recordings (a new seed, a new encounter) are ranked right most of the time."""
    import soundfile as sf

    from deepdive import synth

    rng = np.random.default_rng(123)
    hits = 0
    kinds = synth.KINDS
    for kind in kinds:
        for j in range(2):
            p = tmp_path / f"{kind}{j}.wav"
            sf.write(p, synth.recording(kind, 22050, 6.0, rng, snr_db=15), 22050)
            ranking = classify(p, model=synth_model)
            assert abs(sum(r["probability"] for r in ranking) - 1) < 1e-5
            assert [r["probability"] for r in ranking] == sorted((r["probability"] for r in ranking), reverse=True)
            hits += ranking[0]["species"] == f"Synthetic {kind}"
    assert hits >= 7  # of 10; chance is 2


def test_classify_array_equals_file(synth_model, tmp_path):
    import soundfile as sf

    from deepdive import synth

    y = synth.recording("upcall", 16000, 4.0, np.random.default_rng(5))
    p = tmp_path / "u.wav"
    sf.write(p, y, 16000, subtype="FLOAT")
    a = classify(y, sr=16000, model=synth_model)
    b = classify(p, model=synth_model)
    assert [r["species"] for r in a] == [r["species"] for r in b]
    assert np.allclose([r["probability"] for r in a], [r["probability"] for r in b], atol=1e-5)
    assert len(classify(y, sr=16000, model=synth_model, top=2)) == 2


def test_evaluate_dataset_folder(synth_model, synth_corpus):
    from deepdive.datasets import load_watkins

    report = evaluate_recordings(synth_model, load_watkins(synth_corpus))
    assert report["recording"]["n"] == 60 and report["recording"]["accuracy"] > 0.5


def test_bundle_loads_and_predicts(synth_model):
    b = Bundle.load(synth_model)
    p = b.predict(np.full((3, *b.features.shape), -40.0, np.float32))
    assert p.shape == (3, 5) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_metrics_by_hand():
    from deepdive.evaluate import metrics

    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    m = metrics(np.array([0, 1, 2, 2]), probs, ["a", "b", "c"])
    assert m["accuracy"] == 0.5 and m["top3_accuracy"] == 1.0
    assert m["per_species"]["b"]["recall"] == 0.0 and m["per_species"]["c"]["recall"] == 0.5
    assert m["per_species"]["c"]["top3_recall"] == 1.0
    # F1: a = 2*(0.5*1)/(1.5) = 0.667, b = 0, c = 2*(1*0.5)/1.5 = 0.667
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3, abs=1e-4)
    assert m["confusion"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]


def test_band_cut_floors_the_top_bands_of_some_windows():
    import torch

    from deepdive.train import _spec_augment

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 96, 50) * 5 - 30  # (windows, bands from low to high, frames)
    plain = _spec_augment(x, torch.Generator().manual_seed(0), 0.0)
    out = _spec_augment(x, gen, 1.0)
    floor = x.amin(dim=(1, 2))
    top_floored = (out[:, -1, :] == floor[:, None]).all(dim=1)
    assert top_floored.float().mean() > 0.95  # (a top band kept whole only when the cut keeps all 96)
    # whatever is cut, the lowest quarter of the bands survives (beyond the one random frequency mask)
    low_floored = (out[:, :24, :] == floor[:, None, None]).all(dim=(1, 2))
    assert not low_floored.any()
    half = _spec_augment(x, torch.Generator().manual_seed(1), 0.5)
    share = (half[:, -1, :] == floor[:, None]).all(dim=1).float().mean()
    assert 0.35 < share < 0.65
    assert (plain[:, -1, :] == floor[:, None]).all(dim=1).float().mean() < 0.2  # only the random frequency mask


def test_pitch_moves_a_tone_by_its_factor_and_floors_what_comes_from_above():
    import torch

    from deepdive.train import _pitch_scale, _spec_augment

    x = torch.full((3, 64, 10), -80.0)
    x[:, 20, :] = 0.0  # a steady tone on row 20 of a linear spectrogram from 0 Hz
    floor = x.amin(dim=(1, 2), keepdim=True)
    out = _pitch_scale(x, torch.tensor([1.0, 1.5, 0.5]), floor)
    assert torch.equal(out[0], x[0])  # factor 1: unchanged
    assert int(out[1, :, 0].argmax()) == 30 and out[1, 30, 0] == 0.0  # 1.5 x higher: row 30
    assert int(out[2, :, 0].argmax()) == 10  # half as high: row 10
    assert (out[2, 33:, :] == -80.0).all()  # rows whose source lies above the top: the floor
    # in training: every window scaled within the range asked for, and with pitch 0 the draws are those of before
    gen = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(40):
        w = _spec_augment(x[:1].expand(8, 64, 10), gen, 0.0, 0.2)
        heard = w.amax(dim=2).amax(dim=1) > -80.0  # the random frequency mask can hide the tone
        rows += w.amax(dim=2).argmax(dim=1)[heard].tolist()  # the tone's row in each window
    assert min(rows) >= 20 / 1.2 - 1 and max(rows) <= 20 * 1.2 + 1 and len(set(rows)) >= 5
    a = _spec_augment(x, torch.Generator().manual_seed(3), 0.0, 0.0)
    b = _spec_augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_freq_mixstyle_gives_a_window_another_windows_band_statistics_and_keeps_its_shape():
    import torch

    from deepdive.train import _freq_mixstyle

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 32, 50, generator=gen) * torch.rand(16, 32, 1, generator=gen) * 10 - 60 * torch.rand(16, 32, 1, generator=gen)
    assert torch.equal(_freq_mixstyle(x, np.random.default_rng(0), 0.0), x)  # p 0: untouched
    out = _freq_mixstyle(x, np.random.default_rng(1), 1.0)
    mu, sig = x.mean(dim=2), x.std(dim=2, unbiased=False)
    mu_o, sig_o = out.mean(dim=2), out.std(dim=2, unbiased=False)
    assert out.min() >= x.min() and out.max() <= x.max()  # held within the features' floor and peak
    # each band's pattern over time is the window's own: standardised, the two are the same (bands not held)
    whole = ((out > x.min()) & (out < x.max())).all(dim=2)
    assert whole.float().mean() > 0.9
    same = torch.isclose((out - mu_o[..., None]) / sig_o[..., None], (x - mu[..., None]) / sig[..., None], atol=1e-3).all(dim=2)
    assert same[whole].all()
    # the statistics are a convex mixture of the window's own and one other window's, the same weight for every band
    moved = 0
    for i in range(16):
        b = whole[i]
        fits = []
        for j in range(16):
            d = (mu[j] - mu[i])[b]
            lam = float((d * (mu_o[i] - mu[i])[b]).sum() / (d * d).sum().clamp_min(1e-9)) if j != i else 0.0
            if -1e-4 <= lam <= 1 + 1e-4:
                fits.append(torch.allclose(mu_o[i][b], mu[i][b] + lam * d, atol=1e-2)
                            and torch.allclose(sig_o[i][b], (sig[i] + lam * (sig[j] - sig[i]))[b], atol=1e-2))
        assert any(fits)
        moved += int(not torch.allclose(mu_o[i][b], mu[i][b], atol=1e-2))
    assert moved >= 8  # most windows took some of another's statistics (lam ~ Beta(0.3, 0.3), or itself drawn)
    half = _freq_mixstyle(x, np.random.default_rng(2), 0.5)
    kept = sum(torch.allclose(half[i], x[i], atol=1e-3) for i in range(16))
    assert 3 <= kept <= 13


def test_freq_mixstyle_from_the_command_line(synth_store, tmp_path):
    """`train --freq-mixstyle P` reaches the training and its card; a probability outside [0, 1] is refused."""
    from typer.testing import CliRunner

    from deepdive.cli import app

    common = ["--model", "deepdive-resnet-fast", "--epochs", "1"]
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(tmp_path / "bad"), *common, "--freq-mixstyle", "1.5"])
    assert res.exit_code == 1 and "--freq-mixstyle 1.5" in res.output
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(tmp_path / "m"), *common, "--freq-mixstyle", "0.5"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m" / "card.json").read_text())["training"]["freq_mixstyle"] == 0.5


def test_a_detector_from_ones_own_raven_tables(tmp_path):
    """The analyst's workflow: Raven tables of one's own recordings -> `prepare raven --positive upcall`
    -> `train` gives a detector -> `scan` with it finds the calls of a recording it never heard, and
    `evaluate` scores it. `prepare manifest --positive` and `prepare folders --group-by subfolder` too."""
    from typer.testing import CliRunner

    from deepdive.cli import app
    from deepdive.outputs import read_raven_table
    from deepdive.store import FeatureStore
    from test_datasets import _annotated_recordings

    runner = CliRunner()
    data = tmp_path / "data"
    data.mkdir()
    tables = _annotated_recordings(data, n_recordings=6, seconds=40.0, seed=3)
    store, model = tmp_path / "store", tmp_path / "model"
    res = runner.invoke(app, ["prepare", "raven", *map(str, tables[:5]), "--out", str(store), "--positive", "upcall",
                              "--features", "stft-image", "--window", "2", "--val-frac", "0"])
    assert res.exit_code == 0, res.stderr
    s = FeatureStore(store)
    assert s.config["task"] == "detection" and s.config["prepare"]["positive"] == "upcall"
    assert set(s.labels) == {"upcall", "other"}
    sides = {}
    for r in s.rows:
        sides.setdefault(r["group"], set()).add(r["split"])
    assert all(len(v) == 1 for v in sides.values())  # each recording on one side
    res = runner.invoke(app, ["train", str(store), "--out", str(model), "--epochs", "12", "--patience", "12",
                              "--threshold-folds", "0", "--threshold-recall", "0"])
    assert res.exit_code == 0, res.stderr
    card = json.loads((model / "card.json").read_text())
    assert card["task"] == "detection" and card["positive_label"] == "upcall"
    # scan the sixth recording, never prepared: the events fall on its annotated up-calls
    out = tmp_path / "scan"
    res = runner.invoke(app, ["scan", str(data / "rec5.wav"), "--model", str(model), "--out", str(out), "--hop", "1"])
    assert res.exit_code == 0, res.stderr
    found = read_raven_table(out / "rec5.selections.txt")
    truth = [(r["Begin Time (s)"], r["End Time (s)"]) for r in read_raven_table(tables[5])
             if r["Annotation"] == "upcall" and r["View"] == "Spectrogram 1"]
    hits = sum(any(a < f["End Time (s)"] and f["Begin Time (s)"] < b for f in found) for a, b in truth)
    assert hits >= len(truth) - 1 and len(found) <= 2 * len(truth)
    res = runner.invoke(app, ["evaluate", str(model), str(store)])
    assert res.exit_code == 0, res.stderr
    # the same --positive for a manifest, and --group-by subfolder for folders
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"{data / f'rec{k}.wav'},{'a' if k % 2 else 'b'}\n" for k in range(6)))
    res = runner.invoke(app, ["prepare", "manifest", str(manifest), "--out", str(tmp_path / "ms"), "--positive", "a"])
    assert res.exit_code == 0, res.stderr
    assert FeatureStore(tmp_path / "ms").config["task"] == "detection"
    res = runner.invoke(app, ["prepare", "manifest", str(manifest), "--out", str(tmp_path / "mx"), "--positive", "zebra"])
    assert res.exit_code == 1 and "the labels are a, b" in res.stderr
    for k in range(4):
        d = tmp_path / "folders" / ("A" if k % 2 else "B") / f"day{k // 2}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"r{k}.wav").write_bytes((data / f"rec{k}.wav").read_bytes())
    res = runner.invoke(app, ["prepare", "folders", str(tmp_path / "folders"), "--out", str(tmp_path / "fs"),
                              "--group-by", "subfolder", "--val-frac", "0"])
    assert res.exit_code == 0, res.stderr
    groups = {r["group"] for r in FeatureStore(tmp_path / "fs").rows}
    assert groups == {"A/day0", "A/day1", "B/day0", "B/day1"}


def test_training_through_random_recorders_over_real_background(synth_store, synth_corpus, synth_kaggle, tmp_path):
    """`recorder` (with `noise`) trains, and the card says how; a bad probability is refused."""
    from typer.testing import CliRunner

    from deepdive.cli import app
    from deepdive.train import TrainConfig, train

    out = train(synth_store, tmp_path / "m", TrainConfig(model="deepdive-cnn", epochs=2, patience=2, seed=0, recorder=1.0,
                                                         noise=str(synth_kaggle)), progress=False)
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["recorder"] == 1.0 and card["training"]["noise"] == str(synth_kaggle)
    ranking = classify(str(sorted(synth_corpus.rglob("*.wav"))[0]), model=out)
    assert len(ranking) == len(card["labels"])
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(tmp_path / "bad"), "--recorder", "1.5",
                                   "--epochs", "1"])
    assert res.exit_code == 1 and "recorder augmentation 1.5" in res.output
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(tmp_path / "bad2"), "--model", "deepdive-cnn",
                                   "--centred-only", "--epochs", "1"])
    assert res.exit_code == 1 and "bad option" in res.output  # the published CNN has no level channel to drop


def test_outlier_exposure_spreads_the_probabilities_of_noise(synth_store, synth_kaggle, tmp_path):
    """`outliers`: windows of none of the classes, trained towards even probabilities. On the noise
    clips of a challenge folder (which it was exposed to), the model trained with them is less sure
    of any class than the same recipe without."""
    from deepdive.augment import noise_paths
    from deepdive.bundle import Bundle
    from deepdive.train import TrainConfig, train

    base = TrainConfig(model="deepdive-resnet", epochs=8, patience=8, lr=3e-3, seed=0)
    plain = train(synth_store, tmp_path / "plain", base, progress=False)
    exposed = train(synth_store, tmp_path / "exposed", replace(base, outliers=str(synth_kaggle), outlier_weight=1.0),
                    progress=False)
    card = json.loads((exposed / "card.json").read_text())
    assert card["training"]["outliers"] == str(synth_kaggle)
    assert "Training also heard noise recordings from" in card["data_terms"]  # their terms travel with the model
    clips = noise_paths(str(synth_kaggle), limit=20)

    def top(model):
        b = Bundle.load(model)
        return float(np.mean([classify(c, model=b)[0]["probability"] for c in clips]))

    assert top(exposed) < top(plain) - 0.1


def test_outlier_exposure_weight_and_share_from_the_command_line(synth_store, synth_kaggle, tmp_path):
    """`train --outlier-weight --outlier-share` reach the training and its card; a share outside (0, 1] is refused."""
    from typer.testing import CliRunner

    from deepdive.cli import app

    common = ["--model", "deepdive-cnn", "--outliers", str(synth_kaggle), "--epochs", "1"]
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(tmp_path / "bad"), *common, "--outlier-share", "0"])
    assert res.exit_code == 1 and "share per batch" in res.output
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(tmp_path / "m"), *common,
                                   "--outlier-weight", "0.8", "--outlier-share", "0.5"])
    assert res.exit_code == 0, res.output
    training = json.loads((tmp_path / "m" / "card.json").read_text())["training"]
    assert training["outlier_weight"] == 0.8 and training["outlier_share"] == 0.5


def test_distillation_teaches_the_student_the_teachers_description(synth_corpus, small_cfg, synth_store, tmp_path):
    """`teacher`: a store of the same windows with other features. The targets are the teacher's
    principal components, whitened on the training windows; the student learns to predict them from
    its embedding (the distillation loss falls well below 1, the teacher's mean) while it learns the
    classes; the card names the teacher; a teacher that lacks some training windows is refused."""
    from deepdive.datasets import load_watkins
    from deepdive.errors import DeepdiveError
    from deepdive.features.spectrogram import MelConfig
    from deepdive.prepare import prepare
    from deepdive.store import FeatureStore
    from deepdive.train import TrainConfig, _teacher_targets, train

    teacher_cfg = replace(small_cfg, features=MelConfig(sr=16000, n_fft=512, hop_length=256, n_mels=24, fmin=20,
                                                         fmax=8000, window_s=3.0))
    teacher, other = tmp_path / "teacher", tmp_path / "other"
    prepare(load_watkins(synth_corpus), teacher, teacher_cfg, source={"kind": "synthetic"})
    cfg = TrainConfig(model="deepdive-resnet", epochs=12, patience=12, lr=3e-3, seed=0, mixup=0.0,
                      model_options={"widths": (16, 32, 48, 64)}, teacher=str(teacher), teacher_dims=8)
    store = FeatureStore(synth_store)
    targets = _teacher_targets(store, cfg, store.indices("train"))
    assert targets.shape == (len(store.rows), 8) and np.isfinite(targets).all()
    assert np.allclose(targets[store.indices("train")].std(0), 1.0, atol=0.01)  # whitened on the training windows

    student = train(synth_store, tmp_path / "student", cfg, progress=False)
    card = json.loads((student / "card.json").read_text())
    assert card["training"]["teacher"] == str(teacher)
    losses = [h["teacher_loss"] for h in history_rows(student)]
    assert losses[-1] < 0.6 * losses[0] and min(losses) < 0.9
    assert evaluate_store(student, synth_store, split="val")["recording"]["accuracy"] > 0.5  # still learns the classes

    recs = load_watkins(synth_corpus)
    prepare(recs[: len(recs) // 2], other, teacher_cfg, source={"kind": "synthetic"})  # half the recordings
    with pytest.raises(DeepdiveError, match="training windows are not in it"):
        train(synth_store, tmp_path / "bad", replace(cfg, teacher=str(other)), progress=False)

    soft = replace(cfg, teacher_targets="probabilities", teacher_temperature=2.0)  # the teacher's probabilities instead
    probs = _teacher_targets(store, soft, store.indices("train"))
    assert probs.shape == (len(store.rows), len(store.labels)) and np.isfinite(probs).all()
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    truth = np.array([store.labels.index(r["label"]) for r in store.rows])
    tr = store.indices("train")
    assert (probs[tr].argmax(1) == truth[tr]).mean() > 0.9  # the teacher's head learnt its training windows
    assert probs[tr].max(1).mean() < 0.999  # softened: the other classes keep some probability
    hot = _teacher_targets(store, replace(soft, teacher_temperature=1.0), tr)
    assert probs[tr].max(1).mean() < hot[tr].max(1).mean()  # a higher temperature spreads it further
    student = train(synth_store, tmp_path / "soft", soft, progress=False)
    assert json.loads((student / "card.json").read_text())["training"]["teacher_targets"] == "probabilities"
    losses = [h["teacher_loss"] for h in history_rows(student)]
    assert losses[-1] < 0.6 * losses[0]  # the student's softened outputs move towards the teacher's
    assert evaluate_store(student, synth_store, split="val")["recording"]["accuracy"] > 0.5
    with pytest.raises(DeepdiveError, match="neither"):
        _teacher_targets(store, replace(cfg, teacher_targets="logits"), tr)


def history_rows(model):
    with open(model / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def test_an_unknown_or_missing_training_device_is_refused(synth_store, tmp_path):
    import torch

    from deepdive.errors import DeepdiveError
    from deepdive.train import TrainConfig, train

    with pytest.raises(DeepdiveError, match="not a torch device"):
        train(synth_store, tmp_path / "a", TrainConfig(epochs=1, device="gpu0"), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(DeepdiveError, match="no CUDA GPU"):
            train(synth_store, tmp_path / "b", TrainConfig(epochs=1, device="cuda"), progress=False)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_trained_on_a_gpu_is_a_cpu_bundle_that_ranks_as_well(synth_store, tmp_path):
    """Runs where torch sees a GPU (not in CI): the same recipe as `synth_model`, trained on cuda."""
    from deepdive.train import TrainConfig, train

    out = train(synth_store, tmp_path / "gpu", TrainConfig(model="deepdive-resnet", epochs=20, patience=20, lr=3e-3,
                                                            device="cuda"), progress=False)
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["best_epoch"] >= 1
    report = evaluate_store(out, synth_store, "test")
    assert report["recording"]["accuracy"] >= 0.75  # as test_evaluation_well_above_chance asks of the CPU model


def test_pcen_channel_trains_exports_and_quantizes(synth_store, synth_corpus, tmp_path):
    """`train --pcen SECONDS`: the card keeps the time constant in the store's frames; the exported
    model ranks a recording, its int8 version (PCEN kept in fp32, before the first convolution) agrees
    with it; a time constant that is not positive is refused with one line."""
    from typer.testing import CliRunner

    from deepdive.bundle import quantize
    from deepdive.cli import app
    from deepdive.prepare import store_features
    from deepdive.store import FeatureStore

    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(out), "--model", "deepdive-resnet-fast",
                                   "--centred-only", "--pcen", "0.4", "--epochs", "1"])
    assert res.exit_code == 0, res.output
    features = store_features(FeatureStore(synth_store).config["prepare"])
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["model_options"] == {"level": False, "pcen": pytest.approx(0.4 * features["sr"] / features["hop_length"])}
    ranking = classify(str(sorted(synth_corpus.rglob("*.wav"))[0]), model=out)
    assert len(ranking) == len(card["labels"])
    info = quantize(out, synth_store)
    assert info["test_top1_agreement"] >= 0.9, info
    res = CliRunner().invoke(app, ["train", str(synth_store), "--out", str(tmp_path / "bad"), "--pcen", "-1", "--epochs", "1"])
    assert res.exit_code == 1 and "--pcen -1" in res.output
