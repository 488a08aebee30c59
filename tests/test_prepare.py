import json

import numpy as np
import pytest
import soundfile as sf

from deepdive.datasets import Recording, load_watkins
from deepdive.features.spectrogram import MelConfig
from deepdive.prepare import (
    PrepareConfig,
    balance_plan,
    iter_windows,
    prepare,
    split_by_encounter,
)
from deepdive.store import FeatureStore
from deepdive.windows import slice_windows


def _rec(i, label, group, tape="", dur=10.0, cut=""):
    return Recording(path=f"/x/{label}{i}.wav", label=label, group=group, tape=tape, cut_id=cut or f"{i:05d}", duration_s=dur)


def test_split_keeps_encounters_together_and_is_seeded():
    recs = [_rec(i, lab, f"{lab}-enc{i % 5}") for lab in ("a", "b", "c") for i in range(40)]
    a1, rep = split_by_encounter(recs, 0.15, 0.2, seed=3)
    a2, _ = split_by_encounter(recs, 0.15, 0.2, seed=3)
    assert a1 == a2
    side: dict[str, set] = {}
    for r in recs:
        side.setdefault(r.group, set()).add(a1[r.key])
    assert all(len(s) == 1 for s in side.values())
    for row in rep:  # every label is in all three splits (5 encounters each)
        assert row["level"] == "encounter" and row["train_recordings"] and row["val_recordings"] and row["test_recordings"]


def test_split_without_validation_keeps_the_same_test_encounters():
    """`--val-frac 0` (the bundled detector's recipe): the validation encounters join training, and the
    test encounters are the ones the default split holds out."""
    recs = [_rec(i, lab, f"{lab}-enc{i % 5}") for lab in ("a", "b", "c") for i in range(40)]
    mixed = [_rec(i, lab, f"tape{i // 4}", dur=2.0) for i, lab in enumerate(["call", "noise"] * 40)]
    for rs in (recs, mixed):
        with_val, _ = split_by_encounter(rs, 0.15, 0.2, seed=3)
        without, report = split_by_encounter(rs, 0.0, 0.2, seed=3)
        assert "val" not in without.values() and "val" in with_val.values()
        assert {k for k, v in without.items() if v == "test"} == {k for k, v in with_val.items() if v == "test"}
        assert all(row["val_recordings"] == 0 and row["train_recordings"] > 0 for row in report)


def test_split_falls_back_for_single_encounter_labels():
    recs = [_rec(i, "one", "enc", tape=f"T{i % 2}") for i in range(10)]  # one encounter, two tapes
    recs += [_rec(i, "solo", "enc2", tape="T9") for i in range(10)]  # one encounter, one tape
    assign, rep = split_by_encounter(recs, 0.15, 0.2, seed=0)
    levels = {r["label"]: r["level"] for r in rep}
    assert levels == {"one": "tape", "solo": "block"}
    tapes = {}
    for r in recs[:10]:
        tapes.setdefault(r.tape, set()).add(assign[r.key])
    assert all(len(s) == 1 for s in tapes.values())
    # blocks are contiguous runs of cuts: the test cuts form one consecutive stretch
    solo_test = sorted(int(r.cut_id) for r in recs[10:] if assign[r.key] == "test")
    assert solo_test and solo_test == list(range(solo_test[0], solo_test[-1] + 1))
    strict, rep2 = split_by_encounter(recs, fallback=False)
    assert {strict[r.key] for r in recs[:10]} == {"train"}


def test_slicing_rules():
    n, min_last = 50, 30
    pad = lambda seg, n: (np.pad(seg, (0, n - len(seg))), 0)  # noqa: E731
    # 2 full windows + a 35-sample remainder (>= min_last) kept
    w = list(slice_windows([np.ones(70), np.ones(65)], n, min_last, pad))
    assert [s for s, _ in w] == [0, 50, 100] and all(len(x) == n for _, x in w)
    # remainder of 20 (< min_last) dropped
    assert len(list(slice_windows([np.ones(120)], n, min_last, pad))) == 2
    # shorter than a window: padded, kept
    (only,) = slice_windows([np.ones(10)], n, min_last, pad)
    assert only[1][:10].sum() == 10 and only[1][10:].sum() == 0


