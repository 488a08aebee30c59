"""Ordinal measures against ordpy's values for the same inputs, and the series computed from audio."""

import math

import numpy as np
import ordpy
import pytest

from deepdive.features import OrdinalConfig
from deepdive.features import ordinal as o


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    t = np.arange(600)
    return {
        "noise": rng.standard_normal(600),
        "sine": np.sin(t * 0.07) + 0.05 * rng.standard_normal(600),
        "walk": np.cumsum(rng.standard_normal(600)),
        "logistic": _logistic(600),
        "ties": np.round(rng.standard_normal(600), 1),
    }


def _logistic(n: int) -> np.ndarray:
    x = np.empty(n)
    x[0] = 0.4
    for i in range(1, n):
        x[i] = 4 * x[i - 1] * (1 - x[i - 1])
    return x


@pytest.mark.parametrize("dx,tau", [(3, 1), (4, 1), (5, 1), (4, 2), (6, 1)])
def test_patterns_and_distribution_match_ordpy(series, dx, tau):
    for name, x in series.items():
        seq = o.ordinal_patterns(x, dx, tau)
        ref = ordpy.ordinal_sequence(x, dx=dx, taux=tau)
        assert len(seq) == len(ref)
        # same patterns in the same places: a one-to-one map between ordpy's permutations and our codes
        pairs = {(tuple(p), c) for p, c in zip(ref.tolist(), seq.tolist(), strict=True)}
        assert len(pairs) == len({tuple(p) for p in ref.tolist()}) == len(set(seq.tolist())), name
        p = o.ordinal_distribution(x, dx, tau)
        assert p.shape == (math.factorial(dx),) and p.sum() == pytest.approx(1.0)
        _, ref_p = ordpy.ordinal_distribution(x, dx=dx, taux=tau, return_missing=True)
        np.testing.assert_allclose(np.sort(p), np.sort(ref_p), atol=1e-12)


@pytest.mark.parametrize("dx,tau,ties", [(3, 1, None), (4, 1, None), (5, 2, None), (4, 1, 0)])
def test_entropy_and_complexity_match_ordpy(series, dx, tau, ties):
    for name, x in series.items():
        p = o.ordinal_distribution(x, dx, tau, tie_precision=ties)
        h, c = o.statistical_complexity(p)
        rh, rc = ordpy.complexity_entropy(x, dx=dx, taux=tau, tie_precision=ties)
        assert h[0] == pytest.approx(rh, abs=1e-10), name
        assert c[0] == pytest.approx(rc, abs=1e-10), name
        assert o.permutation_entropy(p)[0] == pytest.approx(ordpy.permutation_entropy(x, dx=dx, taux=tau, tie_precision=ties))


@pytest.mark.parametrize("q", [0.1, 0.5, 1.0, 1.5, 2.0, 5.0])
def test_tsallis_matches_ordpy(series, q):
    for dx in (3, 4):
        for name, x in series.items():
            p = o.ordinal_distribution(x, dx)
            h, c = o.tsallis_complexity(p, q)
            rh, rc = ordpy.tsallis_complexity_entropy(x, q=q, dx=dx)
            assert h[0] == pytest.approx(rh, abs=1e-10), (name, q)
            assert c[0] == pytest.approx(rc, abs=1e-10), (name, q)
            assert o.tsallis_entropy(p, q)[0] == pytest.approx(ordpy.tsallis_entropy(x, q=q, dx=dx), abs=1e-10)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 1.0, 2.0, 4.0])
def test_renyi_matches_ordpy(series, alpha):
    for dx in (3, 4):
        for name, x in series.items():
            p = o.ordinal_distribution(x, dx)
            h, c = o.renyi_complexity(p, alpha)
            rh, rc = ordpy.renyi_complexity_entropy(x, alpha=alpha, dx=dx)
            assert h[0] == pytest.approx(rh, abs=1e-10), (name, alpha)
            assert c[0] == pytest.approx(rc, abs=1e-10), (name, alpha)
            assert o.renyi_entropy(p, alpha)[0] == pytest.approx(ordpy.renyi_entropy(x, alpha=alpha, dx=dx), abs=1e-10)


