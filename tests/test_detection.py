"""Right-whale detection end to end on synthetic up-calls in noise: challenge layout, prepare by tape,
train, evaluate (AUC, noise robustness), detect from Python and the CLI, the submission file."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import detection_cfg
from deepdive.cli import app
from deepdive.errors import DatasetError, ModelError

runner = CliRunner()


def test_kaggle_loader_groups_by_tape(synth_kaggle, tmp_path):
    from deepdive.datasets import list_test_clips, load_kaggle

    recs = load_kaggle(synth_kaggle)
    assert len(recs) == 80 and {r.label for r in recs} == {"noise", "right whale"}
    assert all(r.group == f"tape:{r.tape}" for r in recs) and len({r.group for r in recs}) == 8
    names = [p.name for p in list_test_clips(synth_kaggle)]
    assert names == [f"test{i}.aiff" for i in range(1, 7)]  # natural order
    (tmp_path / "train.csv").write_text("clip_name,label\nx.aiff,2\n")
    with pytest.raises(DatasetError, match="not 0 or 1"):
        load_kaggle(tmp_path)
    (tmp_path / "train.csv").write_text("clip_name,label\nx.aiff,1\n")
    with pytest.raises(DatasetError, match="missing"):
        load_kaggle(tmp_path)
    # without sources.csv every clip is its own group
    (tmp_path / "train").mkdir()
    sf.write(tmp_path / "train" / "x.aiff", np.zeros(4000, np.float32), 2000, format="AIFF")
    assert load_kaggle(tmp_path)[0].group == "clip:x.aiff"


def test_kaggle_loader_keeps_identical_clips_together_and_names_the_terms(tmp_path):
    """Without sources.csv, clips with the same samples (the challenge repeats some noise clips) share
    a group whatever their headers, so no split puts a copy of a clip on both sides; the terms follow
    the folder (Cornell's notice beside the buoy clips, Watkins' for clips cut from its tapes)."""
    from deepdive.datasets import dataset_terms, load_kaggle
    from deepdive.datasets.kaggle import CORNELL_LICENSE, data_terms

    rng = np.random.default_rng(0)
    (tmp_path / "train").mkdir()
    a, b = rng.standard_normal((2, 4000)).astype(np.float32) * 0.1
    clips = {"c1.aiff": a, "c2.aiff": b, "c3.aiff": a, "c4.aiff": b, "c5.aiff": a * 0.5}
    for name, y in clips.items():
        sf.write(tmp_path / "train" / name, y, 2000, format="AIFF", subtype="FLOAT" if name == "c3.aiff" else "PCM_16")
    (tmp_path / "train.csv").write_text("clip_name,label\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(clips)))
    recs = load_kaggle(tmp_path)
    groups = {r.path.rsplit("/", 1)[1]: r.group for r in recs}
    assert groups["c4.aiff"] == groups["c2.aiff"] == "clip:c2.aiff"
    assert len({groups["c1.aiff"], groups["c3.aiff"], groups["c5.aiff"]}) == 3  # float vs 16-bit, and louder: not identical
    assert {r.source for r in recs} == {tmp_path.name}
    assert data_terms(tmp_path) == "See the training data's own terms."
    (tmp_path / CORNELL_LICENSE).write_text("Copyright (c) 2011 by Cornell University")
    assert "Cornell University" in data_terms(tmp_path) and "non-profit" in data_terms(tmp_path)
    both = dataset_terms("kaggle", [str(tmp_path), str(tmp_path)])
    assert both == data_terms(tmp_path)  # each terms said once


def test_several_sources_are_split_within_each(synth_kaggle, tmp_path):
    """Two challenge folders trained on together: groups never span folders, and each folder's split is
    the one it gets alone (its test tapes unchanged by the other folder), tested in its own proportions."""
    import shutil

    from deepdive.datasets import load_datasets, load_kaggle
    from deepdive.prepare import format_split_report, split_by_encounter

    other = tmp_path / "buoys"
    shutil.copytree(synth_kaggle, other)
    (other / "sources.csv").unlink()
    recs = load_datasets("kaggle", [str(synth_kaggle), str(other)])
    sources = {r.source for r in recs}
    assert sources == {synth_kaggle.name, "buoys"}
    assert all(r.group.startswith(f"{r.source}/") for r in recs)
    assign, report = split_by_encounter(recs, 0.15, 0.2, seed=0)
    alone, alone_report = split_by_encounter(load_kaggle(synth_kaggle), 0.15, 0.2, seed=0)
    mine = [row for row in report if row["source"] == synth_kaggle.name]
    assert [row["test_recordings"] for row in mine] == [row["test_recordings"] for row in alone_report]
    first = {r.path: assign[r.key] for r in recs if r.source == synth_kaggle.name}
    assert first == {r.path: alone[r.key] for r in load_kaggle(synth_kaggle)}
    for source in sources:
        for label in ("noise", "right whale"):
            sides = {assign[r.key] for r in recs if r.source == source and r.label == label}
            assert sides == {"train", "val", "test"}
    assert "buoys: right whale" in format_split_report(report)
    # the same folder twice is two sources with distinct names
    twice = load_datasets("kaggle", [str(other), str(other)])
    assert {r.source for r in twice} == {"buoys", "buoys-2"}


def test_two_sources_in_one_store_passes_per_source_and_backgrounds_of_the_other(tmp_path):
    """A store of two challenge folders: each source's training clips get the passes asked for, and an
    augmented pass may carry a background of the other source's training noise clips, never its own,
    never a test clip; the store records both, and a source that is not there is an error."""
    from dataclasses import replace

    from deepdive import synth
    from deepdive.datasets import load_datasets
    from deepdive.prepare import prepare
    from deepdive.store import FeatureStore

    buoys = synth.write_kaggle(tmp_path / "buoys", tapes=4, clips_per_tape=6, seed=5)
    tapes = synth.write_kaggle(tmp_path / "tapes", tapes=4, clips_per_tape=4, seed=6)
    (buoys / "sources.csv").unlink()
    recs = load_datasets("kaggle", [str(buoys), str(tapes)])
    cfg = replace(detection_cfg(), source_passes={"buoys": 1, "tapes": 4}, mix_backgrounds=1.0, mix_snr_db=(5.0, 5.0),
                  mix_pool=8)
    config = prepare(recs, tmp_path / "store", cfg)
    assert config["passes_per_source"] == {"buoys": 1, "tapes": 4}
    assert 0 < config["background_pool"]["buoys"] <= 8 and 0 < config["background_pool"]["tapes"] <= 8
    store = FeatureStore(tmp_path / "store")
    source_of = {r.key: r.source for r in recs}
    train = [r for r in store.rows if r["split"] == "train"]
    for src, passes in (("buoys", 1), ("tapes", 4)):
        mine = [r for r in train if source_of[r["key"]] == src]
        assert len(mine) == passes * len({r["key"] for r in mine})
    mixed = [json.loads(r["augment"]) for r in train if r["augment"]]
    assert mixed and all(a["background"].startswith("buoys#") and a["mix_snr_db"] == 5.0 for a in mixed)
    with pytest.raises(DatasetError, match="not a source"):
        prepare(recs, tmp_path / "store2", replace(cfg, source_passes={"elsewhere": 2}))


def test_detector_store_is_split_by_tape_and_augments_every_class(detector_store):
    from deepdive.store import FeatureStore

    s = FeatureStore(detector_store)
    assert s.config["task"] == "detection" and s.config["prepare"]["positive"] == "right whale"
    sides: dict[str, set] = {}
    for r in s.rows:
        sides.setdefault(r["group"], set()).add(r["split"])
    assert all(len(v) == 1 for v in sides.values())
    assert s.config["slices_per_label"] == {"noise": 3, "right whale": 3}
    train = [r for r in s.rows if r["split"] == "train"]
    for label in ("noise", "right whale"):
        mine = [r for r in train if r["label"] == label]
        assert sum(bool(r["augment"]) for r in mine) == 2 * sum(not r["augment"] for r in mine)
    assert all("shift" in json.loads(r["augment"]) for r in train if r["augment"])
    assert not any(r["augment"] for r in s.rows if r["split"] != "train")
    assert s.features(0).shape == (129, 126)


def test_threshold_from_training_tapes_by_a_recall_rule(detector_store, tmp_path):
    """`--threshold-folds K --threshold-recall R`: the card's threshold is the strictest that finds R of the
    calls in out-of-fold scores of the training tapes, scored by models stopped where the shipped one
    stopped; the card lists the other operating points for a reviewer to choose from."""
    from deepdive.train import TrainConfig, train

    cfg = TrainConfig(model="detector-cnn", epochs=6, patience=2, lr=3e-3, seed=0, threshold_folds=3, threshold_recall=0.9)
    card = json.loads((train(detector_store, tmp_path, cfg, progress=False) / "card.json").read_text())
    best = card["training"]["best_epoch"]
    assert card["threshold_rule"].startswith("recall 0.9 on out-of-fold scores") and f"stopped at epoch {best}" in card["threshold_rule"]
    cv = card["training_tapes_crossval"]
    assert cv["folds"] == 3 and 0 < cv["positives"] < cv["clips"]
    points = {o["rule"]: o for o in cv["operating_points"]}
    assert set(points) == {"maximum F1", "recall 0.5", "recall 0.8", "recall 0.9", "recall 0.95"}
    assert card["threshold"] == points["recall 0.9"]["threshold"] and points["recall 0.9"]["recall"] >= 0.9
    assert points["recall 0.95"]["threshold"] <= card["threshold"] <= points["recall 0.5"]["threshold"]


def test_card_of_a_model_trained_without_validation_is_strict_json(synth_kaggle, tmp_path):
    """`prepare --val-frac 0` then `train --epochs N --patience N`, the bundled detector's recipe: the
    card's final row has null (not NaN) for the validation figures it has no data for."""
    store, model = tmp_path / "store", tmp_path / "model"
    res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), "--out", str(store), "--val-frac", "0", "--image", "32x32"])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["train", str(store), "--out", str(model), "--epochs", "2", "--patience", "2",
                              "--threshold-folds", "0"])
    assert res.exit_code == 0, res.stderr
    card = json.loads((model / "card.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the card"))
    assert card["training"]["monitor"] == "train_loss" and card["training"]["final"]["val_loss"] is None
    assert card["training"]["threshold_recall"] == 0.9  # the CLI's default for detectors