def test_iter_windows_random_padding(tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, np.ones(16000, np.float32) * 0.5, 16000)  # 1 s at 16 kHz
    cfg = PrepareConfig(features=MelConfig(sr=16000, n_fft=512, hop_length=256, n_mels=32, fmax=8000, window_s=3.0))
    rec = Recording(str(p), "a", "g")
    starts = set()
    for seed in range(5):
        ((start, y),) = iter_windows(rec, cfg, 0.0, np.random.default_rng(seed))
        assert len(y) == 48000 and np.count_nonzero(y) == pytest.approx(16000, abs=20)
        starts.add(start)
    assert len(starts) > 1  # the call lands at different positions


def test_stretch_of_a_recording(tmp_path):
    p = tmp_path / "long.wav"
    sr = 8000
    sf.write(p, np.arange(sr * 10, dtype=np.float32) / (sr * 10), sr)
    cfg = PrepareConfig(features=MelConfig(sr=sr, n_fft=256, hop_length=128, n_mels=16, fmax=4000, window_s=2.0))
    rec = Recording(str(p), "a", "g", start_s=3.0, end_s=7.5)
    w = list(iter_windows(rec, cfg, 0.0, np.random.default_rng(0)))
    assert [round(s, 3) for s, _ in w] == [3.0, 5.0]  # 0.5 s remainder dropped (min_last 3 s > 0.5)
    assert w[0][1][0] == pytest.approx(0.3, abs=1e-3)


def test_balance_plan():
    cfg = PrepareConfig()
    plan = balance_plan({"big": 1000.0, "mid": 100.0, "small": 10.0, "tiny": 5.0}, cfg)
    assert plan == {"big": 1, "mid": 1, "small": 3, "tiny": 3}
    assert set(balance_plan({"a": 1.0, "b": 100.0}, PrepareConfig(balance=False)).values()) == {1}


def test_prepare_store(synth_corpus, small_cfg, tmp_path):
    recs = load_watkins(synth_corpus)
    cfg = PrepareConfig(**{**small_cfg.__dict__})
    config = prepare(recs, tmp_path / "store", cfg)
    s = FeatureStore(tmp_path / "store")
    assert s.features(0).shape == cfg.features.shape
    by_split = {sp: s.indices(sp) for sp in ("train", "val", "test")}
    assert all(by_split.values())
    # encounters never straddle splits
    groups = {}
    for r in s.rows:
        groups.setdefault(r["group"], set()).add(r["split"])
    assert all(len(v) == 1 for v in groups.values())
    # augmentation only in training
    assert not any(s.rows[i]["augment"] for i in by_split["val"] + by_split["test"])
    under = [lab for lab, k in config["slices_per_label"].items() if k == 3]
    assert under, "some label falls below the median"
    aug = [s.rows[i] for i in by_split["train"] if s.rows[i]["augment"]]
    assert aug and {r["label"] for r in aug} <= set(under)
    assert {"snr_db", "gain_db"} <= set(json.loads(aug[0]["augment"]))
    assert (tmp_path / "store" / "class_durations.png").is_file()
    after, before = config["class_durations_s"]["after"], config["class_durations_s"]["before"]
    assert all(after[lab] > before[lab] for lab in under)


