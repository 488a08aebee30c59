"""Evaluation, written as JSON, Markdown and PNG.

Species models: accuracy, top-3 accuracy, macro-F1, per-species recall and confusion matrices, at window
level and at recording level (a recording's probabilities are the mean of its windows').

Detectors: ROC AUC (the Kaggle challenge's metric), average precision, and accuracy, precision, recall
and F1 at the model's threshold, per clip (a clip's probability is its likeliest window's), with ROC
and precision-recall plots; robustness: the same on the clips with white noise added at 20, 10, 5 and
0 dB SNR (noise power relative to the clip's own power).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .bundle import Bundle, recall_rule, resolve
from .errors import AudioError, ModelError
from .store import FeatureStore, atomic_write_json, atomic_write_text


def metrics(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict:
    """Scores of probabilities (n, k) against integer truths. Macro-F1 and recall are over the
    labels present in the truth (a label with no examples cannot be scored)."""
    y_true = np.asarray(y_true, dtype=int)
    k = len(labels)
    if len(y_true) == 0:
        return {"n": 0}
    pred = probs.argmax(1)
    top3 = np.argsort(-probs, axis=1)[:, :3]
    hit3 = (top3 == y_true[:, None]).any(1)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y_true, pred), 1)
    present = sorted(set(y_true.tolist()))
    per = {}
    f1s = []
    for i in present:
        tp = cm[i, i]
        support = cm[i].sum()
        predicted = cm[:, i].sum()
        recall = tp / support
        precision = tp / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per[labels[i]] = {"recall": round(float(recall), 4), "top3_recall": round(float(hit3[y_true == i].mean()), 4),
                          "precision": round(float(precision), 4),
                          "f1": round(float(f1), 4), "support": int(support)}
    return {
        "n": int(len(y_true)),
        "accuracy": round(float((pred == y_true).mean()), 4),
        "top3_accuracy": round(float(hit3.mean()), 4),
        "macro_f1": round(float(np.mean(f1s)), 4),
        "ece": round(expected_calibration_error(y_true, probs), 4),
        "per_species": per,
        "confusion": cm.tolist(),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top class (Guo et al. 2017): the recordings binned by their
    top probability into `bins` equal-width bins, the mean over bins of |accuracy - mean confidence|
    weighted by the bin's share. 0 is perfect: of the answers given at 80%, 80% are right."""
    y_true = np.asarray(y_true, dtype=int)
    if len(y_true) == 0:
        return float("nan")
    conf = probs.max(1)
    right = probs.argmax(1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(right[mask].mean() - conf[mask].mean())
    return float(ece)


def _plot_confusion(cm: np.ndarray, labels: list[str], title: str, path: Path) -> bool:
    from .plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return False
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    size = max(5, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04, label="share of the true class")
    save(fig, path)
    return True


def _score(groups: dict[str, list[np.ndarray]], truth: dict[str, int], labels: list[str]) -> tuple[dict, dict]:
    keys = sorted(groups)
    win_p = np.concatenate([np.stack(groups[k]) for k in keys]) if keys else np.zeros((0, len(labels)))
    win_y = np.concatenate([[truth[k]] * len(groups[k]) for k in keys]) if keys else np.zeros(0)
    rec_p = np.stack([np.mean(groups[k], axis=0) for k in keys]) if keys else np.zeros((0, len(labels)))
    rec_y = np.array([truth[k] for k in keys])
    return metrics(win_y, win_p, labels), metrics(rec_y, rec_p, labels)


def window_probabilities(bundle, store: FeatureStore, split: str = "test"
                         ) -> tuple[dict[str, list[np.ndarray]], dict[str, int]]:
    """({recording key: its windows' probabilities}, {recording key: label index}) for one split."""
    idx = store.indices(None if split == "all" else split)
    known = {lab: i for i, lab in enumerate(bundle.labels)}
    idx = [i for i in idx if store.rows[i]["label"] in known]
    groups: dict[str, list[np.ndarray]] = defaultdict(list)
    truth: dict[str, int] = {}
    for b in range(0, len(idx), 128):
        chunk = idx[b : b + 128]
        probs = bundle.predict(store.batch(chunk))
        for i, p in zip(chunk, probs, strict=True):
            row = store.rows[i]
            groups[row["key"]].append(p)
            truth[row["key"]] = known[row["label"]]
    return groups, truth


def evaluate_store(model, store_path: str | Path, split: str = "test") -> dict:
    """Score a bundle on one split of a prepared store."""
    from .features import from_dict as features_from_dict
    from .prepare import store_features

    bundle = resolve(model)
    store = FeatureStore(store_path)
    if features_from_dict(store_features(store.config["prepare"])) != bundle.features:
        raise ModelError(f"{store_path}: prepared with other features than {bundle.path}; prepare it again with the model's settings")
    if bundle.task == "detection":
        return evaluate_detection_store(bundle, store, split)
    groups, truth = window_probabilities(bundle, store, split)
    win, rec = _score(groups, truth, bundle.labels)
    report_rows = store.config.get("split_report", [])
    sources = sorted({r["source"] for r in report_rows if r.get("source")})
    # a recording counts as "encounter-disjoint" where its label was split by encounter in its source; a
    # source grouped by clip (the challenge's buoy clips: identical clips together) has no encounters
    by_clip = {r["source"] for r in report_rows if r.get("source")
               and any(u.split("/", 1)[-1].startswith("clip:") for u in r.get("test_units", []))}
    source_of = {r["key"]: r["group"].split("/", 1)[0] for r in store.rows} if len(sources) > 1 else {}
    levels = {(r.get("source", ""), r["label"]): r["level"] for r in report_rows}
    enc_keys = {k for k in groups if source_of.get(k, "") not in by_clip
                and levels.get((source_of.get(k, ""), bundle.labels[truth[k]])) == "encounter"}
    plain = {src for src, _ in levels if src not in by_clip}
    enc_labels = [lab for lab in bundle.labels if any(levels.get((src, lab)) == "encounter" for src in plain)]
    enc_win, enc_rec = _score({k: groups[k] for k in enc_keys}, truth, bundle.labels)
    report = {
        "model": str(bundle.path),
        "model_file": bundle.model_file.name,  # model.onnx (fp32) or model.int8.onnx
        "data": str(store_path),
        "split": split,
        "window": win,
        "recording": rec,
        "encounter_disjoint_labels": enc_labels,
        "encounter_disjoint": {"window": enc_win, "recording": enc_rec},
        "split_levels": {label: level for (_, label), level in levels.items()},
        "labels": bundle.labels,
    }
    if len(sources) > 1:  # several sources trained on together: each one's figures too
        report["by_source"] = {}
        for src in sources:
            mine = {k: v for k, v in groups.items() if source_of[k] == src}
            s_win, s_rec = _score(mine, truth, bundle.labels)
            e_win, e_rec = _score({k: v for k, v in mine.items() if k in enc_keys}, truth, bundle.labels)
            report["by_source"][src] = {"window": s_win, "recording": s_rec,
                                        "encounter_disjoint": {"window": e_win, "recording": e_rec}}
    return report


def evaluate_recordings(model, recordings, on_error=None) -> dict:
    """Score a bundle on dataset recordings (every window of every file; nothing held out)."""
    from .predict import window_probabilities

    bundle = resolve(model)
    known = {lab: i for i, lab in enumerate(bundle.labels)}
    groups: dict[str, list[np.ndarray]] = {}
    truth: dict[str, int] = {}
    for r in recordings:
        if r.label not in known:
            continue
        try:
            _, probs, _ = window_probabilities(r.path, bundle)
        except AudioError as exc:
            if on_error:
                on_error(r.key, str(exc))
            continue
        groups[r.key] = list(probs)
        truth[r.key] = known[r.label]
    win, rec = _score(groups, truth, bundle.labels)
    return {"model": str(bundle.path), "model_file": bundle.model_file.name, "split": "all", "window": win,
            "recording": rec, "labels": bundle.labels}


def markdown_report(report: dict) -> str:
    if report.get("task") == "detection":
        return detection_markdown(report)
    lines = [f"# Evaluation of `{report['model']}`", "", f"Data: `{report.get('data', '')}`, split: {report['split']}", ""]
    lines += ["| level | n | accuracy | top-3 | macro-F1 | ECE |", "|---|---:|---:|---:|---:|---:|"]
    for level in ("window", "recording"):
        m = report[level]
        if m.get("n"):
            lines.append(f"| {level} | {m['n']} | {m['accuracy']:.3f} | {m['top3_accuracy']:.3f} | {m['macro_f1']:.3f} | "
                         f"{m.get('ece', float('nan')):.3f} |")
    enc = report.get("encounter_disjoint")
    if enc and enc["recording"].get("n"):
        for level in ("window", "recording"):
            m = enc[level]
            lines.append(f"| {level}, encounter-split species only | {m['n']} | {m['accuracy']:.3f} | "
                         f"{m['top3_accuracy']:.3f} | {m['macro_f1']:.3f} | {m.get('ece', float('nan')):.3f} |")
    for src, figures in report.get("by_source", {}).items():
        for level in ("window", "recording"):
            for name, m in ((level, figures[level]), (f"{level}, encounter-split species only",
                                                       figures["encounter_disjoint"][level])):
                if m.get("n"):
                    lines.append(f"| {src}: {name} | {m['n']} | {m['accuracy']:.3f} | {m['top3_accuracy']:.3f} | "
                                 f"{m['macro_f1']:.3f} | {m.get('ece', float('nan')):.3f} |")
    rec = report["recording"]
    if rec.get("n"):
        lines += ["", "Per species (recording level):", "",
                  "| species | split level | recordings | recall (top-1) | top-3 | F1 |", "|---|---|---:|---:|---:|---:|"]
        for lab, m in rec["per_species"].items():
            lines.append(f"| {lab} | {report.get('split_levels', {}).get(lab, '')} | {m['support']} | "
                         f"{m['recall']:.2f} | {m['top3_recall']:.2f} | {m['f1']:.2f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", report)
    if report.get("task") == "detection":
        atomic_write_text(out / "report.md", detection_markdown(report))
        _plot_detection(report, out)
        return out
    atomic_write_text(out / "report.md", markdown_report(report))
    for level in ("window", "recording"):
        m = report[level]
        if m.get("n"):
            _plot_confusion(np.array(m["confusion"]), report["labels"], f"{level} level ({report['split']})",
                            out / f"confusion_{level}.png")
    return out


def summary(report: dict) -> dict:
    """The figures a card keeps."""
    if report.get("task") == "detection":
        return detection_summary(report)
    out = {"split": report["split"]}
    if "model_file" in report:
        out["model_file"] = report["model_file"]
    for level in ("window", "recording"):
        m = report[level]
        if m.get("n"):
            out[level] = {k: m[k] for k in ("n", "accuracy", "top3_accuracy", "macro_f1")}
    if report["recording"].get("n"):
        out["per_species"] = {k: {"recall": v["recall"], "top3_recall": v["top3_recall"], "f1": v["f1"],
                                  "support": v["support"]} for k, v in report["recording"]["per_species"].items()}
    enc = report.get("encounter_disjoint", {}).get("recording", {})
    if enc.get("n"):
        out["encounter_disjoint_recording"] = {k: enc[k] for k in ("n", "accuracy", "top3_accuracy", "macro_f1")}
    for src, figures in report.get("by_source", {}).items():
        m = figures["recording"]
        if m.get("n"):
            out.setdefault("by_source", {})[src] = {k: m[k] for k in ("n", "accuracy", "top3_accuracy", "macro_f1")}
    return out


# ---------------------------------------------------------------- detection


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); nan without both classes."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, thresholds), from the strictest threshold down."""
    y = np.asarray(y, dtype=int)
    order = np.argsort(-np.asarray(p), kind="stable")
    ps, ys = np.asarray(p)[order], y[order]
    last = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]  # one point per distinct score
    tp, fp = np.cumsum(ys)[last], np.cumsum(1 - ys)[last]
    tpr = np.r_[0.0, tp / max(ys.sum(), 1)]
    fpr = np.r_[0.0, fp / max((1 - ys).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, ps[last]]


def pr_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(precision, recall, average precision), from the strictest threshold down."""
    y = np.asarray(y, dtype=int)
    _, tpr, _ = roc_curve(y, p)
    order = np.argsort(-np.asarray(p), kind="stable")
    ps, ys = np.asarray(p)[order], y[order]
    last = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]
    tp = np.cumsum(ys)[last]
    precision = tp / (last + 1)
    recall = tp / max(ys.sum(), 1)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return np.r_[1.0, precision], np.r_[0.0, recall], ap


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold (detect when p >= t) with the highest F1; midway to the next score."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    cands = np.unique(p)
    best_t, best_f1 = 0.5, -1.0
    for t in cands:
        pred = p >= t
        tp = int((pred & (y == 1)).sum())
        f1 = 2 * tp / (pred.sum() + y.sum()) if pred.sum() + y.sum() else 0.0
        if f1 > best_f1:
            below = p[p < t]
            best_t, best_f1 = (float((t + below.max()) / 2) if len(below) else float(t)), f1
    return best_t


def recall_threshold(y: np.ndarray, p: np.ndarray, recall: float) -> float:
    """The strictest threshold (detect when p >= t) that still finds at least `recall` of the
    positives; midway to the next lower score, like `best_f1_threshold`."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    pos = np.sort(p[y == 1])[::-1]
    if not len(pos):
        return 0.5
    need = min(len(pos), max(1, int(np.ceil(recall * len(pos) - 1e-9))))
    t = float(pos[need - 1])
    below = p[p < t]
    return float((t + below.max()) / 2) if len(below) else t


OPERATING_RECALLS = (0.5, 0.8, 0.9, 0.95)


def operating_points(y: np.ndarray, p: np.ndarray, recalls=OPERATING_RECALLS, sources=None) -> list[dict]:
    """Thresholds a reviewer can choose from, with the precision and recall each gave on (`y`, `p`):
    the F1-best one, then one per target recall.

    With `sources` (each clip's source, for a model trained on several), each point also gives, per
    source, the precision and recall at that threshold and the source's own threshold for the rule:
    a model's scores need not run alike on every recorder, and an analyst whose recordings resemble
    one source can take its threshold."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    src = None if sources is None else np.asarray(sources)
    names = [] if src is None else sorted(s for s in set(src) if 0 < y[src == s].sum() < (src == s).sum())

    def rules(yy, pp):
        return [("maximum F1", best_f1_threshold(yy, pp))] + [(recall_rule(r), recall_threshold(yy, pp, r)) for r in recalls]

    own = {s: dict(rules(y[src == s], p[src == s])) for s in names}
    points = []
    for rule, t in rules(y, p):
        m = detection_metrics(y, p, t)
        point = {"rule": rule, "threshold": round(t, 4), "precision": m["precision"], "recall": m["recall"]}
        if names:
            point["by_source"] = {}
            for s in names:
                ms = detection_metrics(y[src == s], p[src == s], round(t, 4))
                point["by_source"][s] = {"precision": ms["precision"], "recall": ms["recall"],
                                         "own_threshold": round(own[s][rule], 4)}
        points.append(point)
    return points


def detection_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return {"n": 0}
    pred = p >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    tn = int((~pred & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    _, _, ap = pr_curve(y, p)
    return {
        "n": int(len(y)), "positives": int(y.sum()), "roc_auc": round(roc_auc(y, p), 4),
        "average_precision": round(ap, 4), "threshold": round(float(threshold), 4),
        "accuracy": round((tp + tn) / len(y), 4), "precision": round(precision, 4), "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall) if precision + recall else 0.0, 4),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


NOISE_SNRS_DB = (20.0, 10.0, 5.0, 0.0)


def _split_key(key: str) -> tuple[str, float, float | None]:
    """A store key back into (path, start_s, end_s): see Recording.key."""
    if "#" not in key:
        return key, 0.0, None
    path, stretch = key.rsplit("#", 1)
    a, _, b = stretch.partition("-")
    return path, float(a or 0), (float(b) if b else None)


def evaluate_detection(model, clips: list[tuple[str, int]], snrs_db=NOISE_SNRS_DB, seed: int = 0,
                       on_error=None) -> dict:
    """Score a detector on (store key or path, truth 0/1) clips, clean and with white noise at each SNR."""
    from .audio import load
    from .augment import white_noise
    from .predict import window_detections

    bundle = resolve(model, "detection")
    sr = bundle.features.sr
    conditions: dict[str, list] = {"clean": []}
    for snr in snrs_db:
        conditions[f"{snr:g} dB"] = []
    truth, names = [], []
    for i, (key, y_true) in enumerate(clips):
        path, start, end = _split_key(key)
        try:
            y, _ = load(path, sr, start, None if end is None else end - start)
        except AudioError as exc:
            if on_error:
                on_error(key, str(exc))
            continue
        conditions["clean"].append(window_detections(y, bundle, sr)[1].max())
        for snr in snrs_db:
            rng = np.random.default_rng([seed, i, int(round(snr * 100)) + 100_000])  # the same noise whatever else is run
            conditions[f"{snr:g} dB"].append(window_detections(white_noise(y, snr, rng), bundle, sr)[1].max())
        truth.append(int(y_true))
        names.append(key)
    y_arr = np.array(truth, dtype=int)
    results = {c: detection_metrics(y_arr, np.array(v), bundle.threshold) for c, v in conditions.items()}
    return {
        "model": str(bundle.path), "task": "detection", "threshold": bundle.threshold,
        "conditions": results, "clips": names, "truth": truth,
        "probabilities": {c: [round(float(x), 6) for x in v] for c, v in conditions.items()},
    }


def evaluate_detection_store(model, store: FeatureStore, split: str = "test", snrs_db=NOISE_SNRS_DB) -> dict:
    """Score a detector on the clips of one split of its store, reading their audio again (for the noise)."""
    bundle = resolve(model, "detection")
    positive = bundle.card["positive_label"]
    clips: dict[str, int] = {}
    for r in store.rows:
        if (split == "all" or r["split"] == split) and not r["augment"]:
            clips[r["key"]] = int(r["label"] == positive)
    report = evaluate_detection(bundle, list(clips.items()), snrs_db)
    report.update({"data": str(store.root), "split": split})
    sources = sorted({row["source"] for row in store.config.get("split_report", []) if row.get("source")})
    if len(sources) > 1:
        # several sources trained on together: their groups are prefixed by the source's name
        source_of = {r["key"]: r["group"].split("/", 1)[0] for r in store.rows}
        report["by_source"] = by_source(report, {key: source_of[key] for key in report["clips"]}, bundle.threshold)
    return report


def by_source(report: dict, source_of: dict[str, str], threshold: float) -> dict:
    """A detection report's figures per source (each condition), from its clips' probabilities."""
    src = np.array([source_of[key] for key in report["clips"]])
    truth = np.array(report["truth"], dtype=int)
    return {s: {c: detection_metrics(truth[src == s], np.array(p)[src == s], threshold)
                for c, p in report["probabilities"].items()} for s in sorted(set(src))}


def _plot_detection(report: dict, out: Path) -> bool:
    from .plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return False
    y = np.array(report["truth"])
    if len(set(y.tolist())) < 2:
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for cond, probs in report["probabilities"].items():
        p = np.array(probs)
        fpr, tpr, _ = roc_curve(y, p)
        prec, rec, ap = pr_curve(y, p)
        a1.plot(fpr, tpr, label=f"{cond} (AUC {roc_auc(y, p):.3f})", lw=2 if cond == "clean" else 1)
        a2.plot(rec, prec, label=f"{cond} (AP {ap:.3f})", lw=2 if cond == "clean" else 1)
    a1.plot([0, 1], [0, 1], "k:", lw=0.8)
    a1.set_xlabel("false-positive rate")
    a1.set_ylabel("true-positive rate")
    a1.set_title("ROC")
    a1.legend(fontsize=8)
    a2.set_xlabel("recall")
    a2.set_ylabel("precision")
    a2.set_title("precision-recall")
    a2.legend(fontsize=8)
    save(fig, out / "roc_pr.png")
    return True


def detection_markdown(report: dict) -> str:
    lines = [f"# Evaluation of detector `{report['model']}`", "",
             f"Data: `{report.get('data', '')}`, split: {report.get('split', '')}, threshold {report['threshold']:.3f}"]
    tables = [("", report["conditions"])]
    if report.get("by_source"):
        tables = [("all sources together", report["conditions"])] + list(report["by_source"].items())
    for name, conditions in tables:
        lines += ["", f"**{name}**", ""] if name else [""]
        lines += ["| condition | clips | positives | ROC AUC | AP | accuracy | precision | recall | F1 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for cond, m in conditions.items():
            if m.get("n"):
                lines.append(f"| {cond} | {m['n']} | {m['positives']} | {m['roc_auc']:.3f} | {m['average_precision']:.3f} | "
                             f"{m['accuracy']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |")
    return "\n".join(lines) + "\n"


def detection_summary(report: dict) -> dict:
    def strip(conditions: dict) -> dict:
        return {c: {k: v for k, v in m.items() if k != "confusion"} for c, m in conditions.items()}

    out = {"split": report.get("split", ""), **strip(report["conditions"])}
    if report.get("by_source"):
        out["by_source"] = {src: strip(conds) for src, conds in report["by_source"].items()}
    return out


__all__ = ["Bundle", "evaluate_recordings", "evaluate_store", "markdown_report", "metrics", "summary", "write_report",
           "roc_auc", "roc_curve", "pr_curve", "best_f1_threshold", "recall_threshold", "operating_points",
           "detection_metrics", "evaluate_detection"]