def test_a_detector_of_two_sources_is_evaluated_per_source(synth_kaggle, tmp_path):
    """prepare, train and evaluate on two folders, from the CLI: the card says how each folder was split
    and carries both folders' terms; the threshold folds are dealt within each folder; evaluate reports
    every folder's test clips on their own beside the pooled figures, and writes them into the card."""
    import shutil

    buoys = tmp_path / "buoys"
    shutil.copytree(synth_kaggle, buoys)
    (buoys / "sources.csv").unlink()
    (buoys / "LICENSE-CORNELL.txt").write_text("Copyright (c) 2011 by Cornell University")
    store, model = tmp_path / "store", tmp_path / "model"
    res = runner.invoke(app, ["prepare", "kaggle", str(buoys), str(synth_kaggle), "--out", str(store), "--val-frac", "0",
                              "--image", "32x32", "--mix-backgrounds", "0.5"])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["train", str(store), "--out", str(model), "--epochs", "2", "--patience", "2",
                              "--threshold-folds", "2"])
    assert res.exit_code == 0, res.stderr
    card = json.loads((model / "card.json").read_text())
    point = next(o for o in card["training_tapes_crossval"]["operating_points"] if o["rule"] == "recall 0.9")
    assert point["threshold"] == card["threshold"] and set(point["by_source"]) == {"buoys", synth_kaggle.name}
    assert all(0 <= v["recall"] <= 1 and 0 <= v["own_threshold"] <= 1 for v in point["by_source"].values())
    method = card["split"]["method"]
    assert "buoys: by clip, clips with identical samples kept together" in method
    assert f"{synth_kaggle.name}: by tape" in method
    assert "Cornell" in card["data_terms"] and "Watkins" in card["data_terms"]
    assert card["training_tapes_crossval"]["folds"] == 2
    res = runner.invoke(app, ["evaluate", str(model), str(store)])
    assert res.exit_code == 0, res.stderr
    assert "**buoys**" in res.stdout and f"**{synth_kaggle.name}**" in res.stdout
    test = json.loads((model / "card.json").read_text())["metrics"]["test"]
    assert set(test["by_source"]) == {"buoys", synth_kaggle.name}
    n = {src: figures["clean"]["n"] for src, figures in test["by_source"].items()}
    assert sum(n.values()) == test["clean"]["n"] and min(n.values()) > 0


