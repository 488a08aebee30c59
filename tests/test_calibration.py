"""Calibration: the expected calibration error, and a temperature fitted on held-out windows."""

import json

import numpy as np
import pytest

from deepdive.bundle import softmax
from deepdive.calibration import fit_temperature
from deepdive.evaluate import expected_calibration_error


def _sample(rng, n=4000, k=5, true_t=2.0):
    z = rng.normal(0, 3, (n, k))
    p = softmax(z / true_t)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


def test_temperature_recovers_the_one_the_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    z, y = _sample(rng, true_t=2.0)
    t = fit_temperature(z, y)
    assert t == pytest.approx(2.0, rel=0.1)
    assert expected_calibration_error(y, softmax(z / t)) < 0.03 < expected_calibration_error(y, softmax(z))


def test_ece_is_zero_when_confidence_matches_accuracy_and_counts_overconfidence():
    y = np.array([0, 0, 0, 1])
    calibrated = np.array([[0.75, 0.25]] * 4)  # says 75%, right 3 of 4
    assert expected_calibration_error(y, calibrated) == pytest.approx(0.0)
    sure = np.array([[0.99, 0.01]] * 4)
    assert expected_calibration_error(y, sure) == pytest.approx(0.24)


def test_a_trained_species_model_carries_its_temperature(synth_model):
    from deepdive.bundle import Bundle

    card = json.loads((synth_model / "card.json").read_text())
    cal = card["calibration"]
    assert 0.05 <= cal["temperature"] <= 20 and cal["fitted_on"]["validation_windows"] >= 10
    b = Bundle.load(synth_model)
    x = np.random.default_rng(1).normal(-40, 10, (3, *b.features.shape)).astype(np.float32)
    assert b.temperature == cal["temperature"]
    assert np.allclose(b.predict(x), softmax(b.logits(x) / cal["temperature"]), atol=1e-6)


def test_an_out_of_fold_temperature_undoes_overconfidence(monkeypatch):
    """benchmarks/crossval_birdnet.py --product fits the BirdNET head's temperature on its out-of-fold
    windows: logits twice as sharp as the truth they were drawn from get a temperature near 2, and each fold
    scaled by the other folds' temperature is better calibrated than at 1."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from crossval_birdnet import _oof_temperature

    rng = np.random.default_rng(0)
    folds = []
    for _ in range(5):
        z = rng.normal(0, 1.5, size=(400, 6))
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        y = np.array([rng.choice(6, p=row) for row in p])  # labels drawn from softmax(z): calibrated at 1
        folds.append((2.0 * z, np.arange(400), y))  # one window per recording, twice as sharp
    out = _oof_temperature(folds)
    assert 1.7 < out["temperature_all_folds"] < 2.3
    assert all(1.6 < t < 2.4 for t in out["temperatures_other_folds"])
    assert out["recording_ece_other_folds_t"] < out["recording_ece_t1"] / 2
