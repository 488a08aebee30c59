"""Evaluation: accuracy, top-3 accuracy, macro-F1, per-species recall and confusion matrices, at window
level and at recording level (a recording's probabilities are the mean of its windows'), written as
JSON, Markdown and PNG."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .bundle import Bundle, resolve
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
        "per_species": per,
        "confusion": cm.tolist(),
    }


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


def evaluate_store(model, store_path: str | Path, split: str = "test") -> dict:
    """Score a bundle on one split of a prepared store."""
    bundle = resolve(model)
    store = FeatureStore(store_path)
    store_mel = store.config["prepare"]["mel"]
    if store_mel != {k: bundle.card["features"].get(k) for k in store_mel}:
        raise ModelError(f"{store_path}: prepared with other features than {bundle.path}; prepare it again with the model's settings")
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
    win, rec = _score(groups, truth, bundle.labels)
    levels = {r["label"]: r["level"] for r in store.config.get("split_report", [])}
    enc_labels = [lab for lab in bundle.labels if levels.get(lab) == "encounter"]
    enc_groups = {k: v for k, v in groups.items() if bundle.labels[truth[k]] in enc_labels}
    enc_win, enc_rec = _score(enc_groups, truth, bundle.labels)
    return {
        "model": str(bundle.path),
        "data": str(store_path),
        "split": split,
        "window": win,
        "recording": rec,
        "encounter_disjoint_labels": enc_labels,
        "encounter_disjoint": {"window": enc_win, "recording": enc_rec},
        "split_levels": levels,
        "labels": bundle.labels,
    }


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
    return {"model": str(bundle.path), "split": "all", "window": win, "recording": rec, "labels": bundle.labels}


def markdown_report(report: dict) -> str:
    lines = [f"# Evaluation of `{report['model']}`", "", f"Data: `{report.get('data', '')}`, split: {report['split']}", ""]
    lines += ["| level | n | accuracy | top-3 | macro-F1 |", "|---|---:|---:|---:|---:|"]
    for level in ("window", "recording"):
        m = report[level]
        if m.get("n"):
            lines.append(f"| {level} | {m['n']} | {m['accuracy']:.3f} | {m['top3_accuracy']:.3f} | {m['macro_f1']:.3f} |")
    enc = report.get("encounter_disjoint")
    if enc and enc["recording"].get("n"):
        for level in ("window", "recording"):
            m = enc[level]
            lines.append(f"| {level}, encounter-split species only | {m['n']} | {m['accuracy']:.3f} | "
                         f"{m['top3_accuracy']:.3f} | {m['macro_f1']:.3f} |")
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
    atomic_write_text(out / "report.md", markdown_report(report))
    for level in ("window", "recording"):
        m = report[level]
        if m.get("n"):
            _plot_confusion(np.array(m["confusion"]), report["labels"], f"{level} level ({report['split']})",
                            out / f"confusion_{level}.png")
    return out


def summary(report: dict) -> dict:
    """The figures a card keeps."""
    out = {"split": report["split"]}
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
    return out


__all__ = ["Bundle", "evaluate_recordings", "evaluate_store", "markdown_report", "metrics", "summary", "write_report"]
