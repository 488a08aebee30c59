import numpy as np
import pytest

from deepdive.evaluate import (
    best_f1_threshold,
    detection_metrics,
    operating_points,
    pr_curve,
    recall_threshold,
    roc_auc,
    roc_curve,
)


def _pairwise_auc(y, p):
    pos, neg = p[y == 1], p[y == 0]
    return np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg])


def test_roc_auc_is_the_pairwise_probability():
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 2, 80)
        p = np.round(rng.random(80) * 0.6 + 0.4 * y, 1)  # many ties
        assert roc_auc(y, p) == pytest.approx(_pairwise_auc(y, p))
        fpr, tpr, _ = roc_curve(y, p)
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, p))
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert np.isnan(roc_auc(np.ones(4), np.random.rand(4)))


def test_precision_recall_and_threshold():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.05, 0.0])
    prec, rec, ap = pr_curve(y, p)
    assert rec[-1] == 1.0 and prec[1] == 1.0
    assert ap == pytest.approx((1 + 1 + 3 / 4) / 3)  # precision where each positive is reached
    t = best_f1_threshold(y, p)
    assert t == pytest.approx(0.25)  # detecting down to 0.3: F1 6/7, the best here; midway to the next score
    m = detection_metrics(y, p, t)
    assert m["confusion"] == {"tp": 3, "fp": 1, "fn": 0, "tn": 4}
    assert m["precision"] == 0.75 and m["recall"] == 1.0 and m["f1"] == pytest.approx(6 / 7, abs=1e-4)
    assert detection_metrics(y, p, 0.75)["confusion"] == {"tp": 2, "fp": 0, "fn": 1, "tn": 5}


def test_recall_threshold_is_the_strictest_that_reaches_the_recall():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.4, 0.2, 0.7, 0.3, 0.1, 0.05, 0.0])
    assert recall_threshold(y, p, 0.5) == pytest.approx(0.75)  # 0.9 and 0.8 found; midway to 0.7
    assert recall_threshold(y, p, 0.75) == pytest.approx(0.35)  # down to 0.4; midway to 0.3
    assert recall_threshold(y, p, 0.76) == pytest.approx(0.15)  # a fourth call is needed: down to 0.2
    assert recall_threshold(y, p, 1.0) == pytest.approx(0.15)
    rng = np.random.default_rng(3)
    for target in (0.3, 0.8, 0.9, 0.95):
        y = rng.integers(0, 2, 60)
        p = rng.random(60) * 0.7 + 0.3 * y
        t = recall_threshold(y, p, target)
        assert detection_metrics(y, p, t)["recall"] >= target - 1e-9
        stricter = np.min(p[(y == 1) & (p >= t)]) + 1e-9  # dropping the weakest call found falls short
        assert (p[y == 1] >= stricter).mean() < target
    assert recall_threshold(np.zeros(4), np.random.rand(4), 0.9) == 0.5  # no positives: the default


def test_operating_points_report_what_each_rule_gives():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
    points = operating_points(y, p)
    assert [o["rule"] for o in points] == ["maximum F1", "recall 0.5", "recall 0.8", "recall 0.9", "recall 0.95"]
    assert points[0]["threshold"] == pytest.approx(best_f1_threshold(y, p), abs=1e-4)
    for o, target in zip(points[1:], (0.5, 0.8, 0.9, 0.95), strict=True):
        m = detection_metrics(y, p, o["threshold"])
        assert o["recall"] == m["recall"] >= target and o["precision"] == m["precision"]
    assert [o["threshold"] for o in points[1:]] == sorted([o["threshold"] for o in points[1:]], reverse=True)