def test_prepare_resumes_and_reports_bad_files(synth_corpus, small_cfg, tmp_path):
    recs = load_watkins(synth_corpus)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    from dataclasses import replace

    recs = recs + [replace(recs[0], path=str(bad), cut_id="bad", duration_s=None)]
    out = tmp_path / "store"
    errors = []
    prepare(recs[:30], out, small_cfg, on_error=lambda k, m: errors.append(k))
    first = len(FeatureStore(out))
    # an interrupted run: remove the newest shard, as if killed before it was written
    shards = sorted((out / "shards").glob("*.npy"))
    shards[-1].unlink()
    (shards[-1].with_suffix(".csv")).unlink()
    assert len(FeatureStore(out)) < first
    prepare(recs[:30], out, small_cfg)
    assert len(FeatureStore(out)) == first
    full = prepare(recs, tmp_path / "store2", small_cfg, on_error=lambda k, m: errors.append(k))
    assert str(bad) in errors and full["errors"][0]["key"] == str(bad)


def test_groups_holding_several_labels_stay_on_one_side():
    recs = [_rec(i, lab, f"tape{i // 4}", dur=2.0) for i, lab in enumerate(["call", "noise"] * 40)]
    assign, report = split_by_encounter(recs, 0.15, 0.2, seed=3)
    sides: dict[str, set] = {}
    for r in recs:
        sides.setdefault(r.group, set()).add(assign[r.key])
    assert all(len(v) == 1 for v in sides.values())
    for row in report:
        assert row["test_recordings"] > 0 and row["train_recordings"] > 0


def test_group_folds_partition_by_group():
    from deepdive.prepare import group_folds

    recs = [_rec(i, "call" if i % 3 == 0 else "noise", f"g{i // 5}") for i in range(100)]
    folds = group_folds(recs, 4, seed=1)
    keys = [k for f in folds for k in f]
    assert sorted(keys) == sorted(r.key for r in recs)
    fold_of = {k: i for i, f in enumerate(folds) for k in f}
    for g in {r.group for r in recs}:
        assert len({fold_of[r.key] for r in recs if r.group == g}) == 1
    assert all(any(fold_of[r.key] == i and r.label == "call" for r in recs) for i in range(4))


def test_mirror_padding_and_detection_augmentation():
    from deepdive.windows import mirror_pad

    assert mirror_pad(np.arange(3.0), 10, 4).tolist() == [2, 2, 1, 0, 0, 1, 2, 2, 1, 0]
    assert mirror_pad(np.arange(5.0), 5, 0).tolist() == [0, 1, 2, 3, 4]
    cfg = PrepareConfig(augment_all=True, extra_slices=3)
    assert balance_plan({"noise": 300.0, "right whale": 70.0}, cfg) == {"noise": 3, "right whale": 3}
    with pytest.raises(Exception, match="shift"):
        prepare([], "/tmp/x-never", PrepareConfig(shift="sideways"))


def test_species_folds_test_every_recording_once_on_unseen_units():
    from deepdive.prepare import species_folds

    recs = [_rec(i, "many", f"many-enc{i % 6}") for i in range(30)]  # six encounters
    recs += [_rec(i, "two", f"two-enc{i % 2}") for i in range(10)]  # two encounters
    recs += [_rec(i, "one", "one-enc", tape=f"T{i % 3}") for i in range(9)]  # one encounter, three tapes
    recs += [_rec(i, "solo", "solo-enc", tape="T9") for i in range(10)]  # one encounter, one tape
    folds, levels = species_folds(recs, k=5, seed=2)
    assert levels == {"many": "encounter", "two": "encounter", "one": "tape", "solo": "block"}
    assert folds == species_folds(recs, k=5, seed=2)[0]  # seeded
    tested = [key for a in folds for key, split in a.items() if split == "test"]
    assert sorted(tested) == sorted(r.key for r in recs)  # every recording tested exactly once
    unit = {r.key: (r.group if levels[r.label] == "encounter" else r.tape if levels[r.label] == "tape" else None)
            for r in recs}
    for a in folds:
        assert set(a) == {r.key for r in recs}
        for label in levels:
            mine = [r for r in recs if r.label == label]
            if any(a[r.key] == "test" for r in mine):
                assert any(a[r.key] == "train" for r in mine)  # a tested label always has training data
        test_units = {unit[k] for k, s in a.items() if s == "test" and unit[k]}
        other_units = {unit[k] for k, s in a.items() if s != "test" and unit[k]}
        assert not test_units & other_units  # no encounter (or tape) on both sides
    # blocks of consecutive cuts for the single-tape label (5 blocks, one per fold): each test set is
    # one contiguous run
    for a in folds:
        cuts = sorted(int(r.cut_id) for r in recs if r.label == "solo" and a[r.key] == "test")
        assert cuts and cuts == list(range(cuts[0], cuts[-1] + 1))
    # labels with enough units get a validation set from another fold
    assert all(any(a[r.key] == "val" for r in recs if r.label == "many") for a in folds)


