""""None of these": does a recording sound like any species the model knows?

A species model ranks only the species it learnt; silence, ship noise or a species it never heard get
a ranking too. Beside the ranking, deepdive says whether the recording is `known` and how novel it is.

The measure: the model's embedding of each window (the vector its classifier reads) and its
Mahalanobis distance to the nearest species' mean, with one covariance shared by the species (fitted
on the training windows, shrunk towards a multiple of the identity by the Ledoit-Wolf amount). A recording's distance is the
mean of its windows'. Distances are turned into `novelty` (0 to 1) by comparing them with those of
recordings the model did not train on, of the species it knows (the validation split: encounters it
never heard): novelty 0.9 means further from the known species than 90% of those recordings. Past
the reference's 90th percentile the share follows an exponential tail fitted to its top (`TAIL_FROM`),
so novelty goes on rising towards 1 beyond the furthest validation recording rather than stopping
there: recordings of encounters never heard lie there far more often than the validation split
says, and the threshold chosen out of fold must be able to sit among them. A recording is `known`
when its novelty is at most the card's threshold (by default 0.95: 95% of the validation recordings
stay known; the bundle's is chosen in cross-validation, `benchmarks/novelty_threshold.py`). Windows of a scan are judged the same way
against validation windows. A window whose features are flat (digital silence: no sound at all) is
infinitely far from every species: novelty 1.

"No sound event" gate (log-mel models): a window in which no band rises above its own background
further than stationary noise does by chance (`salience`: the 95th percentile of a band's level over
the window's frames minus its median, the largest over the bands) holds nothing to name: it is
treated as no sound at all. White, brown, pink noise, a ship-like hum or near-silence, at any level, rise 5-6.5 dB by
chance; calls, click trains or a passing ship rise further. The gate is the salience that keeps 99% of
the validation recordings (their loudest window) known (`GATE_KEEP`), at most `GATE_CEILING_DB` (7.36
dB: above what stationary noise reaches it would only cost known recordings), stored with the fit. A
recording's distance is the mean over its windows that pass the gate; one with none is novelty 1.

In a prototype on the 16-species model (`benchmarks/open_set.py` measures the product), this
distance separated known-species test cuts from 5 species the model never learnt, buoy noise and
synthetic noise better than the softmax's top probability, the energy score, or the cosine distance
to species centroids or to the nearest training windows.

The fit is stored in the bundle as `novelty.npz` (means, precision matrix, the reference distances)
and summarised in the card (`novelty`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "novelty.npz"
DEFAULT_KEEP = 0.95  # share of known-species validation recordings kept known
GATE_KEEP = 0.99  # share of known-species validation recordings the "no sound event" gate keeps
MIN_FRAMES = 8  # a window with fewer frames of sound is too short to judge: the gate lets it through
# The gate is there against stationary noise, so it never goes above what such noise reaches: in the
# narrowest band (one FFT bin) a noise power is exponential, its 95th percentile 10 log10(ln 20 / ln 2)
# = 6.36 dB above its median; 1 dB more for the spread of a percentile over a window's frames. A
# validation split of only loud recordings would otherwise put the gate where quieter calls of the
# same species fall under it.
GATE_CEILING_DB = 10 * np.log10(np.log(20) / np.log(2)) + 1.0
QUANTILES = 201
# Beyond this share of the reference, a score's percentile follows an exponential tail fitted to the
# reference's top (peaks over a threshold), so that novelty keeps rising past the furthest validation
# recording instead of stopping at 1: out of fold a fifth of the known recordings of one fold can lie
# there, and a threshold that keeps 95% known must be able to sit among them.
TAIL_FROM = 0.9


def salience(feats: np.ndarray) -> np.ndarray:
    """How far each window's loudest band rises above its own background, in dB, (n,): over the frames
    that carry sound (not every band at the spectrogram's floor: the padding of a short recording),
    each band's 95th percentile minus its median, the largest over the bands. `feats`: log-mel windows
    in dB, (n, [1,] bands, frames). inf for a window with fewer than `MIN_FRAMES` frames of sound."""
    x = np.asarray(feats, dtype=np.float32)
    x = x.reshape(len(x), x.shape[-2], x.shape[-1])
    out = np.full(len(x), np.inf)
    if not len(x):
        return out
    floor = x.min(axis=(1, 2), keepdims=True)
    sound = ~(x <= floor + 1e-4).all(axis=1)  # (n, frames)
    whole = sound.all(axis=1)
    if whole.any():
        q = np.percentile(x[whole], [50, 95], axis=2)
        out[whole] = (q[1] - q[0]).max(axis=1)
    for i in np.flatnonzero(~whole & (sound.sum(axis=1) >= MIN_FRAMES)):
        q = np.percentile(x[i][:, sound[i]], [50, 95], axis=1)
        out[i] = float((q[1] - q[0]).max())
    return out


def no_sound(feats: np.ndarray, gate: float = -np.inf) -> np.ndarray:
    """Which windows hold nothing to name, (n,): flat features (digital silence) or, with a finite
    `gate`, no band rising above its background further than that (`salience` below it)."""
    x = np.asarray(feats).reshape(len(feats), -1)
    flat = np.ptp(x, axis=1) == 0 if x.size else np.zeros(len(feats), bool)
    if np.isfinite(gate):
        flat |= salience(feats) < gate
    return flat


@dataclass
class Novelty:
    means: np.ndarray  # (classes with training windows, d)
    precision: np.ndarray  # (d, d)
    recording_ref: np.ndarray  # sorted quantiles of validation recordings' distances
    window_ref: np.ndarray  # sorted quantiles of validation windows' distances
    threshold: float = DEFAULT_KEEP
    shrinkage: float = 0.0
    # the softmax's doubt (`_doubt`), where the fit has it: its validation quantiles, and those of the
    # combined score (the larger of the two percentiles, or surprises), which `novelty` is then a percentile of
    doubt_recording_ref: np.ndarray | None = None
    doubt_window_ref: np.ndarray | None = None
    combined_recording_ref: np.ndarray | None = None
    combined_window_ref: np.ndarray | None = None
    gate: float = -np.inf  # the "no sound event" gate, dB of `salience` (-inf: none, e.g. a fit without one)
    # percentiles with an exponential tail past the reference's top (`TAIL_FROM`), the combined reference
    # in surprise units (-ln(1 - percentile)); False: a fit made before, whose novelty stops at 1
    tail: bool = False

    def no_sound(self, feats: np.ndarray) -> np.ndarray:
        return no_sound(feats, self.gate)

    def distances(self, emb: np.ndarray) -> np.ndarray:
        """Each window's squared Mahalanobis distance to the nearest species' mean, (n,)."""
        emb = np.asarray(emb, dtype=np.float64)
        silent = np.isnan(emb).any(axis=1)  # a window with no sound at all (see Bundle.predict_with_novelty)
        emb = np.where(silent[:, None], 0.0, emb)
        d = (emb[:, None, :] - self.means[None, :, :]).reshape(-1, self.means.shape[1])
        dist = np.sum((d @ self.precision) * d, axis=1).reshape(len(emb), -1).min(axis=1)
        dist[silent] = np.inf
        return dist

    @staticmethod
    def _percentile(dist: np.ndarray | float, ref: np.ndarray) -> np.ndarray:
        """Share of the reference below each distance (0 to 1), interpolated between the quantiles."""
        return np.interp(dist, ref, np.linspace(0.0, 1.0, len(ref)), left=0.0, right=1.0)

    def _surprise(self, x: np.ndarray | float, ref: np.ndarray) -> np.ndarray:
        """-ln(1 - percentile) of each score against a reference (sorted quantiles). With `tail`, past
        the reference's `TAIL_FROM` quantile u the percentile is 1 - (1 - TAIL_FROM) exp(-(x - u) / s),
        s the mean excess of the reference's top over u: it goes on rising past the furthest reference
        (inf only for an infinite score). Without, the plain percentile (inf from the furthest on)."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore"):
            plain = -np.log1p(-self._percentile(x, ref))
        if not self.tail:
            return plain
        k = int(round(TAIL_FROM * (len(ref) - 1)))
        u = float(ref[k])
        # a reference without a spread at its top: anything past it is far past it
        scale = max(float(np.mean(ref[k:] - u)), 1e-9 * max(1.0, abs(u)))
        tail = -np.log(1.0 - TAIL_FROM) + (x - u) / scale
        return np.where(x > u, tail, plain)

    @staticmethod
    def _share(surprise: np.ndarray | float) -> np.ndarray:
        """A surprise back to a percentile, 0 to 1."""
        return -np.expm1(-np.asarray(surprise, dtype=np.float64))

    def _combined(self, distance: np.ndarray | float, doubt: np.ndarray | float, which: str) -> np.ndarray:
        """Novelty from a distance and a doubt: the larger of their surprises against their own
        references, as a percentile of the validation's (for `which` = recording or window)."""
        ref = {"recording": (self.recording_ref, self.doubt_recording_ref, self.combined_recording_ref),
               "window": (self.window_ref, self.doubt_window_ref, self.combined_window_ref)}[which]
        if not self.tail:  # a fit made before the tail: the larger of the percentiles, a percentile of those
            both = np.maximum(self._percentile(distance, ref[0]), self._percentile(doubt, ref[1]))
            return self._percentile(both, ref[2])
        both = np.maximum(self._surprise(distance, ref[0]), self._surprise(doubt, ref[1]))
        return self._share(self._surprise(both, ref[2]))

    def _doubt(self, probs: np.ndarray) -> np.ndarray:
        """The softmax's doubt of each row of probabilities (a recording's mean, or windows). Before the
        tail: 1 - the top probability. With it, on a scale without a ceiling, so that the tail can tell
        noise that a model trained with outlier exposure spreads evenly over every species (the doubt's
        ceiling, 1 - 1/K) from anything the validation recordings reach: -ln of how far the top
        probability stands above the even share 1/K, relative to 1 - 1/K (27.6 for an even spread). The
        order is the same, so the shares of the validation recordings are too."""
        p = np.asarray(probs, dtype=np.float64)
        top = p.max(axis=-1)
        if not self.tail:
            return 1.0 - top
        even = 1.0 / p.shape[-1]
        return -np.log(np.clip((top - even) / (1.0 - even), 1e-12, 1.0))

    @property
    def uses_doubt(self) -> bool:
        return self.combined_recording_ref is not None

    def recording(self, emb: np.ndarray, probs: np.ndarray | None = None) -> float:
        """Novelty of a recording from its windows' embeddings (and probabilities, for a fit that
        also weighs the softmax's doubt): over its windows with sound (a NaN embedding has none);
        1 for a recording with none."""
        dist = self.distances(emb)
        sound = np.isfinite(dist)
        if not sound.any():
            return 1.0
        distance = float(dist[sound].mean())
        if not self.uses_doubt or probs is None:
            return float(self._share(self._surprise(distance, self.recording_ref)))
        doubt = float(self._doubt(np.asarray(probs)[sound].mean(axis=0)))
        return float(self._combined(distance, doubt, "recording"))

    def windows(self, emb: np.ndarray, probs: np.ndarray | None = None) -> np.ndarray:
        """Novelty of each window."""
        dist = self.distances(emb)
        if not self.uses_doubt or probs is None:
            return self._share(self._surprise(dist, self.window_ref))
        out = self._combined(dist, self._doubt(probs), "window")
        return np.where(np.isfinite(dist), out, 1.0)

    def save(self, path: str | Path) -> None:
        import io

        from .store import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, means=self.means.astype(np.float32), precision=self.precision.astype(np.float32),
                 recording_ref=self.recording_ref, window_ref=self.window_ref, threshold=np.array(self.threshold),
                 shrinkage=np.array(self.shrinkage), gate=np.array(self.gate), tail=np.array(self.tail),
                 **({"doubt_recording_ref": self.doubt_recording_ref, "doubt_window_ref": self.doubt_window_ref,
                     "combined_recording_ref": self.combined_recording_ref,
                     "combined_window_ref": self.combined_window_ref} if self.uses_doubt else {}))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Novelty:
        z = np.load(path)
        doubt = [z[k] if k in z.files else None for k in ("doubt_recording_ref", "doubt_window_ref",
                                                          "combined_recording_ref", "combined_window_ref")]
        return cls(z["means"].astype(np.float64), z["precision"].astype(np.float64), z["recording_ref"],
                   z["window_ref"], float(z["threshold"]), float(z["shrinkage"]), *doubt,
                   gate=float(z["gate"]) if "gate" in z.files else -np.inf,
                   tail=bool(z["tail"]) if "tail" in z.files else False)


