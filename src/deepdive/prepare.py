"""Preparation, the Deep Dive workflow: split by encounter, slice into windows, balance, augment,
compute features and write them to the on-disk store.

Split. Recordings of one encounter (`Recording.group`) never straddle train/validation/test. The
split is stratified: each label's encounters are shuffled (seeded) and dealt to test, then to
validation, until each holds about its fraction of the label's duration, always leaving one for
training. A label recorded in a single encounter cannot be tested on an unseen encounter; rather than
drop it, the split falls back (unless its encounter also holds other labels) to the finest honest unit
left (its tapes, else contiguous blocks of its cuts in recording order) and records that level per
label (`level` in the split report), so evaluation can report the encounter-disjoint labels separately. An encounter that holds several
labels (a tape with calls and noise) goes wholly to the side where the first of its labels put it.

Features. Any configuration of `deepdive.features` (log-mel windows for species, spectrogram images or
complexity-entropy series for detection); `task` says whether the store trains a ranking or a detector.

Windows. `window_s` (5 s). A recording of at least one window is cut into consecutive windows; a
last remainder of at least `min_last_s` (3 s) is kept and padded at a random position (with zeros,
low-level noise, or the segment mirrored). A shorter recording is padded at a random position.

Sources. Datasets trained on together (`Recording.source`, e.g. the challenge's buoy clips and clips
cut from Watkins tapes) are split within each. `source_passes` sets how many passes a source's
training recordings get (the extra ones augmented), and with `mix_backgrounds` an augmented pass is,
with that probability, mixed over a random background from another source's training clips of the
negative labels (`augment.BackgroundMix`): a call heard over another recorder's noise.

Balance (training split only). For a detector (`augment_all`), every label gets the same extra,
augmented slices: were only the rare positives augmented, added noise itself would announce a call.
For species, labels whose total training duration is below the median label are
under-represented (in a store of several sources, a label's recordings of each source count apart, so
that a label one source holds in plenty is still balanced in the source that holds little of it): they are sliced `extra_slices` (3) times at offsets shifted by window/3 (or, with
`shift="roll"`, for clips as long as a window, rolled by a random time shift), and each extra slice
gets white noise (random SNR) and a random gain. Others are sliced once. Validation and
test are sliced once and never augmented.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import scipy.fft  # noqa: F401  (the fast FFT from the first frame: see features.spectrogram)

from . import audio
from .augment import BackgroundMix, random_noise_and_gain, time_shift
from .datasets.base import Recording
from .errors import AudioError, DatasetError
from .features import FeatureConfig, MelConfig
from .features import from_dict as features_from_dict
from .store import StoreWriter, atomic_write_json, done_recordings
from .windows import mirror_pad, random_pad, slice_windows

SPLITS = ("train", "val", "test")


PADS = ("zeros", "noise", "mirror")
SHIFTS = ("slice", "roll")


@dataclass
class PrepareConfig:
    features: FeatureConfig = field(default_factory=MelConfig)
    task: str = "species"  # species (ranking) or detection (binary: the positive label is `positive`)
    positive: str = ""
    min_last_s: float = 3.0
    pad: str = "zeros"  # zeros (Deep Dive), noise (low-level noise matched to the recording) or mirror
    balance: bool = True
    extra_slices: int = 3
    shift: str = "slice"  # extra slices start window/slices later (slice) or are rolled at random (roll)
    augment_all: bool = False  # every label gets `extra_slices` passes (detection: noise must not tell the class)
    snr_db: tuple[float, float] = (10.0, 30.0)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    val_frac: float = 0.15
    test_frac: float = 0.2
    seed: int = 0
    fallback_split: bool = True
    shard_size: int = 256
    # several sources (datasets trained on together): training passes per source name, overriding the
    # label's (a small source heard as often as a large one would otherwise be drowned), and the
    # probability that an augmented pass is mixed over a background of another source's training noise
    source_passes: dict[str, int] = field(default_factory=dict)
    mix_backgrounds: float = 0.0
    mix_snr_db: tuple[float, float] = (0.0, 15.0)
    mix_pool: int = 256  # background clips kept per source
    mix_sources: tuple[str, ...] = ()  # the sources whose noise is mixed under other sources' windows (empty: every one)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["features"] = self.features.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PrepareConfig:
        d = dict(d)
        d["features"] = features_from_dict(store_features(d))
        for k in ("snr_db", "gain_db", "mix_snr_db"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def store_features(prepare_cfg: dict) -> dict:
    """The feature dict of a store's (or card's) prepare section; stores of the first format say 'mel'."""
    return prepare_cfg.get("features", prepare_cfg.get("mel", {}))


# ---------------------------------------------------------------- split


def _units(recs: list[Recording], fallback: bool) -> tuple[str, dict[str, list[Recording]]]:
    """The units a label is split by, and the level they come from."""
    by_group: dict[str, list[Recording]] = defaultdict(list)
    for r in recs:
        by_group[r.group].append(r)
    if len(by_group) >= 2 or not fallback:
        return "encounter", by_group
    by_tape: dict[str, list[Recording]] = defaultdict(list)
    for r in recs:
        by_tape[r.tape or r.group].append(r)
    if len(by_tape) >= 2:
        return "tape", by_tape
    ordered = sorted(recs, key=lambda r: (r.cut_id or r.path, r.start_s or 0))
    n_blocks = min(5, len(ordered))
    blocks = np.array_split(np.arange(len(ordered)), n_blocks) if n_blocks else []
    return "block", {f"block{b}": [ordered[i] for i in idx] for b, idx in enumerate(blocks)}


def _units_by_label(recordings: list[Recording], fallback: bool) -> dict[str, tuple[str, dict[str, list[Recording]]]]:
    """Each label's split units and their level (`_units`); a label sharing an encounter with another
    label is split by encounter whatever `fallback` says."""
    by_label: dict[str, list[Recording]] = defaultdict(list)
    labels_of_group: dict[str, set[str]] = defaultdict(set)
    for r in recordings:
        by_label[r.label].append(r)
        labels_of_group[r.group].add(r.label)
    return {label: _units(recs, fallback and not any(len(labels_of_group[r.group]) > 1 for r in recs))
            for label, recs in sorted(by_label.items())}


def _size(recs: list[Recording]) -> float:
    return sum(r.duration_s if r.duration_s else 1.0 for r in recs)


def _deal(units: dict[str, list[Recording]], names: list[str], target: float) -> list[str]:
    """Take units (in the given order) until about `target` is reached; at least one."""
    taken: list[str] = []
    total = 0.0
    for n in names:
        s = _size(units[n])
        if total >= target * 0.5 and taken:
            break
        if total + s <= target * 1.5 or not taken:
            taken.append(n)
            total += s
    if taken and total > target * 1.5 and len(names) > 1:  # first pick was too big: take the smallest instead
        smallest = min(names, key=lambda n: _size(units[n]))
        taken = [smallest]
    return taken


def split_by_encounter(
    recordings: list[Recording],
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    seed: int = 0,
    fallback: bool = True,
) -> tuple[dict[str, str], list[dict]]:
    """Assign every recording key to train/val/test without splitting an encounter.

    Recordings of several sources (`Recording.source`: datasets trained on together) are split
    within each source, with the same seed, so each source's split is the one it gets alone and each
    is tested in its own proportions. Returns (split by recording key, report rows per label; with
    several sources, per source and label, each row naming its source).
    """
    sources = sorted({r.source for r in recordings})
    if len(sources) > 1:
        assignment, report = {}, []
        for source in sources:
            a, rows = split_by_encounter([r for r in recordings if r.source == source], val_frac, test_frac, seed, fallback)
            assignment.update(a)
            report += [{"source": source, **row} for row in rows]
        return assignment, report
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    group_split: dict[str, str] = {}  # groups holding several labels follow the first label that placed them
    report = []
    for label, (level, units) in _units_by_label(recordings, fallback).items():
        names = sorted(units)
        rng.shuffle(names)
        total = sum(_size(rs) for rs in units.values())
        chosen: dict[str, list[str]] = {"test": [], "val": []}
        placed = {n: group_split[n] for n in names if level == "encounter" and n in group_split}
        if not placed:
            if len(names) >= 2:
                chosen["test"] = _deal(units, names, test_frac * total)
                rest = [n for n in names if n not in chosen["test"]]
                if len(rest) >= 2 and val_frac > 0:
                    chosen["val"] = _deal(units, rest, val_frac * total)
                    if len(chosen["val"]) == len(rest):
                        chosen["val"] = chosen["val"][:-1]
        else:
            # some of this label's encounters were placed with another label: deal only the others,
            # toward what is still missing, always leaving training something
            for n, split in placed.items():
                chosen.setdefault(split, []).append(n)
            free = [n for n in names if n not in placed]
            has_train = any(split == "train" for split in placed.values())
            for split, frac in (("test", test_frac), ("val", val_frac)):
                missing = frac * total - _size([r for n in chosen[split] for r in units[n]])
                if frac <= 0 or missing <= 0 or len(free) < (1 if has_train else 2):
                    continue
                pick = _deal(units, free, missing)
                if len(pick) == len(free) and not has_train:
                    pick = pick[:-1]
                chosen[split] += pick
                free = [n for n in free if n not in pick]
        row = {"label": label, "level": level, "units": len(names)}
        chosen["train"] = [n for n in names if n not in chosen["test"] and n not in chosen["val"]]
        for split in SPLITS:
            members = chosen[split]
            if level == "encounter":
                group_split.update({n: split for n in members})
            rs = [r for n in members for r in units[n]]
            for r in rs:
                assignment[r.key] = split
            row[f"{split}_recordings"] = len(rs)
            row[f"{split}_duration_s"] = round(_size(rs), 1)
            row[f"{split}_units"] = sorted(members)
        report.append(row)
    return assignment, report


# ---------------------------------------------------------------- windows (see `windows`)


def _recording_blocks(rec: Recording, sr: int, offset_s: float) -> Iterator[np.ndarray]:
    """Stream the recording's stretch [start_s + offset_s, end_s) at `sr`."""
    lead = int(round(((rec.start_s or 0.0) + offset_s) * sr))
    limit = None if rec.end_s is None else int(round((rec.end_s - (rec.start_s or 0.0) - offset_s) * sr))
    pos = given = 0
    for _, block, _ in audio.stream(rec.path, block_s=60.0, sr=sr):
        b0, pos = pos, pos + len(block)
        if pos <= lead:
            continue
        block = block[max(0, lead - b0) :]
        if limit is not None:
            block = block[: max(0, limit - given)]
        given += len(block)
        if len(block):
            yield block
        if limit is not None and given >= limit:
            break


