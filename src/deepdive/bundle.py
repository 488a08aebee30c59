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
from .features.spectrogram import MelConfig

BUNDLED = {"species": "species"}


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
    def mel(self) -> MelConfig:
        return MelConfig.from_dict(self.card["features"])

    @property
    def labels(self) -> list[str]:
        return [lab["species"] for lab in self.card["labels"]]

    @property
    def scientific_names(self) -> list[str]:
        return [lab.get("scientific_name", "") for lab in self.card["labels"]]

    def logits(self, feats: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Logits for windows of shape (n, n_mels, n_frames)."""
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 3 or feats.shape[1:] != self.mel.shape:
            raise ModelError(f"{self.path}: expects windows of shape {self.mel.shape}, got {feats.shape[1:]}")
        name = self.session.get_inputs()[0].name
        out = [self.session.run(None, {name: feats[i : i + batch_size]})[0] for i in range(0, len(feats), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, feats: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Class probabilities for windows of shape (n, n_mels, n_frames)."""
        return softmax(self.logits(feats, batch_size))


def update_card_metrics(bundle_dir: str | Path, metrics: dict) -> None:
    """Write evaluation figures into a bundle's card (atomically)."""
    from .store import atomic_write_json

    path = Path(bundle_dir) / "card.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    card["metrics"] = metrics
    atomic_write_json(path, card)
    _cache.pop(str(Path(bundle_dir).resolve()), None)


_cache: dict[str, Bundle] = {}


def resolve(model: str | Path | Bundle | None = None, task: str = "species") -> Bundle:
    """A Bundle from a Bundle, a folder path, a bundled name, or None (the bundled model of `task`)."""
    if isinstance(model, Bundle):
        return model
    if model is None or str(model) in BUNDLED:
        path = bundled_path(str(model) if model else task)
        if not (path / "model.onnx").is_file():
            raise ModelError(f"{path}: the bundled {task} model is missing; reinstall deepdive or pass --model DIR")
    else:
        path = Path(model)
    key = str(path.resolve())
    if key not in _cache:
        _cache[key] = Bundle.load(path)
    return _cache[key]