def shrunk_covariance(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The covariance of centred rows `x`, shrunk towards (trace / d) I by the Ledoit-Wolf amount
    (Ledoit and Wolf 2004): with few windows for many dimensions the sample covariance is singular,
    and the shrinkage grows as the windows get fewer. Returns (covariance, shrinkage)."""
    n, d = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / d
    target = mu * np.eye(d)
    delta = float(np.sum((s - target) ** 2))
    sq = np.sum(x**2, axis=1)
    beta = float((np.sum(sq**2) - 2 * np.einsum("id,de,ie->", x, s, x) + n * np.sum(s**2)) / n**2)
    shrink = 1.0 if delta <= 0 else float(np.clip(beta / delta, 0.0, 1.0))
    return (1 - shrink) * s + shrink * target + 1e-9 * max(mu, 1e-12) * np.eye(d), shrink


def fit(train_emb: np.ndarray, train_labels: np.ndarray, n_classes: int, val_emb: list[np.ndarray],
        keep: float = DEFAULT_KEEP, val_probs: list[np.ndarray] | None = None, gate: float = -np.inf) -> Novelty:
    """Class means and shared covariance from training windows (`train_emb` (n, d), their class
    indices); the reference distances from validation recordings (a list of (windows, d) arrays; NaN
    rows for windows without sound, which do not count). `keep`: the novelty threshold, the share of
    validation recordings kept known. With `val_probs` (the same recordings' window probabilities),
    the softmax's doubt is weighed too. `gate`: the fit's "no sound event" gate (see `gate_for`)."""
    train_emb = np.asarray(train_emb, dtype=np.float64)
    present = [c for c in range(n_classes) if np.any(train_labels == c)]  # a class without windows has no mean
    means = np.stack([train_emb[train_labels == c].mean(axis=0) for c in present])
    row = {c: i for i, c in enumerate(present)}
    cov, shrink = shrunk_covariance(train_emb - means[[row[c] for c in train_labels]])
    model = Novelty(means, np.linalg.inv(cov), np.zeros(2), np.zeros(2), keep, shrink, gate=gate, tail=True)
    q = np.linspace(0.0, 1.0, QUANTILES)
    dists = [model.distances(e) for e in val_emb]
    sound = [np.isfinite(d) for d in dists]
    heard = [i for i, m in enumerate(sound) if m.any()]  # recordings with a window of sound
    rec = np.array([dists[i][sound[i]].mean() for i in heard])
    win = np.concatenate([d[m] for d, m in zip(dists, sound, strict=True)])
    model.recording_ref, model.window_ref = np.quantile(rec, q), np.quantile(win, q)
    if val_probs is not None:
        doubt_rec = np.array([model._doubt(val_probs[i][sound[i]].mean(axis=0)) for i in heard])
        doubt_win = np.concatenate([model._doubt(p[m]) for p, m in zip(val_probs, sound, strict=True)])
        model.doubt_recording_ref, model.doubt_window_ref = np.quantile(doubt_rec, q), np.quantile(doubt_win, q)
        # in surprise units (-ln(1 - percentile)), where the tails of the two can still be told apart
        both_rec = np.maximum(model._surprise(rec, model.recording_ref), model._surprise(doubt_rec, model.doubt_recording_ref))
        both_win = np.maximum(model._surprise(win, model.window_ref), model._surprise(doubt_win, model.doubt_window_ref))
        model.combined_recording_ref, model.combined_window_ref = np.quantile(both_rec, q), np.quantile(both_win, q)
    return model


def calls_source(store) -> str | None:
    """The source name of the up-calls a store was prepared with (`prepare watkins --calls`), or None.
    Its rows' groups start with it and a slash (`datasets.as_sources`)."""
    calls = (store.config.get("source") or {}).get("calls")
    if not calls:
        return None
    return calls.get("source") or Path(calls["path"]).resolve().name


def fit_store(bundle, store, keep: float = DEFAULT_KEEP, max_windows: int = 20000, seed: int = 0,
              reference_calls: bool = False) -> tuple[Novelty, dict]:
    """Fit a bundle's novelty on its training store: the training windows as stored (augmented copies
    too: they are what the model learnt; at most `max_windows`, drawn at random), the validation
    recordings as the reference. Returns the fit and the card's summary.

    The reference stands for recordings of encounters never heard. The up-calls added with `prepare
    watkins --calls` are not such recordings: one recorder (the challenge's buoys), split clip by clip, so
    that their validation clips share buoys and days with the training ones, and they would be a large
    share of the reference (75 of 197 recordings with 1,000 up-calls). Their buoys' noise then lies
    within it: with them, 93% of the buoy noise clips were "known", without, 31% (50% for a second
    seed; docs/species.md). So
    they are left out of the reference (still in the training windows: they are the species' windows),
    unless `reference_calls`."""
    from .errors import DatasetError

    index = {lab: i for i, lab in enumerate(bundle.labels)}
    tr = [i for i in store.indices("train") if store.rows[i]["label"] in index]
    va = [i for i in store.indices("val") if store.rows[i]["label"] in index]
    calls = None if reference_calls else calls_source(store)
    if calls is not None:
        va = [i for i in va if not store.rows[i]["group"].startswith(calls + "/")]
    if not tr or not va:
        raise DatasetError("novelty needs training and validation windows (a store prepared with --val-frac above 0"
                           + (f"; the {calls} up-calls are no reference" if calls else "") + ")")
    rng = np.random.default_rng(seed)
    if len(tr) > max_windows:
        tr = sorted(rng.choice(tr, max_windows, replace=False).tolist())
    emb = _embed(bundle, store, tr)
    y = np.array([index[store.rows[i]["label"]] for i in tr])
    by_rec, left_out = held_out_validation(bundle, store, va)
    va_feats = [store.batch(idx) for idx in by_rec.values()]
    gate = gate_for(va_feats) if bundle.features.kind == "log-mel" else -np.inf
    parts = []
    for f in va_feats:
        e = np.array(bundle.embed(f), dtype=np.float32)
        e[no_sound(f, gate)] = np.nan
        parts.append(e)
    training = bundle.card.get("training", {})
    doubt = bool(training.get("outliers") or training.get("synthetic_outliers"))
    probs = None
    if doubt:
        va_probs = bundle.predict(np.concatenate(va_feats))
        probs, start = [], 0
        for idx in by_rec.values():
            probs.append(va_probs[start : start + len(idx)])
            start += len(idx)
    model = fit(emb, y, len(bundle.labels), parts, keep, probs, gate)
    method = ("Mahalanobis distance of the window embeddings to the nearest species mean (shared covariance, "
              f"Ledoit-Wolf shrinkage {model.shrinkage:.3f}); a recording's distance is its windows' mean")
    if np.isfinite(gate):
        method += (f"; windows in which no band rises more than {gate:.2f} dB above its median (the 95th percentile of "
                   "its level over the window; stationary noise rises 5-6.5 dB by chance) hold no sound event and do not "
                   f"count, a recording with none is novelty 1 (the gate keeps {GATE_KEEP:.0%} of the validation "
                   "recordings)")
    if doubt:
        method += ("; and the softmax's doubt (-ln((top probability - 1/K) / (1 - 1/K)), which rises without a ceiling as "
                   "the probabilities spread evenly: trained with outlier exposure, the model spreads its "
                   "probabilities over noise); the score is the larger of the two, each against its own validation reference")
    summary = {
        "method": method,
        "novelty": "share of the validation recordings (encounters never trained on, species it knows) closer to the "
                   "known species" + (" (by the combined score)" if doubt else "") + f"; past their {TAIL_FROM:.0%} "
                   "quantile an exponential tail fitted to their top, so that it keeps rising beyond the furthest",
        "threshold": keep,
        **({"gate_db": round(gate, 3)} if np.isfinite(gate) else {}),
        "rule": f"known when novelty <= {keep:g}"
                + (f": keeps {keep:.0%} of the validation recordings known" if keep == DEFAULT_KEEP else
                   " (the threshold given to the training, chosen in cross-validation to keep a share of the "
                   "known recordings of unheard encounters known: benchmarks/novelty_threshold.py)"),
        **({"reference": f"validation recordings of the other sources: the up-calls of {calls} (one recorder, split "
                         "clip by clip: no encounters never heard) are left out"} if calls else {}),
        "fitted_on": {"training_windows": len(tr), "validation_recordings": len(parts),
                      "validation_windows": int(sum(len(p) for p in parts)),
                      "validation_recordings_left_out_as_trained_on": len(left_out)},
        "file": FILE,
    }
    return model, summary


def score_split(bundle, store, split: str = "test", novelty: Novelty | None = None) -> dict[str, float]:
    """{recording key: novelty} by a bundle's own novelty fit for a store's recordings of one split
    (windows as recorded, not the augmented copies), as `classify` judges them. Cross-validation scores
    its test folds with it, so that the threshold can be checked (and chosen) on encounters or
    recorders a model never heard. `novelty`: another fit of the same model to judge by (one made
    again with today's code, benchmarks/novelty_threshold.py)."""
    novelty = bundle.novelty if novelty is None else novelty
    by_rec: dict[str, list[int]] = {}
    for i in store.indices(split):
        if not store.rows[i].get("augment"):
            by_rec.setdefault(store.rows[i]["key"], []).append(i)
    out = {}
    for key, idx in by_rec.items():
        feats = store.batch(idx)
        if novelty is bundle.novelty:
            probs, emb = bundle.predict_with_novelty(feats, batch_size=256)
        else:  # windows without sound by that fit's own gate, not the bundle's
            probs = bundle.predict(feats, batch_size=256)
            emb = np.array(bundle.embed(feats, 256), dtype=np.float32)
            emb[novelty.no_sound(feats)] = np.nan
        out[key] = round(float(novelty.recording(emb, probs)), 9)
    return out


def threshold_for(novelties, keep: float) -> float:
    """The novelty threshold that keeps `keep` of these known-species recordings known (e.g. out-of-
    fold novelties from cross-validation): their `keep` quantile, at least the default. Novelty is 1
    only for a recording with no sound event (and, for a fit made before the tail, beyond every
    validation recording): where more than 1 - `keep` of them are there, no threshold below 1 keeps
    `keep` known, and 1 would flag nothing; the threshold is then the largest novelty below 1 among
    them, which keeps all it can and flags only those at 1."""
    v = np.sort(np.asarray(list(novelties), dtype=np.float64))
    v = v[np.isfinite(v)]
    if not len(v):
        return DEFAULT_KEEP
    q = float(np.quantile(v, keep))
    if q >= 1.0:
        below = v[v < 1.0]
        q = float(below[-1]) if len(below) else DEFAULT_KEEP
    return max(DEFAULT_KEEP, q)


def gate_for(recordings: list[np.ndarray], keep: float = GATE_KEEP) -> float:
    """The "no sound event" gate from known-species recordings (a list of their log-mel windows): the
    salience that keeps `keep` of them with at least one window at or above it, at most
    `GATE_CEILING_DB` (what stationary noise reaches)."""
    loudest = np.array([salience(f).max() for f in recordings if len(f)])
    return float(min(np.quantile(loudest, 1.0 - keep), GATE_CEILING_DB)) if len(loudest) else -np.inf


def held_out_validation(bundle, store, va: list[int]) -> tuple[dict[str, list[int]], set[str]]:
    """The store's validation windows (not augmented) by recording, and the recordings left out: a
    store prepared again after the data grew may deal a unit the model trained on (by its card) to
    validation, and such recordings are no reference for encounters it never heard."""
    trained = {(r["label"], u) for r in bundle.card.get("split", {}).get("report", [])
               for u in (r.get("train_units") if isinstance(r.get("train_units"), list) else [])}
    by_rec: dict[str, list[int]] = {}
    left_out = set()
    for i in va:
        row = store.rows[i]
        if (row["label"], row["group"]) in trained:
            left_out.add(row["key"])
        elif not row.get("augment"):
            by_rec.setdefault(row["key"], []).append(i)
    return by_rec, left_out


def _embed(bundle, store, idx: list[int], batch: int = 256) -> np.ndarray:
    out = [bundle.embed(store.batch(idx[i : i + batch])) for i in range(0, len(idx), batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def add_to_bundle(bundle_dir: str | Path, store_path: str | Path, keep: float = DEFAULT_KEEP) -> dict:
    """Fit novelty for a species bundle on its store and write `novelty.npz` and the card's `novelty`."""
    import json

    from .bundle import Bundle
    from .store import FeatureStore, atomic_write_json

    bundle_dir = Path(bundle_dir)
    bundle = Bundle.load(bundle_dir, precision="fp32")
    model, summary = fit_store(bundle, FeatureStore(store_path), keep)
    model.save(bundle_dir / FILE)
    card = json.loads((bundle_dir / "card.json").read_text(encoding="utf-8"))
    card["novelty"] = summary
    atomic_write_json(bundle_dir / "card.json", card)
    return summary


def add_judge(bundle_dir: str | Path, judge: str | Path = "species") -> dict:
    """Let a species bundle without a novelty fit of its own say "none of these" by another species
    model's fit (`Bundle.novelty_judge`): the card's `novelty` names the judge (a bundled name, or a
    folder's absolute path) and its threshold. For the head over BirdNET's embeddings, in which noise lies
    among the species' windows (docs/species.md), the bundled CNN judges: it knows the same species, and
    each recording (or a scan's window) is also run through it, at a fraction of BirdNET's cost."""
    import json

    from .bundle import BUNDLED, Bundle
    from .store import atomic_write_json

    bundle_dir = Path(bundle_dir)
    judge = str(judge) if str(judge) in BUNDLED else str(Path(judge).resolve())
    other = check_judge(Bundle.load(bundle_dir), judge)
    card = json.loads((bundle_dir / "card.json").read_text())
    theirs = other.card["novelty"]
    card["novelty"] = {
        "judge": str(judge),
        "method": f"judged by the species model {judge} (it knows the same species), on its own windows of the "
                  f"recording: {theirs['method']}",
        "novelty": theirs.get("novelty", ""),
        "threshold": other.novelty.threshold,
        "rule": f"known when the judge's novelty <= {other.novelty.threshold:g}",
    }
    (bundle_dir / FILE).unlink(missing_ok=True)  # a fit of its own would take precedence
    atomic_write_json(bundle_dir / "card.json", card)
    return card["novelty"]


def check_judge(bundle, judge: str):
    """The species model named `judge` (a bundled name or a folder), loaded, if it can judge "none of
    these" for `bundle`: it has a novelty fit of its own and knows the same species; else ModelError."""
    from .bundle import resolve
    from .errors import ModelError

    other = resolve(judge, "species")
    if other.novelty is None or other.labels != bundle.labels:
        why = ("has no novelty fit of its own" if other.novelty is None else
               f"knows other species ({len(other.labels)} against {len(bundle.labels)})")
        raise ModelError(f"{bundle.path}: cannot be judged \"none of these\" by {judge}, which {why}; a judge "
                         "must know the same species (novelty.add_judge)")
    return other