def iter_windows(
    rec: Recording, cfg: PrepareConfig, offset_s: float, rng: np.random.Generator
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (start_s, samples) windows of one recording, streamed block by block."""
    sr = cfg.features.sr
    first = (rec.start_s or 0.0) + offset_s
    for start, y in slice_windows(
        _recording_blocks(rec, sr, offset_s), cfg.features.window_samples, int(round(cfg.min_last_s * sr)),
        lambda seg, n: random_pad(seg, n, rng, cfg.pad),
    ):
        yield first + start / sr, y


def _report_of(recs: list[Recording], assignment: dict[str, str]) -> list[dict]:
    """Split report rows for a given assignment (level: group)."""
    report = []
    for label in sorted({r.label for r in recs}):
        mine = [r for r in recs if r.label == label]
        row = {"label": label, "level": "encounter", "units": len({r.group for r in mine})}
        for split in SPLITS:
            rs = [r for r in mine if assignment[r.key] == split]
            row[f"{split}_recordings"] = len(rs)
            row[f"{split}_duration_s"] = round(_size(rs), 1)
            row[f"{split}_units"] = sorted({r.group for r in rs})
        report.append(row)
    return report


def group_folds(recordings: list[Recording], k: int = 5, seed: int = 0) -> list[list[str]]:
    """`k` folds of recording keys, whole groups (encounters) in each, every label's groups dealt
    greedily (largest first, to the fold holding least of that label) after a seeded shuffle.

    Recordings of several sources are dealt within each source (the same seed), fold i holding each
    source's fold i: every fold tests every source, in the folds that source gets alone."""
    sources = sorted({r.source for r in recordings})
    if len(sources) > 1:
        each = [group_folds([r for r in recordings if r.source == s], k, seed) for s in sources]
        return [[key for folds in each for key in folds[i]] for i in range(k)]
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[Recording]] = defaultdict(list)
    for r in recordings:
        by_group[r.group].append(r)
    majority = {g: max({r.label for r in rs}, key=lambda lab: sum(r.label == lab for r in rs)) for g, rs in by_group.items()}
    folds: list[list[str]] = [[] for _ in range(k)]
    for label in sorted(set(majority.values())):
        groups = [g for g in sorted(by_group) if majority[g] == label]
        rng.shuffle(groups)
        groups.sort(key=lambda g: -_size(by_group[g]))
        load = np.zeros(k)
        for g in groups:
            f = int(np.argmin(load + rng.random(k) * 1e-6))
            folds[f] += [r.key for r in by_group[g]]
            load[f] += _size(by_group[g])
    return folds