def test_crossval_species_scores_every_recording_out_of_fold(synth_corpus, small_cfg, tmp_path):
    from deepdive.crossval import crossval_species
    from deepdive.train import TrainConfig

    recs = load_watkins(synth_corpus)
    cv = crossval_species(recs, tmp_path / "cv", small_cfg, TrainConfig(model="deepdive-resnet-fast", epochs=3, patience=3),
                          k=3, seed=0)
    assert cv["recording"]["n"] == len(recs) and len(cv["folds"]) == 3
    assert sum(f["recordings"] for f in cv["folds"]) == len(recs)
    assert 0.0 <= cv["recording"]["accuracy"] <= cv["recording"]["top3_accuracy"] <= 1.0
    assert set(cv["encounter_disjoint_labels"]) == {lab for lab, lev in cv["levels"].items() if lev == "encounter"}
    assert not any((tmp_path / "cv").glob("fold*/model"))  # models removed unless kept
    probs = cv["recording_probabilities"]
    assert set(probs) == {r.key for r in recs} and all(len(p) == len(cv["labels"]) for p in probs.values())
    assert np.allclose([sum(p) for p in probs.values()], 1.0, atol=1e-4)


def test_leave_one_recording_system_out(synth_corpus, small_cfg, tmp_path):
    """gear_folds: each system's recordings of species heard elsewhere are tested by a model trained on
    the other systems (encounters shared with a test recording left out, a species heard only with the
    held-out system left out of its fold); crossval_species pools them in one label order."""
    from deepdive.crossval import crossval_species, gear_folds
    from deepdive.datasets import load_watkins
    from deepdive.train import TrainConfig

    recs = load_watkins(synth_corpus)
    groups = sorted({r.group for r in recs})
    # three systems by encounter; "Synthetic pulse" recorded with system A only
    system = {g: "ABC"[i % 3] for i, g in enumerate(groups)}

    def system_of(r):
        return "A" if r.label == "Synthetic pulse" else system[r.group]

    systems, assignments, levels = gear_folds(recs, system_of, min_test=1)
    assert systems == sorted(systems) and len(systems) >= 2
    for s, a in zip(systems, assignments, strict=True):
        test = {k for k, v in a.items() if v == "test"}
        by_key = {r.key: r for r in recs}
        assert test and all(system_of(by_key[k]) == s for k in test)
        assert all(system_of(by_key[k]) != s for k, v in a.items() if v != "test")
        assert not {by_key[k].group for k in test} & {by_key[k].group for k, v in a.items() if v != "test"}
        if s == "A":
            assert not any(by_key[k].label == "Synthetic pulse" for k in a)  # heard nowhere else
    cv = crossval_species(recs, tmp_path / "cv", small_cfg, TrainConfig(model="deepdive-resnet-fast", epochs=2, patience=2),
                          folds=(assignments, levels), novelty=True, resume=True)
    tested = {k for a in assignments for k, v in a.items() if v == "test"}
    assert set(cv["recording_probabilities"]) == tested
    # each tested recording has its out-of-fold novelty, from its own fold's model and fit, kept on resuming
    with_val = [{k for k, v in a.items() if v == "test"} for a in assignments if "val" in a.values()]
    assert with_val and set(cv["novelty"]) == set().union(*with_val)
    assert all(0.0 <= v <= 1.0 for v in cv["novelty"].values())
    # each fold's "no sound event" gate is kept with its figures (a fold's gate moves its known cuts' novelty)
    from deepdive.novelty import GATE_CEILING_DB

    gates = [f["gate_db"] for f in cv["folds"] if "gate_db" in f]
    assert len(gates) == len(with_val) and all(g <= GATE_CEILING_DB + 1e-3 for g in gates)
    again = crossval_species(recs, tmp_path / "cv", small_cfg, TrainConfig(model="deepdive-resnet-fast", epochs=2, patience=2),
                             folds=(assignments, levels), novelty=True, resume=True)
    assert again["novelty"] == cv["novelty"]
    assert cv["labels"] == sorted({r.label for r in recs})
    assert all(len(p) == len(cv["labels"]) for p in cv["recording_probabilities"].values())