def test_curves_match_ordpy_over_a_range_of_q(series):
    qs = np.linspace(0.1, 5, 12)
    p = o.ordinal_distribution(series["logistic"], 4)
    h, c = o.complexity_entropy_curve(p, qs, "tsallis")
    ref = ordpy.tsallis_complexity_entropy(series["logistic"], q=qs, dx=4)
    np.testing.assert_allclose(np.stack([h[0], c[0]], 1), ref, atol=1e-10)
    h, c = o.complexity_entropy_curve(p, qs, "renyi")
    ref = ordpy.renyi_complexity_entropy(series["logistic"], alpha=qs, dx=4)
    np.testing.assert_allclose(np.stack([h[0], c[0]], 1), ref, atol=1e-10)


def test_arbitrary_distributions_match_ordpy_probs():
    """A spectrum taken as a distribution: ordpy's probs=True with 4! = 24 states."""
    rng = np.random.default_rng(2)
    for _ in range(5):
        p = rng.random(24) ** 3
        p[rng.random(24) < 0.2] = 0
        p /= p.sum()
        h, c = o.statistical_complexity(p)
        rh, rc = ordpy.complexity_entropy(p, dx=4, probs=True)
        assert (h[0], c[0]) == pytest.approx((rh, rc), abs=1e-10)
        for q in (0.5, 2.0):
            assert np.allclose(np.ravel(o.tsallis_complexity(p, q)), ordpy.tsallis_complexity_entropy(p, q=q, dx=4, probs=True))
            assert np.allclose(np.ravel(o.renyi_complexity(p, q)), ordpy.renyi_complexity_entropy(p, alpha=q, dx=4, probs=True))


def test_known_values():
    ramp = np.arange(100.0)
    p = o.ordinal_distribution(ramp, 4)
    assert o.statistical_complexity(p)[0][0] == 0.0 and o.statistical_complexity(p)[1][0] == pytest.approx(0.0)
    uniform = np.full((1, 24), 1 / 24)
    h, c = o.statistical_complexity(uniform)
    assert h[0] == pytest.approx(1.0) and c[0] == pytest.approx(0.0, abs=1e-12)
    # ties keep the order of appearance (stable), as ordpy does: a constant series is one pattern
    assert set(o.ordinal_patterns(np.zeros(10), 3).tolist()) == {0}


def test_vectorised_rows_equal_one_by_one(series):
    xs = np.stack([series["noise"], series["sine"], series["walk"]])
    p = o.ordinal_distribution(xs, 4)
    assert p.shape == (3, 24)
    m, names = o.measures(p, qs=(0.5, 2), alphas=(2,))
    assert m.shape == (3, 8) and names[:2] == ["H", "C"]
    for i in range(3):
        one, _ = o.measures(o.ordinal_distribution(xs[i], 4), qs=(0.5, 2), alphas=(2,))
        np.testing.assert_allclose(m[i], one[0])


def test_series_from_audio():
    rng = np.random.default_rng(1)
    cfg = OrdinalConfig()
    t = np.arange(4000) / 2000
    sweep = np.sin(2 * np.pi * (60 * t + 40 * t**2)).astype(np.float32)
    noise = rng.standard_normal(4000).astype(np.float32)
    a, b = cfg.compute(sweep, 2000), cfg.compute(noise, 2000)
    assert a.shape == b.shape == cfg.shape == (30, 126)
    assert np.all((a >= -1e-9) & (a <= 1 + 1e-9))
    ch = cfg.channel_names
    h_spec = ch.index("spectrum:H")
    # a pure tone's spectrum is concentrated, white noise's is flat: lower spectral entropy for the sweep
    assert a[h_spec].mean() < b[h_spec].mean() - 0.2
    h_wave = ch.index("waveform:H")
    assert a[h_wave].mean() < b[h_wave].mean()
    # the spectrum-ordinal channel is Bandt-Pompe over each frame's spectrum, checked against ordpy
    from deepdive.features.spectrogram import stft_power

    frame = stft_power(noise, 256, 32)[:, 10]
    assert b[ch.index("spectrum-ordinal:H"), 10] == pytest.approx(ordpy.permutation_entropy(frame, dx=4), abs=1e-6)
    with pytest.raises(ValueError):
        cfg.compute(noise, 4000)
    assert OrdinalConfig.from_dict(cfg.to_dict()) == cfg
