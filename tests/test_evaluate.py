import numpy as np
import pytest

from deepdive.evaluate import best_f1_threshold, detection_metrics, pr_curve, roc_auc, roc_curve


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
