"""Training: a torch loop over a prepared store, with early stopping, class weights, a seeded run,
a progress bar, a history CSV and plot, and export to a bundle (model.onnx + card.json)."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .features.spectrogram import MelConfig
from .models import build
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
    threads: int = 0


def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _spec_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random time roll, one frequency mask and one time mask per window (training only)."""
    n, f, t = x.shape
    x = x.clone()
    floor = x.amin(dim=(1, 2), keepdim=True)
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


def _evaluate(model: nn.Module, store: FeatureStore, idx: list[int], y: np.ndarray, loss_fn, bs: int) -> tuple[float, float]:
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(idx), bs):
            xb = torch.from_numpy(store.batch(idx[i : i + bs]))
            yb = torch.from_numpy(y[i : i + bs])
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


def train(store_path: str | Path, out: str | Path, cfg: TrainConfig | None = None, progress: bool = True) -> Path:
    """Train on the store's train split, stop early on validation loss, export a bundle to `out`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cfg = cfg or TrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _seed_all(cfg.seed)
    store = FeatureStore(store_path)
    labels = store.labels
    index = {lab: i for i, lab in enumerate(labels)}
    tr, va = store.indices("train"), store.indices("val")
    if not tr:
        from .errors import DatasetError

        raise DatasetError(f"{store_path}: the store has no training windows")
    y_tr = np.array([index[store.rows[i]["label"]] for i in tr], dtype=np.int64)
    y_va = np.array([index[store.rows[i]["label"]] for i in va], dtype=np.int64)
    counts = np.bincount(y_tr, minlength=len(labels)).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (len(labels) * np.maximum(counts, 1)), 0.0)
    weight_t = torch.tensor(weights, dtype=torch.float32) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight_t)
    eval_loss = nn.CrossEntropyLoss()  # validation loss unweighted: it picks the best epoch

    shape = MelConfig.from_dict(store.config["prepare"]["mel"]).shape
    model = build(cfg.model, len(labels), shape)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(tr) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    history: list[dict] = []
    best = (float("inf"), -1)
    best_state = None
    monitor = "val_loss" if va else "train_loss"
    t0 = time.time()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn(), disable=not progress, transient=False) as bar:
        task = bar.add_task("training", total=cfg.epochs, info="")
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order = rng.permutation(len(tr))
            run_loss, run_correct, seen = 0.0, 0, 0
            for b in range(0, len(order), cfg.batch_size):
                sel = order[b : b + cfg.batch_size]
                if len(sel) < 2:
                    continue
                xb = torch.from_numpy(store.batch([tr[i] for i in sel]))
                yb = torch.from_numpy(y_tr[sel])
                if cfg.spec_augment:
                    xb = _spec_augment(xb, gen)
                if cfg.mixup > 0:
                    lam = float(rng.beta(cfg.mixup, cfg.mixup))
                    perm = torch.randperm(len(yb), generator=gen)
                    logits = model(lam * xb + (1 - lam) * xb[perm])
                    loss = lam * loss_fn(logits, yb) + (1 - lam) * loss_fn(logits, yb[perm])
                else:
                    logits = model(xb)
                    loss = loss_fn(logits, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                run_loss += loss.item() * len(yb)
                run_correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
            row = {"epoch": epoch, "train_loss": run_loss / max(seen, 1), "train_acc": run_correct / max(seen, 1)}
            if va:
                row["val_loss"], row["val_acc"] = _evaluate(model, store, va, y_va, eval_loss, 64)
            else:
                row["val_loss"], row["val_acc"] = float("nan"), float("nan")
            row["lr"] = opt.param_groups[0]["lr"]
            row["seconds"] = round(time.time() - t0, 1)
            history.append(row)
            _write_history(history, out / "history.csv")  # readable while training runs
            score = row[monitor]
            if score < best[0]:
                best = (score, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.update(task, advance=1, info=f"loss {row['train_loss']:.3f} val {row['val_loss']:.3f} acc {row['val_acc']:.2f}")
            if epoch - best[1] >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()

    _write_history(history, out / "history.csv")
    plot_history(history, out / "history.png")
    torch.save(model.state_dict(), out / "model.pt")
    export_onnx(model, shape, out / "model.onnx")
    card = make_card(store, cfg, shape, history, best[1], monitor)
    atomic_write_json(out / "card.json", card)
    return out


def _write_history(history: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    atomic_write_text(path, buf.getvalue())


def export_onnx(model: nn.Module, shape: tuple[int, int], path: Path) -> None:
    """Export with a dynamic batch axis; input 'logmel' (batch, n_mels, n_frames) -> 'logits'."""
    model.eval()
    dummy = torch.zeros(2, *shape)
    buf = io.BytesIO()
    torch.onnx.export(
        model, (dummy,), buf, input_names=["logmel"], output_names=["logits"],
        dynamic_axes={"logmel": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
    )
    atomic_write_bytes(path, buf.getvalue())


def make_card(store: FeatureStore, cfg: TrainConfig, shape, history, best_epoch: int, monitor: str) -> dict:
    sc = store.config
    names = sc.get("scientific_names", {})
    source = sc.get("source", {})
    return {
        "format": "deepdive-bundle/1",
        "task": "species",
        "model": cfg.model,
        "labels": [{"species": lab, "scientific_name": names.get(lab, "")} for lab in sc["labels"]],
        "features": {"type": "log-mel-db", "ref": "window peak", **sc["prepare"]["mel"]},
        "input": {"name": "logmel", "shape": ["batch", *shape]},
        "output": {"name": "logits", "apply": "softmax"},
        "aggregate": "mean of window probabilities over the recording",
        "prepare": {k: v for k, v in sc["prepare"].items() if k != "mel"},
        "split": {
            "method": "by encounter (tape or date), stratified by species, seeded; single-encounter species "
                      "fall back to tapes, then blocks of consecutive cuts (see level)",
            "seed": sc["prepare"]["seed"],
            "report": sc["split_report"],
        },
        "training": {**asdict(cfg), "epochs_run": len(history), "best_epoch": best_epoch, "monitor": monitor,
                     "final": history[best_epoch - 1] if best_epoch > 0 else None},
        "source": source,
        "data_terms": source.get("terms", "See the training data's own terms."),
        "metrics": {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "deepdive_version": _version(),
    }


def _version() -> str:
    from . import __version__

    return __version__
