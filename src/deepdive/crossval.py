"""Grouped cross-validation: every clip or recording scored by a model that never heard its tape or
encounter. `crossval_detector` for right-whale detectors, `crossval_species` for species models.

With a few hundred clips from a few dozen tapes, one test split holds a handful of tapes and its AUC
swings with which tapes they are. Cross-validation by group (`prepare.group_folds`) trains k models,
each tested on the tapes it left out, and pools the out-of-fold probabilities: one AUC over every clip,
plus the spread over folds. Each fold trains for the configured epochs without a validation split
(the early-stopping monitor is then the training loss), so no tape is used for choices about itself.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from .datasets.base import Recording
from .evaluate import (
    NOISE_SNRS_DB,
    _score,
    detection_metrics,
    evaluate_detection,
    roc_auc,
    window_probabilities,
)
from .prepare import PrepareConfig, group_folds, prepare, species_folds


def crossval_detector(
    recordings: list[Recording],
    work: str | Path,
    prep_cfg: PrepareConfig,
    train_cfg,
    k: int = 5,
    seed: int = 0,
    snrs_db=NOISE_SNRS_DB,
    keep_models: bool = False,
    progress=None,
    train_seed: int | None = None,
    train_subset=None,
    also_score: list[Recording] | None = None,
    resume: bool = False,
    only: set[int] | None = None,
    extra_train: list[Recording] | None = None,
    encounter_of_tape: dict[str, str] | None = None,
) -> dict:
    """Train and test `k` detectors on group folds; returns pooled and per-fold metrics.

    `seed` makes the folds; `train_seed` (default: `seed`) seeds the models, so several runs over the
    same folds can be averaged into an ensemble. `train_subset(fold, recordings)`, when given, returns
    the part of a fold's training recordings that its model hears (a learning curve).

    Recordings of several sources (`Recording.source`) are folded within each source (see
    `group_folds`), and the pooled figures are also given per source (`by_source`). `also_score`:
    recordings that no fold trains on (another source, for a cross-source figure), scored clean by
    every fold's model; `also` holds each model's probabilities and AUC, and the AUC of their mean.

    Each finished fold is written to `work/foldI.json`; with `resume`, a fold whose file is there (and
    was made with the same folds, configs and clips) is read instead of trained again, so a run of
    hours that is stopped goes on where it stopped. `only`: train only these folds (others are read if
    saved, else left out), so that processes, or machines, can share the folds of one run.

    `extra_train`: recordings that are only ever trained on (e.g. `watkins.detection_negatives`: other
    species' calls), never folded or tested. A fold trains on those of them outside the encounters it
    tests: an extra recording is left out of fold i when its tape is a tape of fold i's test clips, or
    its `group` is the encounter of such a tape (`encounter_of_tape`, e.g. `watkins.tape_encounters`)."""
    from .train import train

    work = Path(work)
    folds = group_folds(recordings, k, seed)
    positive = prep_cfg.positive
    truth_of = {r.key: int(r.label == positive) for r in recordings}
    pooled: dict[str, list[float]] = {}
    keys: list[str] = []
    per_fold = []
    also_clips = [(r.key, int(r.label == positive)) for r in also_score or []]
    source_of = {r.key: r.source for r in recordings}
    also_probs: list[list[float]] = []
    for i, test_keys in enumerate(folds):
        if not test_keys:
            continue
        held = set(test_keys)
        extras = _extras_for(extra_train or [], [r for r in recordings if r.key in held], encounter_of_tape or {})
        done_path = work / f"fold{i}.json"
        stamp = _fold_stamp(i, k, seed, train_seed, prep_cfg, train_cfg, test_keys, len(recordings), also_clips,
                            [r.key for r in extras])
        if resume and done_path.is_file():
            done = json.loads(done_path.read_text())
            if done.get("stamp") == stamp:
                per_fold.append(done["fold"])
                keys += done["clips"]
                for cond, probs in done["probabilities"].items():
                    pooled.setdefault(cond, []).extend(probs)
                if also_clips:
                    also_probs.append(done["also"])
                if progress:
                    progress(i + 1, k, per_fold[-1])
                continue
        if only is not None and i not in only:
            continue
        fold_recs = recordings
        if train_subset is not None:
            kept = {r.key for r in train_subset(i, [r for r in recordings if r.key not in held])}
            fold_recs = [r for r in recordings if r.key in held or r.key in kept]  # in the same order
        fold_recs = fold_recs + extras
        assignment = {r.key: ("test" if r.key in held else "train") for r in fold_recs}
        store, model = work / f"fold{i}" / "store", work / f"fold{i}" / "model"
        absent = {r.source for r in extra_train or []} - {r.source for r in fold_recs}  # every extra of a tested tape
        fold_prep = replace(prep_cfg, seed=seed, source_passes={s: n for s, n in prep_cfg.source_passes.items()
                                                                 if s not in absent})
        prepare(fold_recs, store, fold_prep, assignment=assignment)
        train(store, model, replace(train_cfg, seed=(seed if train_seed is None else train_seed) + i), progress=False)
        report = evaluate_detection(model, [(key, truth_of[key]) for key in test_keys], snrs_db, seed=seed)
        card = json.loads((model / "card.json").read_text())
        per_fold.append({"fold": i, "clips": len(report["clips"]), "positives": int(sum(report["truth"])),
                         **({"extra_train": len(extras)} if extra_train else {}),
                         "roc_auc": report["conditions"]["clean"]["roc_auc"], "threshold": card.get("threshold"),
                         "operating_points": card.get("training_tapes_crossval", {}).get("operating_points")})
        fold_sources = sorted({source_of[key] for key in report["clips"]})
        if len(fold_sources) > 1:
            per_fold[-1]["roc_auc_by_source"] = {
                src: roc_auc(np.array([t for key, t in zip(report["clips"], report["truth"], strict=True) if source_of[key] == src]),
                             np.array([p for key, p in zip(report["clips"], report["probabilities"]["clean"], strict=True)
                                       if source_of[key] == src]))
                for src in fold_sources}
        if also_clips:
            other = evaluate_detection(model, also_clips, snrs_db=())
            also_probs.append(other["probabilities"]["clean"])
            per_fold[-1]["also_roc_auc"] = other["conditions"]["clean"]["roc_auc"]
        keys += report["clips"]
        for cond, probs in report["probabilities"].items():
            pooled.setdefault(cond, []).extend(probs)
        done_path.write_text(json.dumps({"stamp": stamp, "fold": per_fold[-1], "clips": report["clips"],
                                         "probabilities": report["probabilities"],
                                         "also": also_probs[-1] if also_clips else None}))
        if not keep_models:
            shutil.rmtree(work / f"fold{i}", ignore_errors=True)
        if progress:
            progress(i + 1, k, per_fold[-1])
    truth = np.array([truth_of[key] for key in keys])
    threshold = 0.5
    out = {
        "k": k, "seed": seed, "model": train_cfg.model, "features": prep_cfg.features.to_dict(),
        "folds": per_fold,
        "fold_auc_mean": round(float(np.nanmean([f["roc_auc"] for f in per_fold])), 4),
        "fold_auc_std": round(float(np.nanstd([f["roc_auc"] for f in per_fold])), 4),
        "conditions": {c: detection_metrics(truth, np.array(p), threshold) for c, p in pooled.items()},
        "clips": keys, "truth": truth.tolist(), "probabilities": pooled,
    }
    sources = sorted({source_of[key] for key in keys})
    if len(sources) > 1:
        out["by_source"] = {}
        for src in sources:
            mine = np.array([source_of[key] == src for key in keys])
            out["by_source"][src] = {c: detection_metrics(truth[mine], np.array(p)[mine], threshold) for c, p in pooled.items()}
    if also_clips:
        y = np.array([t for _, t in also_clips])
        aucs = [f["also_roc_auc"] for f in per_fold]
        out["also"] = {
            "clips": [key for key, _ in also_clips], "truth": y.tolist(), "probabilities": also_probs,
            "roc_auc_mean": round(float(np.mean(aucs)), 4), "roc_auc_std": round(float(np.std(aucs)), 4),
            "mean_probability": detection_metrics(y, np.mean(also_probs, axis=0), threshold),
        }
    return out


def gear_folds(recordings: list[Recording], system_of, val_frac: float = 0.15, seed: int = 0, min_test: int = 5
               ) -> tuple[list[str], list[dict[str, str]], dict[str, str]]:
    """Leave one recording system out: (systems, assignments, levels), one assignment per system S.

    Test: S's recordings of the species also recorded with another system (a species heard only
    with S could not be learnt without it: those recordings are left out). Train and validation:
    every other system's recordings, whole encounters to validation (`val_frac` of each species',
    seeded, as `split_by_encounter` deals them), except those sharing an encounter with a test
    recording (left out). A system with fewer than `min_test` test recordings gets no fold.
    `system_of(recording)` names a recording's system (for Watkins, `recording_system(r.gear)`)."""
    from .prepare import split_by_encounter

    systems: list[str] = []
    assignments: list[dict[str, str]] = []
    for s in sorted({system_of(r) for r in recordings}):
        others = [r for r in recordings if system_of(r) != s]
        heard = {r.label for r in others}
        test = [r for r in recordings if system_of(r) == s and r.label in heard]
        if len(test) < min_test:
            continue
        test_groups = {r.group for r in test}
        rest = [r for r in others if r.group not in test_groups]
        dealt, _ = split_by_encounter(rest, val_frac, 0.0, seed, True)
        # the deal holds back a test unit per species even when asked for none: here those train
        assignment = {key: ("val" if split == "val" else "train") for key, split in dealt.items()}
        assignment.update({r.key: "test" for r in test})
        systems.append(s)
        assignments.append(assignment)
    return systems, assignments, {}


