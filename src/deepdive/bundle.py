"""Model bundles: a folder with `model.onnx` and `card.json`; inference on ONNX Runtime.

The card rebuilds the model's exact preprocessing (feature configuration, window, sample rate) and
says what the model knows (labels with common and scientific names), how its data were split, how it
scored, and the terms of the data it was trained on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ModelError
from .features import FeatureConfig
from .features import from_dict as features_from_dict

BUNDLED = {"species": "species", "detection": "detector", "detector": "detector", "rightwhale": "detector"}


def bundled_path(name: str = "species") -> Path:
    return Path(str(resources.files("deepdive") / "bundled" / BUNDLED.get(name, name)))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Bundle:
    path: Path
    card: dict
    _session: object = field(default=None, repr=False)
    _stamp: tuple | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        path = Path(path)
        card_path, onnx_path = path / "card.json", path / "model.onnx"
        if not path.is_dir():
            raise ModelError(f"{path}: no such model folder; give a folder with model.onnx and card.json")
        for p in (card_path, onnx_path):
            if not p.is_file():
                raise ModelError(f"{p}: missing from the model bundle; re-export the model or use the bundled one")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelError(f"{card_path}: not valid JSON ({exc.msg}); re-export the model") from None
        for key in ("labels", "features"):
            if key not in card:
                raise ModelError(f"{card_path}: lacks '{key}'; re-export the model with this version of deepdive")
        return cls(path, card)

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(os.environ.get("DEEPDIVE_THREADS", "0"))
            opts.log_severity_level = 3
            try:
                self._session = ort.InferenceSession(
                    str(self.path / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise ModelError(f"{self.path / 'model.onnx'}: ONNX Runtime cannot load it ({str(exc)[:120]})") from None
        return self._session

    @property
    def features(self) -> FeatureConfig:
        return features_from_dict(self.card["features"])

    @property
    def task(self) -> str:
        return self.card.get("task", "species")

    @property
    def labels(self) -> list[str]:
        return [lab.get("species", lab.get("label", "")) for lab in self.card["labels"]]

    @property
    def positive_index(self) -> int:
        """The class whose probability a detector reports."""
        positive = self.card.get("positive_label")
        if self.task != "detection" or positive not in self.labels:
            raise ModelError(f"{self.path}: is a {self.task} model, not a detector; pass a detector bundle")
        return self.labels.index(positive)

    @property
    def threshold(self) -> float:
        return float(self.card.get("threshold", 0.5))

    @property
    def scientific_names(self) -> list[str]:
        return [lab.get("scientific_name", "") for lab in self.card["labels"]]

    def logits(self, feats: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Logits for windows of features, shape (n, *features.shape)."""
        feats = np.asarray(feats, dtype=np.float32)
        shape = self.features.shape
        if feats.ndim != 3 or feats.shape[1:] != shape:
            raise ModelError(f"{self.path}: expects windows of shape {shape}, got {feats.shape[1:]}")
        name = self.session.get_inputs()[0].name
        out = [self.session.run(None, {name: feats[i : i + batch_size]})[0] for i in range(0, len(feats), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, feats: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Class probabilities for windows of features, shape (n, n_classes)."""
        return softmax(self.logits(feats, batch_size))

    def detect(self, feats: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """A detector's probability of the positive class for each window, shape (n,)."""
        return self.predict(feats, batch_size)[:, self.positive_index]


def update_card_metrics(bundle_dir: str | Path, metrics: dict) -> None:
    """Write evaluation figures into a bundle's card (atomically)."""
    from .store import atomic_write_json

    path = Path(bundle_dir) / "card.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    card["metrics"] = metrics
    atomic_write_json(path, card)
    _cache.pop(str(Path(bundle_dir).resolve()), None)


_cache: dict[str, Bundle] = {}


def resolve(model: str | Path | Bundle | None = None, task: str | None = None) -> Bundle:
    """A Bundle from a Bundle, a folder path, a bundled name, or None (the bundled model of `task`,
    species by default). With `task`, a bundle of another task is refused with a clear message."""
    if isinstance(model, Bundle):
        bundle = model
    elif model is None or str(model) in BUNDLED:
        path = bundled_path(str(model) if model else (task or "species"))
        if not (path / "model.onnx").is_file():
            raise ModelError(f"{path}: the bundled {task or 'species'} model is missing; reinstall deepdive or pass --model DIR")
        bundle = _load_cached(path)
    else:
        bundle = _load_cached(Path(model))
    if task is not None and bundle.task != task:
        kind = "detector" if task == "detection" else f"{task} model"
        raise ModelError(f"{bundle.path}: is a {bundle.task} model; pass a {kind} bundle")
    return bundle


def _load_cached(path: Path) -> Bundle:
    """One Bundle per folder, loaded again when its files change (a folder retrained in place)."""
    key = str(path.resolve())
    try:
        stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (path / "model.onnx", path / "card.json"))
    except OSError:
        stamp = None
    cached = _cache.get(key)
    if cached is None or getattr(cached, "_stamp", None) != stamp:
        cached = Bundle.load(path)
        cached._stamp = stamp
        _cache[key] = cached
    return cached