def test_operating_points_per_source():
    """For a model trained on several sources, every operating point also says what it gives on each
    source, and each source's own threshold for the rule (a source whose calls score lower needs a
    lower one)."""
    from deepdive.evaluate import operating_points, recall_threshold

    y = np.array([1, 1, 1, 1, 0, 0, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.2, 0.05, 0.1])
    src = np.array(["a"] * 6 + ["b"] * 4)
    pooled = operating_points(y, p)
    points = {o["rule"]: o for o in operating_points(y, p, sources=src)}
    assert [o["threshold"] for o in pooled] == [o["threshold"] for o in points.values()]
    b = points["recall 0.95"]["by_source"]["b"]
    assert b["own_threshold"] == pytest.approx(recall_threshold(y[src == "b"], p[src == "b"], 0.95), abs=1e-4)
    assert points["recall 0.5"]["by_source"]["a"]["recall"] >= 0.5 and points["recall 0.5"]["by_source"]["b"]["recall"] == 0


def test_fit_can_stop_at_a_given_epoch(detector_store):
    from deepdive.store import FeatureStore
    from deepdive.train import TrainConfig, _fit

    store = FeatureStore(detector_store)
    cfg = TrainConfig(model="detector-cnn", epochs=10, patience=10, seed=0)
    _, history, best, monitor, _ = _fit(store, cfg, store.labels, (129, 126), None, False, va=[], stop_at=2)
    assert len(history) == 2 and best == 2 and monitor == "train_loss"  # epoch 2 of the 10-epoch schedule
    assert history[-1]["lr"] < cfg.lr  # still warming up: the same one-cycle schedule as a full run


