"""Tests on the real recordings in ../shared/data (skipped where that folder is absent)."""

from collections import defaultdict

import pytest

from conftest import RIGHTWHALE, WATKINS

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def watkins():
    from deepdive.datasets import load_watkins

    return load_watkins(WATKINS)


def test_loader_counts(watkins):
    assert len(watkins) == 604
    by_label = defaultdict(list)
    for r in watkins:
        by_label[r.label].append(r)
    assert len(by_label) == 16
    encounters = {lab: len({r.group for r in rs}) for lab, rs in by_label.items()}
    # tapes or dates shared join cuts into encounters
    assert encounters["Sperm Whale"] == 4 and encounters["Killer Whale"] == 4
    assert encounters["Beluga, White Whale"] == 3 and encounters["Northern Right Whale"] == 3
    assert encounters["Melon Headed Whale"] == 1 and encounters["Atlantic Spotted Dolphin"] == 1
    assert all(r.sample_rate and r.duration_s for r in watkins)
    assert sum(not r.clean for r in watkins) == 604 - 488
    assert {r.family for r in by_label["Sperm Whale"]} == {"Physeteridae"}


def test_split_is_disjoint_by_encounter(watkins):
    from deepdive.prepare import split_by_encounter

    assign, report = split_by_encounter(watkins, 0.15, 0.2, seed=0)
    levels = {r["label"]: r["level"] for r in report}
    sides_enc, sides_tape = defaultdict(set), defaultdict(set)
    for r in watkins:
        sides_enc[r.group].add(assign[r.key])
        sides_tape[r.tape].add(assign[r.key])
    for r in watkins:
        if levels[r.label] == "encounter":
            assert len(sides_enc[r.group]) == 1, r.group
        if levels[r.label] in ("encounter", "tape"):
            assert len(sides_tape[r.tape]) == 1, r.tape
    # every species is tested; 9 of 16 on encounters never seen in training
    assert all(row["test_recordings"] > 0 and row["train_recordings"] > 0 for row in report)
    assert sum(v == "encounter" for v in levels.values()) == 9


def test_bundled_model_on_the_shared_test_split(watkins):
    """The bundled model's card figures reproduce on the test split it was never trained on."""
    from deepdive.bundle import resolve
    from deepdive.evaluate import evaluate_recordings
    from deepdive.prepare import split_by_encounter

    bundle = resolve(None, "species")
    prep = bundle.card["prepare"]
    assign, report = split_by_encounter(watkins, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    assert [r["test_units"] for r in report] == [r["test_units"] for r in bundle.card["split"]["report"]]
    test = [r for r in watkins if assign[r.key] == "test"]
    got = evaluate_recordings(bundle, test)["recording"]
    card = bundle.card["metrics"]["test"]["recording"]
    assert got["n"] == card["n"]
    # the store pads short cuts at random positions, classify centres them: figures agree closely
    assert got["accuracy"] == pytest.approx(card["accuracy"], abs=0.05)
    assert got["top3_accuracy"] == pytest.approx(card["top3_accuracy"], abs=0.05)
    assert got["top3_accuracy"] > 0.5  # well above the 3/16 of guessing


def test_classify_a_real_cut():
    from deepdive import classify

    ranking = classify(WATKINS / "Sperm_Whale" / "72009001.wav") if (WATKINS / "Sperm_Whale" / "72009001.wav").exists() else None
    if ranking is None:
        path = next((WATKINS / "Sperm_Whale").glob("*.wav"))
        ranking = classify(path)
    assert len(ranking) == 16 and abs(sum(r["probability"] for r in ranking) - 1) < 1e-5


# ---------------------------------------------------------------- right-whale detection


@pytest.fixture(scope="module")
def rightwhale():
    from deepdive.datasets import load_kaggle

    return load_kaggle(RIGHTWHALE)


def test_rightwhale_loader_and_tape_split(rightwhale):
    from deepdive.prepare import split_by_encounter

    assert len(rightwhale) == 224
    assert sum(r.label == "right whale" for r in rightwhale) == 56
    assert len({r.tape for r in rightwhale}) == 40 and all(r.group == f"tape:{r.tape}" for r in rightwhale)
    assign, report = split_by_encounter(rightwhale, 0.15, 0.2, seed=0)
    sides: dict[str, set] = defaultdict(set)
    for r in rightwhale:
        sides[r.tape].add(assign[r.key])
    assert all(len(v) == 1 for v in sides.values())  # no tape on both sides
    assert all(row["test_recordings"] > 0 and row["val_recordings"] > 0 for row in report)


def test_bundled_detector_on_the_shared_test_split(rightwhale):
    """The bundled detector's card figures reproduce on tapes it never heard."""
    from deepdive.bundle import resolve
    from deepdive.evaluate import evaluate_detection
    from deepdive.prepare import split_by_encounter

    bundle = resolve(None, "detection")
    prep = bundle.card["prepare"]
    assign, report = split_by_encounter(rightwhale, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    assert [r["test_units"] for r in report] == [r["test_units"] for r in bundle.card["split"]["report"]]
    test = [(r.key, int(r.label == "right whale")) for r in rightwhale if assign[r.key] == "test"]
    got = evaluate_detection(bundle, test, snrs_db=(10.0,))["conditions"]
    card = bundle.card["metrics"]["test"]
    assert got["clean"]["n"] == card["clean"]["n"]
    assert got["clean"]["roc_auc"] == pytest.approx(card["clean"]["roc_auc"], abs=0.01)
    assert got["10 dB"]["roc_auc"] == pytest.approx(card["10 dB"]["roc_auc"], abs=0.03)
    assert got["clean"]["roc_auc"] > 0.75  # chance is 0.5
    # at the card's threshold (the recall-0.9 rule on the training tapes' out-of-fold scores), the same
    # calls are found, one either way at most
    assert abs(got["clean"]["confusion"]["tp"] - round(card["clean"]["recall"] * card["clean"]["positives"])) <= 1
    points = {o["rule"]: o for o in bundle.card["training_tapes_crossval"]["operating_points"]}
    assert bundle.card["threshold_rule"].startswith("recall 0.9 ")
    assert bundle.threshold == points["recall 0.9"]["threshold"] and points["recall 0.9"]["recall"] >= 0.9


def test_detect_a_real_clip(rightwhale):
    from deepdive import detect

    p = detect(rightwhale[0].path)
    assert 0.0 <= p <= 1.0