def _set_fields(cfg) -> str:
    """A config dataclass as the fields it sets away from their defaults (its class name first), so
    that an option added to the class later, at a default that changes nothing, keeps a stamp."""
    import dataclasses

    if not dataclasses.is_dataclass(cfg):
        return repr(cfg)
    out = {}
    for f in dataclasses.fields(cfg):
        default = (f.default if f.default is not dataclasses.MISSING
                   else f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        value = getattr(cfg, f.name)
        if default is dataclasses.MISSING or value != default:
            out[f.name] = value
    return type(cfg).__name__ + json.dumps(out, default=str, sort_keys=True)


def _extras_for(extra: list[Recording], tested: list[Recording], encounter_of_tape: dict[str, str]) -> list[Recording]:
    """The recordings of `extra` a fold may train on: none of a tape it tests or of such a tape's encounter."""
    tapes = {r.tape for r in tested if r.tape}
    blocked = {encounter_of_tape[t] for t in tapes if t in encounter_of_tape}
    return [r for r in extra if r.tape not in tapes and r.group not in blocked]


def _fold_stamp(i, k, seed, train_seed, prep_cfg, train_cfg, test_keys, n, also_clips, extra_keys=()) -> str:
    """What a fold's result depends on, hashed: a saved fold is reused only if this matches. Where the
    network trained (`device`) is left out: a fold trained on a GPU is read by a run on the CPU."""
    import dataclasses
    import hashlib

    if dataclasses.is_dataclass(train_cfg) and any(f.name == "device" for f in dataclasses.fields(train_cfg)):
        train_cfg = replace(train_cfg, device="cpu")
    parts = [i, k, seed, train_seed, _set_fields(prep_cfg), _set_fields(train_cfg), sorted(test_keys), n, also_clips]
    if extra_keys:  # a run without extra training recordings keeps the stamps it always had
        parts.append(sorted(extra_keys))
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()


def crossval_species(
    recordings: list[Recording],
    work: str | Path,
    prep_cfg: PrepareConfig,
    train_cfg,
    k: int = 5,
    seed: int = 0,
    keep_models: bool = False,
    progress=None,
    folds: tuple[list[dict[str, str]], dict[str, str]] | None = None,
    resume: bool = False,
    novelty: bool = False,
    only: set[int] | None = None,
    extra_train: list[Recording] | None = None,
) -> dict:
    """Train and test `k` species models on the folds of `prepare.species_folds` (fold i tested, fold
    i+1 for early stopping, the rest trained on); the recording-level figures pool every recording's
    out-of-fold probabilities, for all labels and for the labels tested on unseen encounters. The
    probabilities themselves are returned too (recording key -> mean over its windows, in the order
    of `labels`), so that other models scored on the same folds can be compared or combined.
    `folds`: (assignments, levels) made otherwise, e.g. by `gear_folds` (a recording missing from an
    assignment is left out of that fold). Each finished fold is saved as `work/foldI.json`; with
    `resume`, a saved fold made with the same folds and configs is read instead of trained again.
    `novelty`: each fold's model scores its test recordings by its own novelty fit (the one `train`
    makes on the fold's training and validation windows); the result's `novelty` maps each
    recording to its out-of-fold novelty (what share of known recordings a threshold flags when the
    encounter, or the recorder, was never heard; a fold without validation windows gives none).
    `only`: train only these folds (others are read if saved, else left out), so that processes can
    share the folds of one run. `extra_train`: recordings of another source that every fold trains on
    and none tests (`prepare watkins --calls`: the challenge's buoy up-calls as Northern Right Whales);
    they must have a `source` of their own, so that each source is balanced apart."""
    from .bundle import Bundle
    from .store import FeatureStore
    from .train import train

    work = Path(work)
    assignments, levels = folds if folds is not None else species_folds(recordings, k, seed, prep_cfg.fallback_split)
    k = len(assignments)
    groups: dict[str, list[np.ndarray]] = {}
    truth: dict[str, int] = {}
    labels: list[str] = sorted({r.label for r in recordings})
    per_fold = []
    novelties: dict[str, float] = {}
    for i, assignment in enumerate(assignments):
        if "test" not in assignment.values():
            continue
        done_path = work / f"fold{i}.json"
        stamp = _fold_stamp(i, k, seed, None, prep_cfg, train_cfg, sorted(assignment.items()), len(recordings),
                            ["novelty"] if novelty else [], [r.key for r in extra_train or []])
        if resume and done_path.is_file():
            done = json.loads(done_path.read_text())
            if done.get("stamp") == stamp:
                groups.update({key: [np.array(p, dtype=np.float32) for p in ws] for key, ws in done["groups"].items()})
                truth.update(done["truth"])
                novelties.update(done.get("novelty", {}))
                per_fold.append(done["fold"])
                if progress:
                    progress(i + 1, k, per_fold[-1])
                continue
        if only is not None and i not in only:
            continue
        store, model = work / f"fold{i}" / "store", work / f"fold{i}" / "model"
        extras = list(extra_train or [])
        prepare([r for r in recordings if r.key in assignment] + extras, store, replace(prep_cfg, seed=seed),
                assignment={**assignment, **{r.key: "train" for r in extras}})
        train(store, model, replace(train_cfg, seed=train_cfg.seed + i), progress=False)
        bundle = Bundle.load(model)
        g, t = window_probabilities(bundle, FeatureStore(store), "test")
        # a fold may lack a label (left out of it): its probabilities go into the order of every label
        at = [labels.index(lab) for lab in bundle.labels]
        for key, windows in g.items():
            full = []
            for p in windows:
                q = np.zeros(len(labels), dtype=np.float32)
                q[at] = p
                full.append(q)
            g[key] = full
        t = {key: at[v] for key, v in t.items()}
        groups.update(g)
        truth.update(t)
        fold_novelty = {}
        if novelty and bundle.novelty is not None:  # `train` fits it where the fold has validation windows
            from .novelty import score_split

            fold_novelty = score_split(bundle, FeatureStore(store), "test")
            novelties.update(fold_novelty)
        _, rec = _score(g, t, labels)
        per_fold.append({"fold": i, "recordings": rec["n"], "accuracy": rec["accuracy"],
                         "top3_accuracy": rec["top3_accuracy"],
                         "best_epoch": bundle.card["training"]["best_epoch"],
                         **({"gate_db": bundle.card["novelty"]["gate_db"]}
                            if "gate_db" in bundle.card.get("novelty", {}) else {})})
        done_path.parent.mkdir(parents=True, exist_ok=True)
        done_path.write_text(json.dumps({"stamp": stamp, "fold": per_fold[-1], "truth": t, "novelty": fold_novelty,
                                         "groups": {key: [p.tolist() for p in ws] for key, ws in g.items()}}))
        if not keep_models:
            shutil.rmtree(work / f"fold{i}", ignore_errors=True)
        if progress:
            progress(i + 1, k, per_fold[-1])
    window, recording = _score(groups, truth, labels)
    enc_labels = [lab for lab in labels if levels.get(lab) == "encounter"]
    enc = {key: v for key, v in groups.items() if labels[truth[key]] in enc_labels}
    enc_window, enc_recording = _score(enc, truth, labels)
    accs = [f["accuracy"] for f in per_fold]
    return {
        "k": k, "seed": seed, "model": train_cfg.model, "features": prep_cfg.features.to_dict(),
        "levels": levels, "folds": per_fold,
        "fold_accuracy_mean": round(float(np.mean(accs)), 4), "fold_accuracy_std": round(float(np.std(accs)), 4),
        "window": window, "recording": recording,
        "encounter_disjoint_labels": enc_labels,
        "encounter_disjoint": {"window": enc_window, "recording": enc_recording},
        "labels": labels,
        "recording_probabilities": {key: np.mean(v, axis=0).round(6).tolist() for key, v in groups.items()},
        **({"novelty": novelties} if novelty else {}),
    }


__all__ = ["crossval_detector", "crossval_species", "PrepareConfig"]