def species_folds(recordings: list[Recording], k: int = 5, seed: int = 0, fallback: bool = True
                  ) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Cross-validation over encounters for species: `k` assignments (recording key -> train, val or
    test) in which every recording is tested exactly once, and each label's level.

    Each label's units are its encounters, or, for a label recorded in a single encounter (with
    `fallback`), its tapes, else blocks of consecutive cuts, as in `split_by_encounter`. The units are
    dealt over the k folds (largest first, to the fold holding least of that label, after a seeded
    shuffle; an encounter holding several labels goes where its first label put it). In assignment i,
    fold i is the test set and fold i+1 the validation set (for early stopping), except for a label
    that would then have nothing left to train on: its fold i+1 units stay in training."""
    rng = np.random.default_rng(seed)
    fold_of_group: dict[str, int] = {}
    levels: dict[str, str] = {}
    unit_folds: dict[str, list[tuple[int, list[Recording]]]] = {}
    for label, (level, units) in _units_by_label(recordings, fallback).items():
        levels[label] = level
        names = sorted(units)
        rng.shuffle(names)
        names.sort(key=lambda n: -_size(units[n]))
        load = np.zeros(k)
        placed = []
        for n in names:
            if level == "encounter" and n in fold_of_group:
                f = fold_of_group[n]
            else:
                f = int(np.argmin(load + rng.random(k) * 1e-6))
            if level == "encounter":
                fold_of_group.setdefault(n, f)
            load[f] += _size(units[n])
            placed.append((f, units[n]))
        unit_folds[label] = placed
    assignments = []
    for i in range(k):
        val_fold = (i + 1) % k
        assignment: dict[str, str] = {}
        for placed in unit_folds.values():
            keeps_training = any(f not in (i, val_fold) for f, _ in placed)
            for f, rs in placed:
                split = "test" if f == i else ("val" if f == val_fold and keeps_training else "train")
                for r in rs:
                    assignment[r.key] = split
        assignments.append(assignment)
    return assignments, levels


def balance_plan(train_durations: dict, cfg: PrepareConfig) -> dict:
    """Slices per label (or per any key: `prepare` gives (source, label)): `extra_slices` for those below
    the median training duration, else 1; with
    `augment_all`, `extra_slices` for every label (class weights then balance the loss)."""
    if cfg.augment_all:
        return {k: cfg.extra_slices for k in train_durations}
    if not cfg.balance or not train_durations:
        return {k: 1 for k in train_durations}
    median = float(np.median(list(train_durations.values())))
    return {k: (cfg.extra_slices if d < median else 1) for k, d in train_durations.items()}


def plot_class_durations(before: dict[str, float], after: dict[str, float], path: Path) -> bool:
    """Bar plot of training duration per label before and after balancing; False without matplotlib."""
    from .plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return False
    labels = sorted(before, key=lambda k: -before[k])
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(labels) + 2), 4.5))
    ax.bar(x - 0.2, [before[k] / 60 for k in labels], 0.4, label="before balancing")
    ax.bar(x + 0.2, [after.get(k, 0) / 60 for k in labels], 0.4, label="after balancing")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("training audio (minutes)")
    ax.set_yscale("log")
    ax.set_title("Class durations in the training split")
    ax.legend()
    save(fig, path)
    return True


def _duration(rec: Recording) -> float:
    if rec.start_s is not None or rec.end_s is not None:
        end = rec.end_s if rec.end_s is not None else audio.info(rec.path).duration_s
        return end - (rec.start_s or 0.0)
    return rec.duration_s if rec.duration_s is not None else audio.info(rec.path).duration_s


def prepare(
    recordings: list[Recording],
    out: str | Path,
    cfg: PrepareConfig | None = None,
    progress=None,
    on_error=None,
    source: dict | None = None,
    assignment: dict[str, str] | None = None,
    workers: int = 1,
) -> dict:
    """Split, slice, balance, augment and featurise `recordings` into the store at `out`.

    `assignment` (recording key -> train/val/test) replaces the split by encounter, for
    cross-validation folds that the caller has already made by group.

    `progress(done, total, key)` is called after each recording; `on_error(key, message)` for a
    recording that cannot be read (it is skipped, the run goes on). Rerunning on the same folder
    resumes: recordings already written are skipped. `workers` processes compute the features (the
    store is the same whatever their number). Returns the store's config dict.
    """
    cfg = cfg or PrepareConfig()
    if cfg.pad not in PADS:
        raise DatasetError(f"{out}: unknown padding '{cfg.pad}'; use {', '.join(PADS)}")
    if cfg.shift not in SHIFTS:
        raise DatasetError(f"{out}: unknown shift '{cfg.shift}'; use {', '.join(SHIFTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.task == "detection" and cfg.positive not in {r.label for r in recordings}:
        raise DatasetError(f"{out}: detection needs recordings of the positive label '{cfg.positive}'")
    errors: list[dict] = []

    def fail(key: str, msg: str) -> None:
        errors.append({"key": key, "error": msg})
        if on_error:
            on_error(key, msg)

    # durations (from metadata when known, else the file header); unreadable files are reported
    usable: list[Recording] = []
    durations: dict[str, float] = {}
    for r in recordings:
        try:
            durations[r.key] = _duration(r)
            usable.append(r)
        except AudioError as exc:
            fail(r.key, str(exc))
    usable = [replace(r, duration_s=durations[r.key]) for r in usable]
    if assignment is None:
        assignment, split_report = split_by_encounter(usable, cfg.val_frac, cfg.test_frac, cfg.seed, cfg.fallback_split)
    else:
        usable = [r for r in usable if r.key in assignment]
        split_report = _report_of(usable, assignment)
    train_dur: dict[str, float] = defaultdict(float)
    source_dur: dict[tuple[str, str], float] = defaultdict(float)  # balanced per source and label
    for r in usable:
        if assignment[r.key] == "train":
            train_dur[r.label] += durations[r.key]
            source_dur[r.source, r.label] += durations[r.key]
    slices = balance_plan(dict(source_dur), cfg)
    unknown = set(cfg.source_passes) - {r.source for r in usable}
    if unknown:
        raise DatasetError(f"{out}: source_passes names {', '.join(sorted(unknown))}, not a source of these recordings "
                           f"({', '.join(sorted({r.source for r in usable}))})")
    mixer = _background_mixer(usable, assignment, cfg) if cfg.mix_backgrounds > 0 else None
    labels = sorted({r.label for r in usable})
    names = {r.label: r.scientific_name for r in usable}

    config = {
        "format": "deepdive-store/1",
        "task": cfg.task,
        "labels": labels,
        "scientific_names": names,
        "prepare": cfg.to_dict(),
        "source": source or {},
        "split_report": split_report,
        # per label, or per "source: label" in a store of several sources (a recording of no named source: its label)
        "slices_per_label": {f"{src}: {lab}" if src and len({s for s, _ in slices}) > 1 else lab: n
                             for (src, lab), n in slices.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if cfg.source_passes:
        config["passes_per_source"] = dict(cfg.source_passes)
    if mixer is not None:
        config["background_pool"] = {src: len(clips) for src, clips in mixer.pool.items()}
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        if old.get("prepare") != json.loads(json.dumps(config["prepare"])) or old.get("labels") != labels:
            raise DatasetError(f"{out}: holds a store prepared with other settings; choose a new --out folder")
    atomic_write_json(cfg_path, config)

    writer = StoreWriter(out, cfg.features.shape, cfg.shard_size)
    already = done_recordings(out)
    after: dict[str, float] = defaultdict(float)
    window_s = cfg.features.window_s
    feats = cfg.features
    # windows wait here (audio, row, recording index) until a batch's features are computed, in
    # `workers` processes; a recording's newest window stays until the next one (or its end) says
    # whether it is the recording's last
    pending: list[tuple[np.ndarray, dict, int]] = []
    batch = 32 * max(1, workers)

    def write(pool, keep: int = 0) -> None:
        todo = pending[: len(pending) - keep]
        if not todo:
            return
        del pending[: len(todo)]
        ys = [y for y, _, _ in todo]
        if pool is None:
            computed = [feats.compute(y, feats.sr) for y in ys]
        else:
            computed = pool.map(partial(_features, feats), ys, chunksize=max(1, len(ys) // (4 * workers)))
        for feat, (_, row, _) in zip(computed, todo, strict=True):
            writer.add(feat, row)

    with _pool(workers) as pool:
        for i, r in enumerate(usable):
            split = assignment[r.key]
            passes = (cfg.source_passes.get(r.source, slices.get((r.source, r.label), 1))) if split == "train" else 1
            n_windows = 0
            if r.key not in already:
                # a per-recording seed makes a resumed run write exactly what an uninterrupted one would
                rng = np.random.default_rng([cfg.seed, i])

                def windows(rec=r, rng=rng, passes=passes):
                    for p in range(passes):
                        sliced = cfg.shift == "slice" and (rec.duration_s or 0) >= window_s
                        offset = p * window_s / passes if sliced else 0.0
                        for start_s, y in iter_windows(rec, cfg, offset, rng):
                            aug = ""
                            if p > 0:
                                info = {}
                                if cfg.shift == "roll":
                                    info["shift"] = int(rng.integers(1, len(y)))
                                    y = time_shift(y, info["shift"])
                                if mixer is not None and mixer.can_mix(rec.source) and rng.random() < cfg.mix_backgrounds:
                                    y, mixed = mixer(y, rec.source, rng)
                                    info.update(mixed)
                                y, noise_gain = random_noise_and_gain(y, rng, cfg.snr_db, cfg.gain_db)
                                aug = json.dumps({**info, **noise_gain}, separators=(",", ":"))
                            yield y, start_s, aug

                # windows of a recording that fails midway and were written stay unmarked (no `last`), so
                # readers ignore them and a rerun writes the recording again
                try:
                    for y, start_s, aug in windows():
                        pending.append((y, {"key": r.key, "label": r.label, "split": split, "group": r.group,
                                            "start_s": f"{start_s:.3f}", "augment": aug, "last": 0}, i))
                        n_windows += 1
                        if len(pending) > batch:
                            write(pool, keep=1)
                    if n_windows:
                        pending[-1][1]["last"] = 1
                except AudioError as exc:
                    fail(r.key, str(exc))
                    n_windows = 0
                    pending[:] = [item for item in pending if item[2] != i]
            if split == "train":
                after[r.label] += n_windows * window_s if n_windows else durations[r.key] * passes
            if progress:
                progress(i + 1, len(usable), r.key)
        write(pool)
    writer.flush()

    plotted = plot_class_durations(dict(train_dur), dict(after), out / "class_durations.png")
    config["class_durations_s"] = {"before": dict(train_dur), "after": dict(after)}
    config["errors"] = errors
    config["plot"] = "class_durations.png" if plotted else None
    atomic_write_json(cfg_path, config)
    return config


def _features(feats: FeatureConfig, y: np.ndarray) -> np.ndarray:
    """One window's features (in a worker process of `prepare`)."""
    return feats.compute(y, feats.sr)