def test_detector_end_to_end(detector_model, detector_store, synth_kaggle):
    from deepdive import detect, synth
    from deepdive.bundle import Bundle
    from deepdive.evaluate import evaluate_store

    b = Bundle.load(detector_model)
    card = b.card
    assert card["task"] == "detection" and card["positive_label"] == "right whale"
    assert card["features"]["kind"] == "stft-image" and card["features"]["n_fft"] == 256
    assert card["features"]["hop_length"] == 32 and card["input"]["name"] == "features"
    assert 0 < card["threshold"] < 1
    report = evaluate_store(detector_model, detector_store, "test")
    clean = report["conditions"]["clean"]
    assert clean["n"] >= 10 and 0 < clean["positives"] < clean["n"]
    assert clean["roc_auc"] >= 0.8  # chance is 0.5
    assert set(report["conditions"]) == {"clean", "20 dB", "10 dB", "5 dB", "0 dB"}
    # a fresh up-call in noise against noise alone, at another sample rate: resampled to 2 kHz
    rng = np.random.default_rng(11)
    calls = [synth.recording("upcall", 4000, 2.0, rng, snr_db=12, n_calls=1, noise_level=0.02) for _ in range(6)]
    quiet = [synth.ocean_noise(8000, 4000, rng, 0.02) for _ in range(6)]
    p_call = [detect(y, sr=4000, model=detector_model) for y in calls]
    p_noise = [detect(y, sr=4000, model=detector_model) for y in quiet]
    assert np.mean(p_call) > np.mean(p_noise) + 0.3
    path = synth_kaggle / "test" / "test1.aiff"
    assert detect(path, model=detector_model) == pytest.approx(detect(sf.read(path)[0], sr=2000, model=detector_model), abs=1e-6)


