"""Training: a torch loop over a prepared store, with early stopping, class weights, a seeded run,
a progress bar, a history CSV and plot, and export to a bundle (model.onnx + card.json + model.pt).

The same loop trains species rankers and detectors (a detector is a two-class model whose card names
the positive label and a decision threshold chosen on the validation split). Transfer learning:
`init` loads the matching layers of another model's weights (a bundle folder with model.pt, or a
.pt state dict) before training; `freeze_backbone` then trains only the classifier head.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .augment import noise_windows, recorder_response
from .features import from_dict as features_from_dict
from .models import build, freeze_backbone, load_matching
from .prepare import store_features
from .store import FeatureStore, atomic_write_bytes, atomic_write_json, atomic_write_text


@dataclass
class TrainConfig:
    model: str = "deepdive-resnet"
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-3
    patience: int = 8
    seed: int = 0
    class_weights: bool = True
    spec_augment: bool = True
    mixup: float = 0.4
    band_cut: float = 0.0  # probability of cutting a training window's top bands (see _spec_augment)
    pitch: float = 0.0  # each training window's rows scaled by up to this much (0.2: x 1/1.2 to 1.2; see _spec_augment)
    freq_mixstyle: float = 0.0  # probability that a training window takes another's per-band statistics (_freq_mixstyle)
    mixstyle_alpha: float = 0.3  # with freq_mixstyle: the Beta(alpha, alpha) of the mixing weight
    recorder: float = 0.0  # probability that a training window is heard through a random recorder (augment.recorder_response)
    noise: str = ""  # with recorder > 0: a folder of background recordings mixed under some of those windows
    recorder_bands: bool = True  # with recorder > 0: also cut the bands above (or below) a random one at times
    outliers: str = ""  # outlier exposure: a folder of recordings of none of the classes (see _outlier_bank)
    outlier_weight: float = 0.5  # the weight of their loss (cross-entropy to the uniform distribution)
    outlier_share: float = 0.25  # outlier windows per batch, as a share of the batch size
    synthetic_outliers: int = 0  # outlier exposure also to this many windows of coloured noise (white to brown)
    threads: int = 0
    device: str = "cpu"  # where the network trains: cpu or cuda (the bundle it exports runs on the CPU either way)
    model_options: dict = field(default_factory=dict)  # e.g. {"width": 0.25} for xception
    init: str = ""  # transfer learning: a bundle folder with model.pt, or a .pt state dict
    freeze_backbone: bool = False
    ensemble: int = 1  # train this many models (other seeds) and ship their average
    threshold_folds: int = 0  # detection: choose the threshold on out-of-fold scores of the training tapes (k folds)
    threshold_recall: float = 0.0  # detection: the threshold that finds this share of those calls (0: maximum F1)
    linear_c: tuple[float, ...] = (0.01, 0.05, 0.2)  # embedding-linear: inverse L2 strengths, chosen on validation loss
    teacher: str = ""  # distillation: a store of the same windows with a teacher's features (e.g. BirdNET's), see _teacher_targets
    teacher_weight: float = 1.0  # the weight of the distillation loss (features: mean squared error per component; probabilities: T^2 KL)
    teacher_dims: int = 64  # the teacher's features reduced to this many principal components
    teacher_targets: str = "features"  # what is distilled: the teacher's "features", or "probabilities" of a head on them
    teacher_temperature: float = 4.0  # with "probabilities": both distributions softened by this temperature
    novelty_threshold: float = 0.95  # species: "none of these" above this novelty (see novelty.threshold_for)
    novelty_from: str = ""  # species without a fit of their own (BirdNET heads): judged by this model's (novelty.add_judge)


def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _spec_augment(x: torch.Tensor, gen: torch.Generator, band_cut: float = 0.0, pitch: float = 0.0) -> torch.Tensor:
    """Random time roll, one frequency mask and one time mask per window (training only).

    With probability `band_cut` a window also loses every band above a random one (kept: 25-100% of
    the bands), as if recorded at a lower sample rate, so that the model cannot take the empty top of
    a spectrogram (which in the Watkins cuts tells one recorder from another) for a species' trait.

    With `pitch` > 0 every window's frequency axis is first scaled about its lowest row by a factor
    drawn log-uniformly from 1 / (1 + pitch) to 1 + pitch (row r takes the value at row r / factor,
    interpolated; rows that would come from above the top are set to the floor). On the detector's
    linear spectrogram from 0 Hz this is a change of pitch, the same call sung higher or lower, as
    the right whales' up-calls differ from one population and decade to another."""
    n, f, t = x.shape
    x = x.clone()
    floor = x.amin(dim=(1, 2), keepdim=True)
    if pitch > 0:
        x = _pitch_scale(x, torch.exp((torch.rand(n, generator=gen) * 2 - 1) * math.log1p(pitch)), floor)
    if band_cut > 0:
        cut = torch.rand(n, generator=gen) < band_cut
        keep = torch.randint(max(1, f // 4), f + 1, (n,), generator=gen)
        above = torch.arange(f)[None, :] >= keep[:, None]
        x = torch.where((cut[:, None] & above)[:, :, None], floor, x)
    shifts = torch.randint(0, t, (n,), generator=gen)
    idx = (torch.arange(t)[None, :] - shifts[:, None]) % t
    x = torch.gather(x, 2, idx[:, None, :].expand(n, f, t))
    for i in range(n):
        fw = int(torch.randint(0, max(1, f // 8), (1,), generator=gen))
        f0 = int(torch.randint(0, f - fw + 1, (1,), generator=gen))
        x[i, f0 : f0 + fw, :] = floor[i]
        tw = int(torch.randint(0, max(1, t // 8), (1,), generator=gen))
        t0 = int(torch.randint(0, t - tw + 1, (1,), generator=gen))
        x[i, :, t0 : t0 + tw] = floor[i]
    return x


def _freq_mixstyle(x: torch.Tensor, rng: np.random.Generator, p: float, alpha: float = 0.3) -> torch.Tensor:
    """Frequency-wise MixStyle (Zhou et al. 2021, with the statistics per band as Kim et al. 2022 and the
    DCASE device-generalisation entries take them): with probability `p` a window (n, bands, frames) is
    standardised band by band over time and given back a mixture of its own and another window's band
    means and standard deviations, lam * own + (1 - lam) * other, lam ~ Beta(alpha, alpha). A band's
    mean over time is what a recorder's frequency response moves, its spread what the recorder's noise
    floor in that band moves (a band under the floor is flat): the window keeps its call's shape but is
    heard with another window's colouring and band-by-band contrast. The result is held within the
    batch's range of values (the features' floor and peak): a band of little spread given a large one
    would otherwise rise far above the peak, and the PCEN channel's power overflow."""
    n = x.shape[0]
    pick = rng.random(n) < p
    if n < 2 or not pick.any():
        return x
    mu = x.mean(dim=2, keepdim=True)
    sig = (x.var(dim=2, keepdim=True) + 1e-6).sqrt()
    lam = torch.from_numpy(np.where(pick, rng.beta(alpha, alpha, size=n), 1.0).astype(np.float32)).to(x.dtype)[:, None, None]
    perm = torch.from_numpy(rng.permutation(n))
    mix_mu = lam * mu + (1 - lam) * mu[perm]
    mix_sig = lam * sig + (1 - lam) * sig[perm]
    return ((x - mu) / sig * mix_sig + mix_mu).clamp(float(x.min()), float(x.max()))


def _pitch_scale(x: torch.Tensor, factor: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Windows `x` (n, rows, frames) with row r taking the value at row r / factor[i] (linear
    interpolation); rows whose source lies above the top row take `floor` (n, 1, 1)."""
    n, f, t = x.shape
    src = torch.arange(f, dtype=x.dtype)[None, :] / factor[:, None].to(x.dtype)
    lo = src.floor().clamp(max=f - 1).long()
    hi = (lo + 1).clamp(max=f - 1)
    w = (src - lo).clamp(0.0, 1.0)[:, :, None]
    scaled = torch.gather(x, 1, lo[:, :, None].expand(n, f, t)) * (1 - w) + torch.gather(x, 1, hi[:, :, None].expand(n, f, t)) * w
    return torch.where((src > f - 1)[:, :, None], floor.expand(n, f, t), scaled)


def _recorder_setup(store: FeatureStore, cfg: TrainConfig) -> dict | None:
    """The keyword arguments of `recorder_response` for this store (None: no recorder augmentation)."""
    if not cfg.recorder:
        return None
    if not 0.0 < cfg.recorder <= 1.0:
        from .errors import DeepdiveError

        raise DeepdiveError(f"recorder augmentation {cfg.recorder}: give a probability from 0 to 1")
    feats = features_from_dict(store_features(store.config["prepare"]))
    if feats.kind == "birdnet" or not hasattr(feats, "top_db"):
        return None  # not a dB spectrogram
    noise = noise_windows(cfg.noise, feats, seed=cfg.seed) if cfg.noise else None
    return {"top_db": feats.top_db, "noise": noise, "band_limits": cfg.recorder_bands}


def _outlier_bank(store: FeatureStore, cfg: TrainConfig) -> np.ndarray | None:
    """Outlier exposure (Hendrycks et al., 2019): feature windows of recordings that hold none of the
    classes (for the species models, ocean noise without a call), added to every batch with the
    uniform distribution as their target, so that a model meeting plain noise spreads its
    probabilities instead of naming a species, and its embedding of noise moves away from every
    species' (which `novelty` measures). The windows: `cfg.outliers` (a folder) and
    `cfg.synthetic_outliers` windows of coloured noise (spectral slopes from -9 to +3 dB per octave:
    brown to a little bluer than white). None without either."""
    if not cfg.outliers and not cfg.synthetic_outliers:
        return None
    feats = features_from_dict(store_features(store.config["prepare"]))
    if feats.kind == "birdnet" or not hasattr(feats, "top_db"):
        from .errors import DeepdiveError

        raise DeepdiveError("outliers: only for models of spectrogram features")
    if not 0 < cfg.outlier_share <= 1 or cfg.outlier_weight < 0:
        from .errors import DeepdiveError

        raise DeepdiveError("outliers: the share per batch must be in (0, 1] and the weight not negative")
    pad = store.config["prepare"].get("pad", "zeros")  # short outlier clips padded as the store pads its own
    banks = [noise_windows(cfg.outliers, feats, seed=cfg.seed, pad=pad)] if cfg.outliers else []
    if cfg.synthetic_outliers:
        from .synth import coloured_noise

        rng = np.random.default_rng(cfg.seed + 7)
        n = int(round(feats.window_s * feats.sr))
        banks.append(np.stack([feats.compute(coloured_noise(n, feats.sr, rng, rng.uniform(-9.0, 3.0)), feats.sr)
                               for _ in range(cfg.synthetic_outliers)]).astype(np.float32))
    return np.concatenate(banks)


def _window_slots(rows: list[dict]) -> list[tuple]:
    """Each window's slot in its store's plan: (file, its n-th window in the store, augmented or not)."""
    seen: dict[str, int] = {}
    slots = []
    for r in rows:
        n = seen.get(r["key"], 0)
        seen[r["key"]] = n + 1
        slots.append((r["key"], n, bool(r.get("augment"))))  # the augmentation's draws may differ between stores
    return slots


def _teacher_targets(store: FeatureStore, cfg: TrainConfig, tr: list[int]) -> np.ndarray | None:
    """Distillation targets: for each window of `store`, the teacher's features of the same window
    (`cfg.teacher`: a store prepared from the same recordings with the same split, seed and plan,
    with other features, e.g. `--features birdnet`), reduced to `cfg.teacher_dims` principal
    components of the training windows and whitened (each component of unit variance there).

    The student learns to predict them from its embedding through a linear map that is not
    exported, while it learns the species: a small network may thus take on the way a large pretrained
    model describes sound (BirdNET's, with a linear head, ranks encounters never heard better than our
    networks; on the Watkins species the distilled network has not, see docs/species.md), and, since
    the teacher heard the clean window while the
    student hears it through a random recorder (`recorder`), to describe it the same whatever the
    recorder. Windows are matched by their slot in the plan: the n-th window of a file in one store
    is the n-th in the other (same start; where the plan draws at random, the position of a short cut
    in its padded window, the noise and gain added, the two stores' draws can differ). Every window of `tr`
    needs one. None without a teacher."""
    if not cfg.teacher:
        return None
    from .errors import DeepdiveError

    if cfg.teacher_targets not in ("features", "probabilities"):  # before the teacher's store is read
        raise DeepdiveError(f"teacher_targets: {cfg.teacher_targets!r} is neither 'features' nor 'probabilities'")
    teacher = FeatureStore(cfg.teacher)
    where = {slot: i for i, slot in enumerate(_window_slots(teacher.rows))}
    idx = [where.get(slot, -1) for slot in _window_slots(store.rows)]
    missing = sum(1 for i in tr if idx[i] < 0)
    if missing:
        raise DeepdiveError(f"teacher {cfg.teacher}: {missing} of the {len(tr)} training windows are not in it; "
                            "prepare it from the same recordings with the same split, seed and options")
    if any(teacher.rows[idx[i]]["label"] != store.rows[i]["label"] or teacher.rows[idx[i]]["split"] != store.rows[i]["split"]
           for i in tr):
        raise DeepdiveError(f"teacher {cfg.teacher}: its windows are labelled or split otherwise; prepare it from the same "
                            "recordings with the same split, seed and options")
    have = [i for i in range(len(store.rows)) if idx[i] >= 0]
    x = teacher.batch([idx[i] for i in have]).reshape(len(have), -1).astype(np.float64)
    pos = {i: k for k, i in enumerate(have)}
    x_tr = x[[pos[i] for i in tr]]
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    if cfg.teacher_targets == "probabilities":
        return _teacher_probabilities(store, cfg, tr, have, (x - mu) / sd, (x_tr - mu) / sd)
    _, sv, vt = np.linalg.svd((x_tr - mu) / sd, full_matrices=False)
    k = max(1, min(cfg.teacher_dims, len(sv)))
    scale = sv[:k] / np.sqrt(max(len(tr) - 1, 1))
    proj = ((x - mu) / sd) @ vt[:k].T / np.maximum(scale, 1e-6)
    feats = np.full((len(store.rows), k), np.nan, dtype=np.float32)
    feats[have] = proj.astype(np.float32)
    return feats


def _teacher_probabilities(store: FeatureStore, cfg: TrainConfig, tr: list[int], have: list[int], x: np.ndarray,
                           x_tr: np.ndarray) -> np.ndarray:
    """Distillation of the teacher's probabilities (Hinton et al., 2015) rather than its features: a
    logistic regression over the teacher's standardised features of the training windows (as
    `embedding-linear` is fitted; its L2 penalty the middle of `cfg.linear_c`, the validation windows
    left to the student's early stopping), softened by `cfg.teacher_temperature`. Returns each window's
    teacher distribution over the store's labels (NaN where the teacher lacks the window)."""
    labels = store.labels  # the order of the student's outputs (train passes store.labels)
    index = {lab: i for i, lab in enumerate(labels)}
    y_tr = np.array([index[store.rows[i]["label"]] for i in tr])
    W, b = logistic_regression(x_tr, y_tr, len(labels), cfg.linear_c[len(cfg.linear_c) // 2])
    logp = _log_softmax((x @ W + b) / cfg.teacher_temperature)
    probs = np.full((len(store.rows), len(labels)), np.nan, dtype=np.float32)
    probs[have] = np.exp(logp).astype(np.float32)
    return probs


def _evaluate(model: nn.Module, store: FeatureStore, idx: list[int], y: np.ndarray, loss_fn, bs: int,
              device: torch.device | None = None) -> tuple[float, float]:
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(idx), bs):
            xb = torch.from_numpy(store.batch(idx[i : i + bs])).to(device)
            yb = torch.from_numpy(y[i : i + bs]).to(device)
            out = model(xb)
            total += float(loss_fn(out, yb)) * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            n += len(yb)
    return total / max(n, 1), correct / max(n, 1)


def plot_history(history: list[dict], path: Path) -> bool:
    from .plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return False
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(ep, [h["train_loss"] for h in history], label="train")
    a1.plot(ep, [h["val_loss"] for h in history], label="validation")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(ep, [h["train_acc"] for h in history], label="train")
    a2.plot(ep, [h["val_acc"] for h in history], label="validation")
    a2.set_xlabel("epoch")
    a2.set_ylabel("window accuracy")
    a2.legend()
    save(fig, path)
    return True


class Ensemble(nn.Module):
    """Members averaged in probability; returns log(mean softmax), so a softmax of it is that mean."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(0)
        return torch.log(probs.clamp_min(1e-12))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def logistic_regression(x: np.ndarray, y: np.ndarray, n_classes: int, c: float, max_iter: int = 300
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by L-BFGS: minimises sum_i w_i CE_i + |W|^2 / (2c) (the
    intercept is not penalised), with balanced class weights w = n / (n_classes n_y), as the
    networks' loss has. Returns (W (d, n_classes), b (n_classes,)); deterministic."""
    n, d = x.shape
    counts = np.bincount(y, minlength=n_classes)
    w = (n / (n_classes * np.maximum(counts, 1)))[y]
    onehot = np.eye(n_classes)[y]

    def loss(theta):
        W, b = theta[: d * n_classes].reshape(d, n_classes), theta[d * n_classes :]
        logp = _log_softmax(x @ W + b)
        g = (np.exp(logp) - onehot) * w[:, None]
        value = -(w * (logp * onehot).sum(1)).sum() + (W * W).sum() / (2 * c)
        return value, np.concatenate([(x.T @ g + W / c).ravel(), g.sum(0)])

    import scipy.optimize

    res = scipy.optimize.minimize(loss, np.zeros(d * n_classes + n_classes), jac=True, method="L-BFGS-B",
                                  options={"maxiter": max_iter})
    return res.x[: d * n_classes].reshape(d, n_classes), res.x[d * n_classes :]


def _fit_linear(store: FeatureStore, cfg: TrainConfig, labels: list[str], shape, history_path: Path | None
                ) -> tuple[nn.Module, list[dict], int, str, None]:
    """The `embedding-linear` head, fitted as a logistic regression rather than by SGD: on fixed
    embeddings of a few hundred windows, full-batch L-BFGS with an L2 penalty generalises better than
    minibatches with mixup and early stopping (on the Watkins test split 0.68 against 0.62 top-1).
    The penalty is chosen among `cfg.linear_c` on the validation loss, then the head is refitted on the
    training and validation windows together. Inputs are standardised by the training windows' mean
    and variance, which become the head's batch-norm statistics."""
    t0 = time.time()
    index = {lab: i for i, lab in enumerate(labels)}
    tr, va = store.indices("train"), store.indices("val")
    x_tr, x_va = store.batch(tr).astype(np.float64), store.batch(va).astype(np.float64)
    y_tr = np.array([index[store.rows[i]["label"]] for i in tr])
    y_va = np.array([index[store.rows[i]["label"]] for i in va])
    eps = 1e-5  # batch norm's

    def standardise(x_fit):
        mu, var = x_fit.mean(0), x_fit.var(0)
        return mu, var, lambda x: (x - mu) / np.sqrt(var + eps)

    def ce(W, b, x, y):
        logp = _log_softmax(x @ W + b)
        return float(-logp[np.arange(len(y)), y].mean()), float((logp.argmax(1) == y).mean())

    _, _, scale = standardise(x_tr)
    s_tr, s_va = scale(x_tr), scale(x_va)
    tried, heads = {}, {}
    for c in cfg.linear_c:
        W, b = heads[c] = logistic_regression(s_tr, y_tr, len(labels), c)
        tried[c] = (ce(W, b, s_tr, y_tr), ce(W, b, s_va, y_va) if va else (float("nan"), float("nan")))
    c = min(cfg.linear_c, key=lambda k: tried[k][1][0]) if va else cfg.linear_c[len(cfg.linear_c) // 2]
    # the validation windows as a head that never heard them scores them (the shipped head is refitted on
    # them too, so its own scores of them are those of training windows): what its temperature is fitted on
    heldout = (s_va @ heads[c][0] + heads[c][1], y_va) if va else None
    x_all, y_all = (np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])) if va else (x_tr, y_tr)
    mu, var, scale = standardise(x_all)
    W, b = logistic_regression(scale(x_all), y_all, len(labels), c)
    model = build(cfg.model, len(labels), shape, **cfg.model_options)
    with torch.no_grad():
        model.norm.running_mean.copy_(torch.from_numpy(mu))
        model.norm.running_var.copy_(torch.from_numpy(var))
        model.norm.weight.fill_(1.0)
        model.norm.bias.zero_()
        linear = model.head[-1]
        linear.weight.copy_(torch.from_numpy(W.T))
        linear.bias.copy_(torch.from_numpy(b))
    model.eval()
    model.heldout_logits = heldout
    (train_loss, train_acc), (val_loss, val_acc) = tried[c]
    history = [{"epoch": 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc,
                "lr": float("nan"), "seconds": round(time.time() - t0, 1), "c": c,
                "val_loss_by_c": {str(k): round(v[1][0], 4) for k, v in tried.items()}}]
    if history_path is not None:
        _write_history(history, history_path)
    return model, history, 1, "val_loss (to choose the L2 penalty)", None


def _fit(store: FeatureStore, cfg: TrainConfig, labels: list[str], shape, history_path: Path | None, progress: bool,
         description: str = "training", tr: list[int] | None = None, va: list[int] | None = None,
         stop_at: int | None = None) -> tuple[nn.Module, list[dict], int, str, dict | None]:
    """Train one model on windows `tr` (default: the train split), monitoring `va` (default: the
    validation split); returns (model at its best epoch, history, best epoch, monitor, transfer info).

    The best epoch is looked for once the one-cycle warm-up is over: a low validation loss while the
    learning rate still climbs is luck on a small validation set, not a trained model. With `stop_at`,
    the model is the one at that epoch of the same schedule, whatever the monitor says (a model
    trained like another one that stopped early there)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    _seed_all(cfg.seed)
    index = {lab: i for i, lab in enumerate(labels)}
    tr = store.indices("train") if tr is None else tr
    va = store.indices("val") if va is None else va
    y_tr = np.array([index[store.rows[i]["label"]] for i in tr], dtype=np.int64)
    y_va = np.array([index[store.rows[i]["label"]] for i in va], dtype=np.int64)
    counts = np.bincount(y_tr, minlength=len(labels)).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (len(labels) * np.maximum(counts, 1)), 0.0)
    device = torch.device(cfg.device or "cpu")
    weight_t = torch.tensor(weights, dtype=torch.float32, device=device) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight_t)
    eval_loss = nn.CrossEntropyLoss()  # validation loss unweighted: it picks the best epoch

    model = build(cfg.model, len(labels), shape, **cfg.model_options)
    transfer = None
    if cfg.init:
        transfer = load_matching(model, cfg.init)
    if cfg.freeze_backbone:
        freeze_backbone(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    targets = _teacher_targets(store, cfg, tr)
    soft = targets is not None and cfg.teacher_targets == "probabilities"
    if targets is not None and not soft:
        if not hasattr(model, "forward_with_embedding"):
            from .errors import DeepdiveError

            raise DeepdiveError(f"teacher: {cfg.model} gives no embedding to distil into")
        model.eval()  # the probe must not move batch-norm statistics (each epoch sets training mode)
        with torch.no_grad():
            dim = model.forward_with_embedding(torch.zeros(2, *shape))[1].shape[1]
        to_teacher = nn.Linear(dim, targets.shape[1]).to(device)  # trained with the model, not exported
        trainable += list(to_teacher.parameters())
    model.to(device)  # the optimiser's parameters are the same tensors, moved
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(tr) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    recorder = _recorder_setup(store, cfg)
    outliers = _outlier_bank(store, cfg)
    n_out = max(1, int(round(cfg.outlier_share * cfg.batch_size))) if outliers is not None else 0

    history: list[dict] = []
    best = (float("inf"), -1)
    best_state = None
    monitor = "val_loss" if va else "train_loss"
    warmup = int(np.ceil(0.15 * cfg.epochs)) if cfg.epochs >= 10 else 0
    t0 = time.time()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn(), disable=not progress, transient=False) as bar:
        task = bar.add_task(description, total=cfg.epochs, info="")
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            if cfg.freeze_backbone:
                freeze_backbone(model)  # keeps the frozen batch-norm statistics as they were
            order = rng.permutation(len(tr))
            run_loss, run_correct, seen, run_teacher = 0.0, 0, 0, 0.0
            for b in range(0, len(order), cfg.batch_size):
                sel = order[b : b + cfg.batch_size]
                if len(sel) < 2:
                    continue
                xb = store.batch([tr[i] for i in sel])
                if recorder is not None and xb.ndim == 3:
                    xb = recorder_response(xb, rng, cfg.recorder, **recorder)
                xb = torch.from_numpy(xb)
                yb = torch.from_numpy(y_tr[sel])
                if cfg.spec_augment and xb.ndim == 3:  # a spectrogram (not an embedding vector)
                    xb = _spec_augment(xb, gen, cfg.band_cut, cfg.pitch)
                if cfg.freq_mixstyle > 0 and xb.ndim == 3:
                    xb = _freq_mixstyle(xb, rng, cfg.freq_mixstyle, cfg.mixstyle_alpha)
                if cfg.mixup > 0:
                    lam = float(rng.beta(cfg.mixup, cfg.mixup))
                    perm = torch.randperm(len(yb), generator=gen)
                    xb = lam * xb + (1 - lam) * xb[perm]
                if n_out:  # outlier windows, rolled in time and heard through random recorders like the rest
                    xo = outliers[rng.integers(len(outliers), size=n_out)]
                    xo = np.stack([np.roll(w, int(rng.integers(w.shape[1])), axis=1) for w in xo])
                    if recorder is not None:
                        xo = recorder_response(xo, rng, cfg.recorder, **recorder)
                    xo = torch.from_numpy(xo)
                    if cfg.spec_augment:
                        xo = _spec_augment(xo, gen)
                    xin = torch.cat([xb, xo])
                else:
                    xin = xb
                xin, yb = xin.to(device), yb.to(device)
                if cfg.mixup > 0:
                    perm = perm.to(device)
                if targets is not None and not soft:
                    both, emb = model.forward_with_embedding(xin)
                else:
                    both = model(xin)
                logits, out_logits = both[: len(yb)], both[len(yb) :]
                if cfg.mixup > 0:
                    loss = lam * loss_fn(logits, yb) + (1 - lam) * loss_fn(logits, yb[perm])
                else:
                    loss = loss_fn(logits, yb)
                if targets is not None:  # the teacher's description of the (clean) windows, mixed as they were
                    tb = torch.from_numpy(targets[[tr[i] for i in sel]]).to(device)
                    if cfg.mixup > 0:
                        tb = lam * tb + (1 - lam) * tb[perm]
                    if soft:  # KL(teacher || student) at temperature T, scaled by T^2 (Hinton et al.)
                        t = cfg.teacher_temperature
                        distil = t * t * (tb * (torch.log(tb.clamp_min(1e-12)) - torch.log_softmax(logits / t, dim=1))
                                          ).sum(1).mean()
                    else:
                        distil = ((to_teacher(emb[: len(yb)]) - tb) ** 2).mean()
                    loss = loss + cfg.teacher_weight * distil
                    run_teacher += distil.item() * len(yb)
                if n_out:
                    loss = loss - cfg.outlier_weight * torch.log_softmax(out_logits, dim=1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                run_loss += loss.item() * len(yb)
                run_correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
            row = {"epoch": epoch, "train_loss": run_loss / max(seen, 1), "train_acc": run_correct / max(seen, 1)}
            if targets is not None:  # the distillation's own loss (features: 1 is no better than the mean; probabilities: T^2 KL)
                row["teacher_loss"] = run_teacher / max(seen, 1)
            if va:
                row["val_loss"], row["val_acc"] = _evaluate(model, store, va, y_va, eval_loss, 64, device)
            else:
                row["val_loss"], row["val_acc"] = float("nan"), float("nan")
            row["lr"] = opt.param_groups[0]["lr"]
            row["seconds"] = round(time.time() - t0, 1)
            history.append(row)
            if history_path is not None:
                _write_history(history, history_path)  # readable while training runs
            score = row[monitor]
            if (epoch == stop_at) if stop_at else (epoch > warmup and score < best[0]):
                best = (score, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.update(task, advance=1, info=f"loss {row['train_loss']:.3f} val {row['val_loss']:.3f} acc {row['val_acc']:.2f}")
            if epoch == stop_at or (not stop_at and epoch - max(best[1], warmup) >= cfg.patience):
                break
    model.load_state_dict(best_state)
    model.cpu().eval()  # exported and scored on the CPU, wherever it trained
    return model, history, best[1], monitor, transfer


def row_sources(store: FeatureStore) -> list[str] | None:
    """Each window's source in a store of several (their groups are prefixed by the source's name), or
    None for a store of one source."""
    if len({row.get("source") for row in store.config.get("split_report", [])}) < 2:
        return None
    return [row["group"].split("/", 1)[0] for row in store.rows]


def check_device(name: str) -> None:
    """A device torch knows and has here (cpu always), else a DeepdiveError saying so."""
    from .errors import DeepdiveError

    try:
        device = torch.device(name or "cpu")
    except RuntimeError:
        raise DeepdiveError(f"device '{name}': not a torch device; give cpu or cuda (cuda:1 for the second GPU)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeepdiveError(f"device '{name}': torch sees no CUDA GPU here (torch {torch.__version__}); train on cpu")
    if device.type not in ("cpu", "cuda"):
        raise DeepdiveError(f"device '{name}': deepdive trains on cpu or cuda")


def train(store_path: str | Path, out: str | Path, cfg: TrainConfig | None = None, progress: bool = True) -> Path:
    """Train on the store's train split, stop early on validation loss, export a bundle to `out`.

    With `cfg.ensemble` > 1, that many models (seeds seed, seed+1000, ...) are trained and exported
    as one graph that averages their probabilities."""
    cfg = cfg or TrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    check_device(cfg.device)
    store = FeatureStore(store_path)
    labels = store.labels
    if not store.indices("train"):
        from .errors import DatasetError

        raise DatasetError(f"{store_path}: the store has no training windows")
    feats_cfg = features_from_dict(store_features(store.config["prepare"]))
    shape = feats_cfg.shape
    n = max(1, cfg.ensemble)
    members, fits = [], []
    for k in range(n):
        member_cfg = cfg if k == 0 else replace(cfg, seed=cfg.seed + 1000 * k)
        history_path = out / ("history.csv" if k == 0 else f"history_member{k}.csv")
        if cfg.model == "embedding-linear":
            model, history, best_epoch, monitor, transfer = _fit_linear(store, member_cfg, labels, shape, history_path)
        else:
            model, history, best_epoch, monitor, transfer = _fit(
                store, member_cfg, labels, shape, history_path, progress, "training" if n == 1 else f"member {k + 1}/{n}")
        members.append(model)
        fits.append({"seed": member_cfg.seed, "epochs_run": len(history), "best_epoch": best_epoch})
        if k == 0:
            first = (history, best_epoch, monitor, transfer)
    history, best_epoch, monitor, transfer = first
    model = members[0] if n == 1 else Ensemble(members).eval()

    plot_history(history, out / "history.png")
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(out / "model.pt", buf.getvalue())
    input_name = "logmel" if feats_cfg.kind == "log-mel" else "features"
    export_onnx(model, shape, out / "model.onnx", input_name)
    card = make_card(store, cfg, feats_cfg, history, best_epoch, monitor, input_name)
    if n > 1:
        card["training"]["members"] = fits
        card["output"]["apply"] = "softmax (the graph returns the log of the members' mean probabilities)"
    if transfer is not None:
        card["training"]["transfer"] = transfer
    if card["task"] == "detection":
        index = {lab: i for i, lab in enumerate(labels)}
        positive = index[card["positive_label"]]
        if cfg.threshold_folds > 1:
            card["threshold"], card["threshold_rule"], card["training_tapes_crossval"] = _crossval_threshold(
                store, cfg, labels, shape, positive, progress, stop_at=fits[0]["best_epoch"])
        else:
            va = store.indices("val")
            y_va = np.array([index[store.rows[i]["label"]] for i in va], dtype=np.int64)
            card["threshold"], card["threshold_rule"] = _choose_threshold(model, store, va, y_va, positive,
                                                                          cfg.threshold_recall)
    atomic_write_json(out / "card.json", card)
    if card["task"] != "detection" and store.indices("val"):
        from .bundle import Bundle
        from .calibration import add_to_bundle as calibrate
        from .errors import DatasetError
        from .novelty import add_judge, add_to_bundle

        try:
            heldout = getattr(model, "heldout_logits", None)  # a linear head's validation windows, scored before its refit
            calibrate(out, store_path, heldout)  # the temperature that makes its probabilities mean what they say
        except DatasetError:
            pass  # too few validation windows to fit one: probabilities as the network gives them
        graph = [o.name for o in Bundle.load(out, precision="fp32").session.get_outputs()]
        if cfg.novelty_from:
            add_judge(out, cfg.novelty_from)  # "none of these" by another model's fit (one knowing the same species)
        elif feats_cfg.kind != "birdnet" and "embedding" in graph:
            add_to_bundle(out, store_path, cfg.novelty_threshold)  # "none of these": novelty.npz and the card's `novelty`
    return out


def _probabilities(model: nn.Module, store: FeatureStore, idx: list[int], positive: int) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(idx), 64):
            out.append(torch.softmax(model(torch.from_numpy(store.batch(idx[i : i + 64]))), 1)[:, positive].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _threshold_rule(y: np.ndarray, p: np.ndarray, recall: float) -> tuple[float, str]:
    """The threshold on clip scores `p` of truth `y`: the F1-best one, or with `recall` > 0 the
    strictest that finds that share of the calls."""
    from .bundle import recall_rule
    from .evaluate import best_f1_threshold, recall_threshold

    if recall > 0:
        return round(recall_threshold(y, p, recall), 4), recall_rule(recall)
    return round(best_f1_threshold(y, p), 4), "maximum F1"


def _crossval_threshold(store: FeatureStore, cfg: TrainConfig, labels: list[str], shape, positive: int,
                        progress: bool, stop_at: int | None = None) -> tuple[float, str, dict]:
    """Out-of-fold clip scores over the training and validation encounters (k folds by group, each
    model trained like the shipped one: same schedule, stopped at the shipped model's epoch
    `stop_at`), and the threshold of the configured rule on them, with the other operating points."""
    from .datasets.base import Recording
    from .evaluate import operating_points, roc_auc
    from .prepare import group_folds

    pool = [i for i in range(len(store)) if store.rows[i]["split"] in ("train", "val")]
    # a store of several sources: folds are dealt within each
    sources = row_sources(store)
    recs = {store.rows[i]["key"]: Recording(path=store.rows[i]["key"], label=store.rows[i]["label"],
                                            group=store.rows[i]["group"], duration_s=1.0,
                                            source=sources[i] if sources else "")
            for i in pool}
    folds = group_folds(list(recs.values()), cfg.threshold_folds, cfg.seed)
    scores: dict[str, float] = {}
    for f, keys in enumerate(folds):
        held = set(keys)
        tr = [i for i in pool if store.rows[i]["key"] not in held]
        te = [i for i in pool if store.rows[i]["key"] in held and not store.rows[i]["augment"]]
        if not tr or not te:
            continue
        model, *_ = _fit(store, replace(cfg, seed=cfg.seed + 7 + f, patience=cfg.epochs), labels, shape, None, progress,
                         f"threshold fold {f + 1}/{len(folds)}", tr=tr, va=[], stop_at=stop_at)
        for i, p in zip(te, _probabilities(model, store, te, positive), strict=True):
            key = store.rows[i]["key"]
            scores[key] = max(scores.get(key, 0.0), float(p))
    keys = sorted(scores)
    y = np.array([int(store.labels.index(recs[k].label) == positive) for k in keys])
    p = np.array([scores[k] for k in keys])
    if not 0 < y.sum() < len(y):
        return 0.5, "default 0.5 (the out-of-fold clips lack one of the classes)", {"folds": len(folds), "clips": len(keys)}
    clip_sources = [recs[k].source for k in keys] if sources else None
    points = operating_points(y, p, sources=clip_sources)
    threshold, rule = _threshold_rule(y, p, cfg.threshold_recall)
    epochs = f"models stopped at epoch {stop_at}" if stop_at else f"models trained {cfg.epochs} epochs"
    rule += f" on out-of-fold scores of the training and validation encounters ({len(folds)} folds by group, {epochs})"
    return threshold, rule, {"folds": len(folds), "clips": len(keys), "positives": int(y.sum()),
                             "roc_auc": round(roc_auc(y, p), 4), "operating_points": points}


def _choose_threshold(model: nn.Module, store: FeatureStore, va: list[int], y_va: np.ndarray, positive: int,
                      recall: float = 0.0) -> tuple[float, str]:
    """The threshold of the rule (maximum F1, or a target recall) on the validation windows (0.5
    without both classes there)."""
    truth = (y_va == positive).astype(int)
    if not va or truth.min() == truth.max():
        return 0.5, "default 0.5 (the validation split lacks one of the classes)"
    threshold, rule = _threshold_rule(truth, _probabilities(model, store, va, positive), recall)
    return threshold, rule + " on the validation windows"


def _write_history(history: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    atomic_write_text(path, buf.getvalue())


class _WithEmbedding(nn.Module):
    """Exports a model's logits and its embedding as two outputs of one graph (computed once)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_embedding(x)


def export_onnx(model: nn.Module, shape: tuple[int, ...], path: Path, input_name: str = "logmel") -> None:
    """Export with a dynamic batch axis; input (batch, *shape) named `input_name` -> 'logits', and
    'embedding' too for a model that has one (`forward_with_embedding`: the vector its classifier
    reads, for `deepdive embed` and `search`)."""
    model.eval()
    dummy = torch.zeros(2, *shape)
    outputs = ["logits"]
    if hasattr(model, "forward_with_embedding"):
        model, outputs = _WithEmbedding(model).eval(), ["logits", "embedding"]
    buf = io.BytesIO()
    torch.onnx.export(
        model, (dummy,), buf, input_names=[input_name], output_names=outputs,
        dynamic_axes={input_name: {0: "batch"}, **{o: {0: "batch"} for o in outputs}}, opset_version=17, dynamo=False,
    )
    atomic_write_bytes(path, buf.getvalue())


def reexport(bundle_dir: str | Path) -> Path:
    """Write a bundle's model.onnx again from its model.pt with today's export (an older bundle gains
    its embedding output); the weights, and so the scores, are unchanged."""
    from .bundle import Bundle

    bundle = Bundle.load(bundle_dir, precision="fp32")
    card = bundle.card
    training = card.get("training", {})
    shape = bundle.features.shape
    n = len(card["labels"])
    options = training.get("model_options", {})
    members = training.get("members")
    model = (Ensemble([build(card["model"], n, shape, **options) for _ in members]) if members
             else build(card["model"], n, shape, **options))
    state = torch.load(Path(bundle_dir) / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    export_onnx(model.eval(), shape, Path(bundle_dir) / "model.onnx", card["input"]["name"])
    return Path(bundle_dir) / "model.onnx"


def _json_row(row: dict) -> dict:
    """A history row for the card, with null where it has no value (no validation split): NaN is not JSON."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}


def make_card(store: FeatureStore, cfg: TrainConfig, feats_cfg, history, best_epoch: int, monitor: str,
              input_name: str = "logmel") -> dict:
    sc = store.config
    names = sc.get("scientific_names", {})
    source = sc.get("source", {})
    task = sc.get("task", "species")
    features = feats_cfg.to_dict()
    if feats_cfg.kind in ("log-mel", "stft-image"):
        features.update({"type": "log-mel-db" if feats_cfg.kind == "log-mel" else "log-power-db", "ref": "window peak"})
    card = {
        "format": "deepdive-bundle/1",
        "task": task,
        "model": cfg.model,
        "labels": [{"species": lab, "scientific_name": names.get(lab, "")} for lab in sc["labels"]],
        "features": features,
        "input": {"name": input_name, "shape": ["batch", *feats_cfg.shape]},
        "output": {"name": "logits", "apply": "softmax"},
        "aggregate": "mean of window probabilities over the recording",
        "prepare": {k: v for k, v in sc["prepare"].items() if k not in ("mel", "features")},
        "split": {
            "method": _split_method(sc["split_report"]),
            "seed": sc["prepare"]["seed"],
            "report": _card_report(sc["split_report"]),
        },
        "training": {**asdict(cfg), "epochs_run": len(history), "best_epoch": best_epoch, "monitor": monitor,
                     "final": _json_row(history[best_epoch - 1]) if best_epoch > 0 else None},
        "source": source,
        "data_terms": source.get("terms", "See the training data's own terms."),
        "metrics": {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "deepdive_version": _version(),
    }
    if feats_cfg.kind == "birdnet":
        from .features.birdnet import TERMS

        card["data_terms"] += f" The features are embeddings of {TERMS}; this model inherits those terms."
    if cfg.teacher:  # a student inherits its teacher's terms
        teacher_feats = store_features(FeatureStore(cfg.teacher).config["prepare"])
        if teacher_feats.get("kind") == "birdnet":
            from .features.birdnet import TERMS

            card["data_terms"] += f" It was distilled from embeddings of {TERMS}; this model inherits those terms."
    heard = {p for p in (cfg.noise if cfg.recorder else "", cfg.outliers) if p}
    for folder in sorted(heard):  # noise heard in training: its terms travel with the model too
        from .datasets.kaggle import data_terms

        terms = data_terms(folder)
        if terms not in card["data_terms"]:
            card["data_terms"] += f" Training also heard noise recordings from {Path(folder).name}: {terms}"
    if task == "detection":
        positive = sc["prepare"]["positive"]
        card["labels"] = [{"label": lab} for lab in sc["labels"]]
        card["positive_label"] = positive
        card["aggregate"] = f"highest window probability of '{positive}' over the recording"
    return card


UNITS_LISTED = 1000  # a card lists at most this many units of a split; beyond, their count and a digest


def _card_report(report: list[dict]) -> list[dict]:
    """The split report for a card: a split of more than UNITS_LISTED units (thousands of clips) is
    given as its count and the SHA-1 of its sorted names (one per line), so that the card stays small
    and the split can still be checked; test units are always listed."""
    import hashlib

    out = []
    for row in report:
        row = dict(row)
        for split in ("train", "val"):
            units = row.get(f"{split}_units", [])
            if len(units) > UNITS_LISTED:
                row[f"{split}_units"] = {"count": len(units),
                                         "sha1": hashlib.sha1("\n".join(sorted(units)).encode()).hexdigest()}
        out.append(row)
    return out


def _split_method(report: list[dict]) -> str:
    """How a store was split, in words, from its split report (per source where there are several)."""
    single = ("by encounter (tape or date), stratified by species, seeded; single-encounter species "
              "fall back to tapes, then blocks of consecutive cuts (see level)")
    sources = list(dict.fromkeys(row["source"] for row in report if row.get("source")))
    if not sources:
        return single
    kinds = {"tape:": "by tape (sources.csv): no tape on two sides",
             "clip:": "by clip, clips with identical samples kept together (nothing says which clips were "
                      "recorded close together, so this is as honest as the clips are independent)",
             "enc-": "by encounter (clips sharing a tape or a date)"}
    parts = []
    for source in sources:
        units = [u for row in report if row.get("source") == source for u in row.get("test_units", [])]
        kind = next((text for prefix, text in kinds.items() if units and units[0].split("/", 1)[-1].startswith(prefix)),
                    "by its groups")
        parts.append(f"{source}: {kind}")
    return ("each source split on its own, stratified by label, seeded (the split each gets alone): "
            + "; ".join(parts))


def _version() -> str:
    from . import __version__

    return __version__
