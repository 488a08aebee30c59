"""Probabilities that mean what they say: of the recordings a species model ranks first at 80%, about
80% should be right. A network trained with cross-entropy is usually over-confident on encounters it
never heard; one temperature T, fitted on held-out recordings, divides its logits (softmax(z / T)),
which changes no ranking of a window and corrects most of the miscalibration (Guo et al. 2017).

`fit_temperature` minimises the negative log-likelihood of held-out windows over T; `add_to_bundle`
fits it for a species bundle on its store's validation split (encounters it never trained on) and
writes the card's `calibration` (the temperature, and the expected calibration error of those
windows before and after). `Bundle.predict` applies it. The figures on the test split are measured
by `deepdive evaluate` (its `ece` column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    z = logits / t
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature (0.05 to 20) that minimises the held-out windows' negative log-likelihood."""
    from scipy.optimize import minimize_scalar

    logits, y = np.asarray(logits, dtype=np.float64), np.asarray(y, dtype=int)
    res = minimize_scalar(lambda log_t: _nll(logits, y, float(np.exp(log_t))), bounds=(np.log(0.05), np.log(20.0)),
                          method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def add_to_bundle(bundle_dir: str | Path, store_path: str | Path, heldout: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> dict:
    """Fit the temperature of a species bundle on its store's validation windows; write the card's
    `calibration` and return it. `heldout` (logits, labels): the validation windows as scored by a model
    that did not train on them, for a bundle that did (the `embedding-linear` head is refitted on the
    training and validation windows together: fitted on its own scores of them, the temperature would
    sharpen it, 0.12 on the Watkins head, where they must soften it)."""
    import json

    from .bundle import Bundle, softmax
    from .errors import DatasetError
    from .evaluate import expected_calibration_error
    from .novelty import held_out_validation
    from .store import FeatureStore, atomic_write_json

    bundle_dir = Path(bundle_dir)
    bundle = Bundle.load(bundle_dir, precision="fp32")
    store = FeatureStore(store_path)
    index = {lab: i for i, lab in enumerate(bundle.labels)}
    va = [i for i in store.indices("val") if store.rows[i]["label"] in index]
    by_rec, left_out = held_out_validation(bundle, store, va)
    idx = [i for rows in by_rec.values() for i in rows]
    if len(idx) < 10:
        raise DatasetError("calibration needs validation windows (a store prepared with --val-frac above 0)")
    if heldout is None:
        logits = np.concatenate([bundle.logits(store.batch(idx[b : b + 256])) for b in range(0, len(idx), 256)])
        y = np.array([index[store.rows[i]["label"]] for i in idx])
    else:
        logits, y = np.asarray(heldout[0], dtype=np.float64), np.asarray(heldout[1], dtype=int)
    t = fit_temperature(logits, y)
    summary = {
        "method": "temperature scaling: probabilities are softmax(logits / temperature)",
        "temperature": round(t, 4),
        "fitted_on": {"validation_windows": len(y), "validation_recordings": len(by_rec),
                      "validation_recordings_left_out_as_trained_on": len(left_out),
                      **({"scored_by": "the head fitted on the training windows alone (the shipped head is refitted "
                                       "on the validation windows too)"} if heldout is not None else {})},
        "validation_ece_before": round(expected_calibration_error(y, softmax(logits)), 4),
        "validation_ece_after": round(expected_calibration_error(y, softmax(logits / t)), 4),
    }
    card = json.loads((bundle_dir / "card.json").read_text(encoding="utf-8"))
    card["calibration"] = summary
    atomic_write_json(bundle_dir / "card.json", card)
    return summary