def test_detect_cli_and_submission(detector_model, synth_kaggle, tmp_path):
    sub = tmp_path / "submission.csv"
    bad = tmp_path / "bad.aiff"
    bad.write_text("not audio")
    res = runner.invoke(app, ["detect", str(synth_kaggle / "test"), "--model", str(detector_model), "--submission", str(sub),
                              "--format", "json"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert [o["file"].rsplit("/", 1)[1] for o in out] == [f"test{i}.aiff" for i in range(1, 7)]
    assert set(out[0]) == {"file", "probability", "detected"} and 0 <= out[0]["probability"] <= 1
    rows = list(csv.reader(sub.open()))
    assert rows[0] == ["clip", "probability"] and [r[0] for r in rows[1:]] == [f"test{i}.aiff" for i in range(1, 7)]
    assert all(0 <= float(r[1]) <= 1 for r in rows[1:])
    clip = synth_kaggle / "test" / "test1.aiff"
    res = runner.invoke(app, ["detect", str(clip), str(bad), "--model", str(detector_model), "--threshold", "0",
                              "--format", "csv"])
    assert res.exit_code == 1
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "file,probability,detected,error" and lines[1].endswith(",1,")
    assert f"error: {bad}: " in res.stderr and "Traceback" not in res.stderr
    res = runner.invoke(app, ["detect", str(clip), "--model", str(detector_model)])
    assert res.exit_code == 0 and "test1.aiff" in res.stdout


def test_detect_and_scan_at_an_operating_point_of_the_card(detector_model, synth_kaggle, tmp_path):
    """--recall R takes the threshold of the card's operating point for R (the bundled detector lists
    0.5, 0.8, 0.9 and 0.95); an R it does not list, or --recall with --threshold, is one error line."""
    from deepdive.bundle import resolve

    bundled = resolve(None, "detection")
    points = {o["rule"]: o["threshold"] for o in bundled.card["training_tapes_crossval"]["operating_points"]}
    assert bundled.recall_threshold(0.95) == points["recall 0.95"] < bundled.threshold == points["recall 0.9"]
    clips = sorted((synth_kaggle / "test").glob("*.aiff"))
    res = runner.invoke(app, ["detect", *map(str, clips), "--recall", "0.95", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    for o in json.loads(res.stdout):
        assert o["detected"] == (o["probability"] >= points["recall 0.95"])
    res = runner.invoke(app, ["detect", str(clips[0]), "--recall", "0.7"])
    assert res.exit_code == 1 and "no operating point for recall 0.7" in res.stderr and "0.5, 0.8, 0.9, 0.95" in res.stderr
    res = runner.invoke(app, ["detect", str(clips[0]), "--recall", "0.9", "--threshold", "0.5"])
    assert res.exit_code == 1 and "not both" in res.stderr and "Traceback" not in res.stderr
    res = runner.invoke(app, ["detect", str(clips[0]), "--model", str(detector_model), "--recall", "0.9"])
    assert res.exit_code == 1 and "lists none" in res.stderr  # chosen on the validation split: no operating points
    res = runner.invoke(app, ["scan", str(clips[0]), "--out", str(tmp_path / "scan"), "--recall", "0.8"])
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "scan" / "summary.json").read_text())["threshold"] == points["recall 0.8"]
    res = runner.invoke(app, ["scan", str(clips[0]), "--out", str(tmp_path / "s2"), "--model", "species", "--recall", "0.8"])
    assert res.exit_code == 1 and res.stderr.startswith("error: ")


def test_models_refuse_the_other_task(detector_model, synth_model, synth_kaggle):
    from deepdive import classify, detect

    clip = synth_kaggle / "test" / "test1.aiff"
    with pytest.raises(ModelError, match="detector"):
        detect(clip, model=synth_model)
    with pytest.raises(ModelError, match="species model"):
        classify(clip, model=detector_model)
    res = runner.invoke(app, ["detect", str(clip), "--model", str(synth_model)])
    assert res.exit_code == 1 and res.stderr.startswith("error: ") and "detector" in res.stderr


def test_prepare_train_evaluate_kaggle_from_the_cli(synth_kaggle, tmp_path):
    store, model = tmp_path / "store", tmp_path / "model"
    res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), "--out", str(store), "--features", "complexity-entropy"])
    assert res.exit_code == 0, res.stderr
    assert "right whale" in res.stdout
    res = runner.invoke(app, ["train", str(store), "--out", str(model), "--model", "inception1d", "--epochs", "2"])
    assert res.exit_code == 0, res.stderr
    card = json.loads((model / "card.json").read_text())
    assert card["features"]["kind"] == "complexity-entropy" and card["input"]["shape"] == ["batch", 30, 126]
    res = runner.invoke(app, ["evaluate", str(model), str(store)])
    assert res.exit_code == 0, res.stderr
    assert "ROC AUC" in res.stdout and (model / "eval" / "roc_pr.png").is_file()
    assert "clean" in json.loads((model / "card.json").read_text())["metrics"]["test"]
    res = runner.invoke(app, ["evaluate", str(model), str(synth_kaggle), "--kind", "kaggle", "--out", str(tmp_path / "all"),
                              "--no-update-card"])
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "all" / "report.json").read_text())["conditions"]["clean"]["n"] == 80