def test_novelty_threshold_refits_the_kept_fold_models(synth_corpus, small_cfg, tmp_path, monkeypatch):
    """benchmarks/novelty_threshold.py: each kept fold model's novelty fitted again scores its test fold
    as the cross-validation did (same networks, same fit), and the threshold keeping 95% known is
    chosen from the pooled novelties."""
    import sys

    from conftest import ROOT
    from deepdive.crossval import crossval_species
    from deepdive.novelty import threshold_for
    from deepdive.train import TrainConfig

    recs = load_watkins(synth_corpus)
    cv = crossval_species(recs, tmp_path / "cv", small_cfg, TrainConfig(model="deepdive-resnet-fast", epochs=2, patience=2),
                          k=3, novelty=True, keep_models=True)
    assert cv["novelty"] and any((tmp_path / "cv").glob("fold*/model/card.json"))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import novelty_threshold

    monkeypatch.setattr(sys, "argv", ["novelty_threshold.py", str(tmp_path / "cv"), "--out", str(tmp_path / "t.json")])
    assert novelty_threshold.main() == 0
    out = json.loads((tmp_path / "t.json").read_text())
    assert out["novelty"].keys() == cv["novelty"].keys()
    assert all(abs(out["novelty"][k] - cv["novelty"][k]) < 1e-6 for k in cv["novelty"])
    assert out["threshold_95"] == pytest.approx(threshold_for(list(cv["novelty"].values()), 0.95))
    assert set(out["label"].values()) <= {r.label for r in recs}