def _pool(workers: int):
    """Processes computing features for `prepare`, or nothing for one (the features computed in line)."""
    if workers <= 1:
        return contextlib.nullcontext()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _background_mixer(recordings: list[Recording], assignment: dict[str, str], cfg: PrepareConfig) -> BackgroundMix | None:
    """Backgrounds for `mix_backgrounds`: up to `mix_pool` training recordings per source of the
    labels other than the positive one (for species, of every label), one window each, drawn with the
    store's seed; None with a single source."""
    by_source: dict[str, list[Recording]] = defaultdict(list)
    for r in recordings:
        if (assignment.get(r.key) == "train" and (cfg.task != "detection" or r.label != cfg.positive)
                and (not cfg.mix_sources or r.source in cfg.mix_sources)):
            by_source[r.source].append(r)
    if len(by_source) < 2:
        return None
    rng = np.random.default_rng([cfg.seed, 7919])
    n = cfg.features.window_samples
    pool: dict[str, list[np.ndarray]] = {}
    for source in sorted(by_source):
        recs = by_source[source]
        chosen = sorted(rng.choice(len(recs), size=min(cfg.mix_pool, len(recs)), replace=False))
        clips = []
        for i in chosen:
            try:
                y, _ = audio.load(recs[i].path, cfg.features.sr, recs[i].start_s or 0.0,
                                  None if recs[i].end_s is None else recs[i].end_s - (recs[i].start_s or 0.0))
            except AudioError:
                continue
            if len(y):
                clips.append(y[:n] if len(y) >= n else mirror_pad(y, n, 0))
        pool[source] = clips
    return BackgroundMix(pool, cfg.mix_snr_db, window=n)


def format_split_report(report: list[dict]) -> str:
    """A plain-text table of the split per label."""
    lines = [f"{'label':36s} {'level':9s} {'train':>12s} {'val':>12s} {'test':>12s}"]
    for r in report:
        cells = [f"{r[f'{s}_recordings']:3d} /{r[f'{s}_duration_s']:6.0f}s" for s in SPLITS]
        label = f"{r['source']}: {r['label']}" if r.get("source") else r["label"]
        lines.append(f"{label[:36]:36s} {r['level']:9s} " + " ".join(f"{c:>12s}" for c in cells))
    return "\n".join(lines)