def test_xception_and_transfer_train_on_a_detector_store(detector_store, synth_model, tmp_path):
    import torch

    from deepdive.bundle import Bundle
    from deepdive.store import FeatureStore
    from deepdive.train import TrainConfig, train

    out = train(detector_store, tmp_path / "x", TrainConfig(model="xception", epochs=1, model_options={"width": 0.125}),
                progress=False)
    b = Bundle.load(out)
    assert b.card["training"]["model_options"] == {"width": 0.125}
    s = FeatureStore(detector_store)
    assert b.detect(s.batch([0, 1])).shape == (2,)
    # the species model (trained on log-mel windows) fine-tuned into a detector, backbone frozen
    out = train(detector_store, tmp_path / "t", TrainConfig(model="deepdive-resnet", epochs=2, init=str(synth_model),
                                                             freeze_backbone=True), progress=False)
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["transfer"]["loaded"] == card["training"]["transfer"]["of"]
    before = torch.load(synth_model / "model.pt", weights_only=True)
    after = torch.load(out / "model.pt", weights_only=True)
    assert torch.equal(before["stages.2.conv1.weight"], after["stages.2.conv1.weight"])
    assert torch.equal(before["stem.1.running_mean"], after["stem.1.running_mean"])
    assert not torch.equal(before["head.1.weight"][:2], after["head.1.weight"])


def test_crossval_scores_every_clip_once(synth_kaggle, tmp_path):
    from conftest import detection_cfg
    from deepdive.crossval import crossval_detector
    from deepdive.datasets import load_kaggle
    from deepdive.train import TrainConfig

    recs = load_kaggle(synth_kaggle)
    r = crossval_detector(recs, tmp_path, detection_cfg(), TrainConfig(model="detector-cnn", epochs=3, patience=3), k=2,
                          snrs_db=(10.0,))
    assert sorted(r["clips"]) == sorted(x.key for x in recs)
    assert len(r["folds"]) == 2 and set(r["conditions"]) == {"clean", "10 dB"}
    assert r["conditions"]["clean"]["roc_auc"] > 0.5


def test_a_stopped_crossval_goes_on_from_its_finished_folds(synth_kaggle, tmp_path, monkeypatch):
    from conftest import detection_cfg
    from deepdive import train as train_mod
    from deepdive.crossval import crossval_detector
    from deepdive.datasets import load_kaggle
    from deepdive.train import TrainConfig

    recs = load_kaggle(synth_kaggle)
    tcfg = TrainConfig(model="detector-cnn", epochs=1, patience=1)
    first = crossval_detector(recs, tmp_path, detection_cfg(), tcfg, k=2, snrs_db=(10.0,), resume=True)
    real_train, trained = train_mod.train, []

    def counting(store, out, cfg, **kw):
        trained.append(cfg)
        return real_train(store, out, cfg, **kw)

    monkeypatch.setattr(train_mod, "train", counting)
    (tmp_path / "fold1.json").unlink()  # as if stopped while fold 1 trained
    again = crossval_detector(recs, tmp_path, detection_cfg(), tcfg, k=2, snrs_db=(10.0,), resume=True)
    assert len(trained) == 1  # fold 0 read back, fold 1 trained
    assert sorted(again["clips"]) == sorted(first["clips"])
    assert again["folds"][0] == first["folds"][0]
    n0 = first["folds"][0]["clips"]
    assert again["probabilities"]["clean"][:n0] == first["probabilities"]["clean"][:n0]
    # another recipe does not reuse the saved fold
    crossval_detector(recs, tmp_path, detection_cfg(), TrainConfig(model="detector-cnn", epochs=2, patience=2), k=2,
                      snrs_db=(10.0,), resume=True)
    assert len(trained) == 3
    # folds shared between processes or machines: `only` trains those alone; a GPU-trained fold
    # (another device) is read by a run on the CPU
    shared = tmp_path / "shared"
    crossval_detector(recs, shared, detection_cfg(), tcfg, k=2, snrs_db=(10.0,), resume=True, only={1})
    assert len(trained) == 4 and not (shared / "fold0.json").exists() and (shared / "fold1.json").exists()
    whole = crossval_detector(recs, shared, detection_cfg(), replace(tcfg, device="cuda"), k=2, snrs_db=(10.0,),
                              resume=True, only={1})
    assert len(trained) == 4 and [f["fold"] for f in whole["folds"]] == [1]  # read back, fold 0 left out