def test_a_stopped_species_crossval_goes_on_from_its_finished_folds(synth_corpus, small_cfg, tmp_path, monkeypatch):
    from deepdive import train as train_mod
    from deepdive.crossval import crossval_species
    from deepdive.datasets import load_watkins
    from deepdive.train import TrainConfig

    recs = load_watkins(synth_corpus)
    tcfg = TrainConfig(model="deepdive-resnet-fast", epochs=1, patience=1)
    first = crossval_species(recs, tmp_path / "cv", small_cfg, tcfg, k=2, resume=True)
    calls = []
    real = train_mod.train
    monkeypatch.setattr(train_mod, "train", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    (tmp_path / "cv" / "fold1.json").unlink()
    again = crossval_species(recs, tmp_path / "cv", small_cfg, tcfg, k=2, resume=True)
    assert len(calls) == 1 and again["folds"][0] == first["folds"][0]
    assert set(again["recording_probabilities"]) == set(first["recording_probabilities"])
    # two processes can share the folds: each trains its own, a last run reads both
    shared = tmp_path / "shared"
    crossval_species(recs, shared, small_cfg, tcfg, k=2, resume=True, only={1})
    assert len(calls) == 2 and not (shared / "fold0.json").exists() and (shared / "fold1.json").exists()
    crossval_species(recs, shared, small_cfg, tcfg, k=2, resume=True, only={0})
    whole = crossval_species(recs, shared, small_cfg, tcfg, k=2, resume=True)
    assert len(calls) == 3 and set(whole["recording_probabilities"]) == set(first["recording_probabilities"])
    fold0 = [k for k, v in first["recording_probabilities"].items() if k in again["recording_probabilities"]]
    assert all(np.allclose(first["recording_probabilities"][k], again["recording_probabilities"][k], atol=1e-5)
               for k in fold0 if first["folds"][0]["recordings"])


def test_species_crossval_trains_every_fold_on_the_extra_calls_and_tests_none(synth_corpus, synth_kaggle, small_cfg,
                                                                               tmp_path):
    """`crossval_species(extra_train=)`: another source's up-calls (`load_calls`) join every fold's training
    and no fold's test or validation; each source is balanced apart; a run with them is stamped apart."""
    from deepdive.crossval import crossval_species
    from deepdive.datasets import as_sources, load_calls
    from deepdive.store import FeatureStore
    from deepdive.train import TrainConfig

    recs = load_watkins(synth_corpus)
    calls = as_sources([(str(synth_kaggle), load_calls(synth_kaggle, "Synthetic upcall", max_clips=6))])
    tcfg = TrainConfig(model="deepdive-resnet-fast", epochs=1, patience=1)
    cv = crossval_species(recs, tmp_path / "cv", small_cfg, tcfg, k=3, keep_models=True, extra_train=calls)
    assert set(cv["recording_probabilities"]) == {r.key for r in recs}  # the calls are never scored
    for i in range(3):
        store = FeatureStore(tmp_path / "cv" / f"fold{i}" / "store")
        split_of = {}
        for row in store.rows:
            split_of.setdefault(row["key"], set()).add(row["split"])
        assert all(split_of[r.key] == {"train"} for r in calls)
        assert f"{synth_kaggle.name}: Synthetic upcall" in store.config["slices_per_label"]
        assert "Synthetic upcall" in store.config["slices_per_label"]  # the Watkins cuts of it, balanced apart
    first = json.loads((tmp_path / "cv" / "fold0.json").read_text())["stamp"]
    crossval_species(recs, tmp_path / "plain", small_cfg, tcfg, k=3, only={0})
    assert json.loads((tmp_path / "plain" / "fold0.json").read_text())["stamp"] != first


def test_prepare_in_worker_processes_writes_the_same_store(synth_corpus, small_cfg, tmp_path):
    recs = load_watkins(synth_corpus)[:12]
    prepare(recs, tmp_path / "one", small_cfg)
    prepare(recs, tmp_path / "two", small_cfg, workers=2)
    a, b = FeatureStore(tmp_path / "one"), FeatureStore(tmp_path / "two")

    def rows(store):  # each run's `attempt` stamp aside
        return [{k: v for k, v in r.items() if k != "attempt"} for r in store.rows]

    assert rows(a) == rows(b) and len(a) > 12
    idx = list(range(len(a)))
    assert np.array_equal(a.batch(idx), b.batch(idx))


def test_the_buoy_learning_curve_hears_whole_groups_nested_by_fraction(monkeypatch):
    """benchmarks/learning_curves.py --task buoys: a fraction of the training clips, drawn by group (identical
    clips stay together), at least one group, and a draw's smaller fraction a part of its larger one."""
    from conftest import ROOT
    from deepdive.datasets.base import Recording

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from learning_curves import heard_subset

    training = [Recording(path=f"c{i}.aiff", label=str(i % 2), group=f"g{i // 2}") for i in range(200)]  # 100 groups of 2
    for draw in (0, 1):
        got = {f: heard_subset(training, f, draw) for f in (0.001, 0.1, 0.5, 1.0)}
        assert [len({r.group for r in got[f]}) for f in got] == [1, 10, 50, 100]
        assert all(sum(r.group == g for r in got[0.1]) == 2 for g in {r.group for r in got[0.1]})
        assert {r.path for r in got[0.1]} <= {r.path for r in got[0.5]} and got[1.0] == training
    assert {r.group for r in heard_subset(training, 0.1, 0)} != {r.group for r in heard_subset(training, 0.1, 1)}