def test_a_saved_fold_outlives_an_option_added_at_its_default():
    """A fold's stamp hashes the options a run sets, not every field: a TrainConfig that gains a new
    option (at a default that changes nothing) still reads the folds saved before; a changed value
    does not."""
    from dataclasses import field, make_dataclass

    from conftest import detection_cfg
    from deepdive.crossval import _fold_stamp
    from deepdive.train import TrainConfig

    grown = make_dataclass("TrainConfig", [("a_new_option", float, field(default=0.0))], bases=(TrainConfig,))
    stamp = lambda cfg: _fold_stamp(0, 5, 0, None, detection_cfg(), cfg, ["a", "b"], 10, [])  # noqa: E731
    before = stamp(TrainConfig(model="detector-cnn", epochs=8))
    assert stamp(grown(model="detector-cnn", epochs=8)) == before
    assert stamp(grown(model="detector-cnn", epochs=8, a_new_option=1.0)) != before
    assert stamp(TrainConfig(model="detector-cnn", epochs=9)) != before


def test_crossval_trains_each_fold_on_the_subset_asked_for(synth_kaggle, tmp_path):
    from conftest import detection_cfg
    from deepdive.crossval import crossval_detector
    from deepdive.datasets import load_kaggle
    from deepdive.datasets.kaggle import POSITIVE
    from deepdive.store import FeatureStore
    from deepdive.train import TrainConfig

    recs = load_kaggle(synth_kaggle)
    asked = {}

    def one_call_group(fold, training):
        first = sorted({r.group for r in training if r.label == POSITIVE})[0]
        asked[fold] = {r.key for r in training if r.label != POSITIVE or r.group == first}
        return [r for r in training if r.key in asked[fold]]

    r = crossval_detector(recs, tmp_path, detection_cfg(), TrainConfig(model="detector-cnn", epochs=1, patience=1), k=2,
                          snrs_db=(), keep_models=True, train_subset=one_call_group)
    assert sorted(r["clips"]) == sorted(x.key for x in recs)  # every clip still scored once
    for fold in (0, 1):
        store = FeatureStore(tmp_path / f"fold{fold}" / "store")
        trained = {row["key"] for row in store.rows if row["split"] == "train"}
        tested = {row["key"] for row in store.rows if row["split"] == "test"}
        assert trained == asked[fold] and tested and not trained & tested
        assert len({x.group for x in recs if x.key in trained and x.label == POSITIVE}) == 1


def test_an_ensemble_exports_the_mean_of_its_members(detector_store, tmp_path):
    import torch

    from deepdive.bundle import Bundle
    from deepdive.models import build
    from deepdive.store import FeatureStore
    from deepdive.train import TrainConfig, train

    out = train(detector_store, tmp_path / "e", TrainConfig(model="detector-cnn", epochs=1, ensemble=2), progress=False)
    b = Bundle.load(out)
    assert [m["seed"] for m in b.card["training"]["members"]] == [0, 1000]
    x = FeatureStore(detector_store).batch([0, 1, 2])
    state = torch.load(out / "model.pt", weights_only=True)
    probs = []
    for k in range(2):
        m = build("detector-cnn", 2, (129, 126))
        m.load_state_dict({key.split(".", 2)[2]: v for key, v in state.items() if key.startswith(f"members.{k}.")})
        probs.append(torch.softmax(m.eval()(torch.from_numpy(x)), 1).detach().numpy())
    np.testing.assert_allclose(b.predict(x), np.mean(probs, 0), atol=1e-5)


def test_prepare_kaggle_of_two_folders_from_the_cli(synth_kaggle, tmp_path):
    """`prepare kaggle A B` makes one store split within each folder; --source-passes and
    --mix-backgrounds reach the store; mistakes give one line naming the fix."""
    import shutil

    from deepdive.store import FeatureStore

    buoys = tmp_path / "buoys"
    shutil.copytree(synth_kaggle, buoys)
    (buoys / "sources.csv").unlink()
    (buoys / "LICENSE-CORNELL.txt").write_text("Copyright (c) 2011 by Cornell University")
    res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), str(buoys), "--out", str(tmp_path / "s"),
                              "--val-frac", "0", "--image", "32x32", "--source-passes", f"buoys=2,{synth_kaggle.name}=4",
                              "--mix-backgrounds", "0.5"])
    assert res.exit_code == 0, res.stderr
    assert "buoys: right whale" in res.stdout and f"{synth_kaggle.name}: noise" in res.stdout
    s = FeatureStore(tmp_path / "s")
    assert s.config["prepare"]["source_passes"] == {"buoys": 2, synth_kaggle.name: 4}
    assert s.config["prepare"]["mix_backgrounds"] == 0.5
    assert "Cornell University" in s.config["source"]["terms"] and "Watkins" in s.config["source"]["terms"]
    for bad, says in ((["--source-passes", "elsewhere=2"], "'elsewhere' is not one of the folders"),
                      (["--source-passes", "buoys=0"], "at least 1"),
                      (["--mix-backgrounds", "2"], "probability")):
        res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), str(buoys), "--out", str(tmp_path / "x"), *bad])
        assert res.exit_code == 1 and says in res.stderr and "Traceback" not in res.stderr
    res = runner.invoke(app, ["prepare", "kaggle", str(buoys), "--out", str(tmp_path / "y"), "--mix-backgrounds", "0.5"])
    assert res.exit_code == 1 and "two or more PATHs" in res.stderr


def test_prepare_kaggle_feature_options(synth_kaggle, tmp_path):
    from deepdive.store import FeatureStore

    res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), "--out", str(tmp_path / "s"), "--image", "64x48",
                              "--fmax", "500", "--n-fft", "128", "--hop-length", "16"])
    assert res.exit_code == 0, res.stderr
    s = FeatureStore(tmp_path / "s")
    f = s.config["prepare"]["features"]
    assert (f["kind"], f["image"], f["fmax"], f["n_fft"], f["hop_length"]) == ("stft-image", [64, 48], 500.0, 128, 16)
    assert s.features(0).shape == (64, 48)
    res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), "--out", str(tmp_path / "t"), "--image", "big"])
    assert res.exit_code == 1 and "64x64" in res.stderr
    res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), "--out", str(tmp_path / "u"), "--val-frac", "0",
                              "--image", "32x32"])
    assert res.exit_code == 0, res.stderr
    u = FeatureStore(tmp_path / "u")
    assert u.config["prepare"]["val_frac"] == 0 and not u.indices("val") and u.indices("test")
    res = runner.invoke(app, ["prepare", "kaggle", str(synth_kaggle), "--out", str(tmp_path / "v"), "--val-frac", "0.9"])
    assert res.exit_code == 1 and "--val-frac 0.9" in res.stderr and "Traceback" not in res.stderr


def test_crossval_trains_on_extra_negatives_outside_the_tapes_it_tests(synth_kaggle, tmp_path):
    """`extra_train` (e.g. other species' Watkins cuts): trained on, never tested, and a fold leaves out
    those of the tapes it tests."""
    from dataclasses import replace as rep

    from conftest import detection_cfg
    from deepdive.crossval import crossval_detector
    from deepdive.datasets import load_kaggle
    from deepdive.datasets.kaggle import POSITIVE
    from deepdive.store import FeatureStore
    from deepdive.train import TrainConfig

    recs = load_kaggle(synth_kaggle)
    negatives = [r for r in recs if r.label != POSITIVE]
    extra = [rep(r, label="noise", source="extra", start_s=0.0, end_s=2.0)
             for t in sorted({r.tape for r in negatives}) for r in [x for x in negatives if x.tape == t][:2]]
    cfg = rep(detection_cfg(), source_passes={"extra": 1})
    r = crossval_detector(recs, tmp_path, cfg, TrainConfig(model="detector-cnn", epochs=1, patience=1), k=2,
                          snrs_db=(), keep_models=True, extra_train=extra)
    assert sorted(r["clips"]) == sorted(x.key for x in recs)  # only the folder's clips are scored
    tape_of = {x.key: x.tape for x in recs + extra}
    for fold in (0, 1):
        store = FeatureStore(tmp_path / f"fold{fold}" / "store")
        tested = {row["key"] for row in store.rows if row["split"] == "test"}
        extras = {row["key"] for row in store.rows if row["split"] == "train" and row["key"].endswith("#0-2")}
        assert extras and not extras & tested
        assert extras == {x.key for x in extra if x.tape not in {tape_of[k] for k in tested}}
        assert r["folds"][fold]["extra_train"] == len(extras)
