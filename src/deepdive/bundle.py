"""Model bundles: a folder with `model.onnx` and `card.json`; inference on ONNX Runtime.

A bundle may also hold `model.int8.onnx`, the same network quantized to 8-bit integers (`quantize`,
`deepdive quantize`): static, per-channel, calibrated on training windows, about twice as fast on a
CPU. It is used when present unless the environment says DEEPDIVE_PRECISION=fp32; the card records
how it was calibrated and how both versions score on the test split.

The card rebuilds the model's exact preprocessing (feature configuration, window, sample rate) and
says what the model knows (labels with common and scientific names), how its data were split, how it
scored, and the terms of the data it was trained on.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DeepdiveError, ModelError
from .features import FeatureConfig
from .features import from_dict as features_from_dict

PRECISIONS = ("int8", "fp32")
_SESSION_LOCK = threading.RLock()
INT8_FILE = "model.int8.onnx"
BUNDLED = {"species": "species", "detection": "detector", "detector": "detector", "rightwhale": "detector",
           "species-birdnet": "species-birdnet"}  # a linear head over BirdNET embeddings (needs BirdNET)


def bundled_path(name: str = "species") -> Path:
    return Path(str(resources.files("deepdive") / "bundled" / BUNDLED.get(name, name)))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def env_threads() -> int:
    """DEEPDIVE_THREADS, or 0 when it is not set."""
    value = os.environ.get("DEEPDIVE_THREADS", "").strip()
    if value and (not value.isdigit() or int(value) < 1):
        raise ModelError(f"DEEPDIVE_THREADS={value!r}: give a whole number of threads, 1 or more")
    return int(value) if value else 0


def cpu_threads() -> int:
    """Threads to use: DEEPDIVE_THREADS, else the CPUs this process may run on."""
    if env_threads():
        return env_threads()
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_precision() -> str:
    """DEEPDIVE_PRECISION: int8 (the default: the quantized model where a bundle has one) or fp32."""
    value = os.environ.get("DEEPDIVE_PRECISION", "int8").strip().lower() or "int8"
    if value not in PRECISIONS:
        raise ModelError(f"DEEPDIVE_PRECISION={value!r}: use int8 or fp32")
    return value


def recall_rule(recall: float) -> str:
    """How a card names the operating point that found `recall` of the calls."""
    return f"recall {recall:g}"


@dataclass
class Bundle:
    path: Path
    card: dict
    precision: str | None = None  # None: default_precision() when the session is made
    _sessions: dict = field(default_factory=dict, repr=False)  # ONNX Runtime sessions by thread count
    _extras: dict = field(default_factory=dict, repr=False)  # files loaded once (the novelty fit)
    _stamp: tuple | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path, precision: str | None = None) -> Bundle:
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
        return cls(path, card, precision)

    @property
    def model_file(self) -> Path:
        """model.int8.onnx where the bundle has one and the precision is int8, else model.onnx."""
        int8 = self.path / self.card.get("quantized", {}).get("file", INT8_FILE)
        if (self.precision or default_precision()) == "int8" and "quantized" in self.card and int8.is_file():
            return int8
        return self.path / "model.onnx"

    @property
    def session(self):
        """The ONNX Runtime session with DEEPDIVE_THREADS threads (unset: ONNX Runtime's choice)."""
        return self.session_with(env_threads())

    def session_with(self, threads: int):
        """A session whose operators run on `threads` threads (0: ONNX Runtime's choice, one per physical
        core; a scan runs one-thread sessions side by side); made once per thread count, even when
        several lanes ask for it at once."""
        with _SESSION_LOCK:
            return self._session_with(threads)

    def _session_with(self, threads: int):
        if threads not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            # worker threads sleep between runs instead of spinning: an idle server burns no CPU, and
            # the features computed between two runs get the cores
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.log_severity_level = 3
            try:
                self._sessions[threads] = ort.InferenceSession(
                    str(self.model_file), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise ModelError(f"{self.model_file}: ONNX Runtime cannot load it ({str(exc)[:120]})") from None
        return self._sessions[threads]

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

    def pick_threshold(self, threshold: float | None = None, recall: float | None = None) -> float:
        """The threshold to call at: `threshold` given outright, or the card's operating point for
        `recall`, or else the model's own (a detector's card threshold; 0.5 for a species model)."""
        if recall is not None:
            if threshold is not None:
                raise DeepdiveError("threshold and recall: give one, not both")
            if self.task != "detection":
                raise DeepdiveError(f"recall picks a detector's operating point; {self.path.name} is a {self.task} model")
            return self.recall_threshold(recall)
        if threshold is not None:
            return float(threshold)
        return self.threshold if self.task == "detection" else 0.5

    def recall_threshold(self, recall: float) -> float:
        """A detector's threshold for the operating point that found `recall` of the calls on its
        training tapes' out-of-fold scores (the card's `training_tapes_crossval.operating_points`)."""
        points = self.card.get("training_tapes_crossval", {}).get("operating_points") or []
        for point in points:
            if point["rule"] == recall_rule(recall):
                return float(point["threshold"])
        listed = ", ".join(p["rule"].removeprefix("recall ") for p in points if p["rule"].startswith("recall "))
        raise ModelError(f"{self.path}: no operating point for recall {recall:g} in the card"
                         + (f" (it lists {listed})" if listed else " (it lists none; pass --threshold)"))

    @property
    def scientific_names(self) -> list[str]:
        return [lab.get("scientific_name", "") for lab in self.card["labels"]]

    def logits(self, feats: np.ndarray, batch_size: int = 16, threads: int | None = None) -> np.ndarray:
        """Logits for windows of features, shape (n, *features.shape), on `threads` threads (default as
        `session`). Runs of 16 windows: on two cores ONNX Runtime scores about 10% more windows a
        second than in runs of 64 (the activations stay in cache)."""
        feats = np.asarray(feats, dtype=np.float32)
        shape = self.features.shape
        if feats.ndim != 1 + len(shape) or feats.shape[1:] != shape:
            raise ModelError(f"{self.path}: expects windows of shape {shape}, got {feats.shape[1:]}")
        session = self.session_with(threads or env_threads())
        name = session.get_inputs()[0].name
        first = [session.get_outputs()[0].name]  # the logits (a graph may also give an embedding)
        out = [session.run(first, {name: feats[i : i + batch_size]})[0] for i in range(0, len(feats), batch_size)]
        logits = np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)
        if not np.isfinite(logits).all():  # never a NaN probability in an answer
            raise ModelError(f"{self.path.name}: the model gave no finite score for this audio; check the file's samples")
        return logits

    def embed(self, feats: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """The model's embedding of each window, (n, d): the vector its classifier reads (the graph's
        'embedding' output, from the fp32 model), or for BirdNET features the features themselves."""
        feats = np.asarray(feats, dtype=np.float32)
        if self.features.kind == "birdnet":
            return feats.reshape(len(feats), -1)
        fp32 = self if self.model_file.name == "model.onnx" else Bundle.load(self.path, precision="fp32")
        session = fp32.session
        if "embedding" not in [o.name for o in session.get_outputs()]:
            raise ModelError(f"{self.path.name}: its model.onnx gives no embedding; export it again with this "
                             "version (deepdive.train.reexport, or train it again)")
        name = session.get_inputs()[0].name
        out = [session.run(["embedding"], {name: feats[i : i + batch_size]})[0] for i in range(0, len(feats), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    @property
    def temperature(self) -> float:
        """The card's calibration temperature (see `calibration`): probabilities are softmax(logits / T);
        1 for a model without one, and for detectors (their thresholds are chosen on their own scores)."""
        if self.task == "detection":
            return 1.0
        return float(self.card.get("calibration", {}).get("temperature", 1.0))

    def predict(self, feats: np.ndarray, batch_size: int = 16, threads: int | None = None) -> np.ndarray:
        """Class probabilities for windows of features, shape (n, n_classes)."""
        return softmax(self.logits(feats, batch_size, threads) / self.temperature)

    @property
    def novelty(self):
        """The bundle's "none of these" fit (`novelty.Novelty`, from `novelty.npz`), or None without one."""
        if "novelty" not in self._extras:
            from .novelty import FILE, Novelty

            path = self.path / FILE
            self._extras["novelty"] = Novelty.load(path) if path.is_file() and "novelty" in self.card else None
        return self._extras["novelty"]

    @property
    def novelty_judge(self) -> Bundle | None:
        """The bundle whose novelty fit says whether a recording sounds like a species this one knows:
        this one where it has a fit of its own; for one without (the head over BirdNET's embeddings), the
        species model its card's `novelty.judge` names (a bundled name or a folder), which must know the
        same species (`novelty.add_judge`); else None."""
        if self.novelty is not None or self.task == "detection":
            return self if self.novelty is not None else None
        name = self.card.get("novelty", {}).get("judge")
        if not name:
            return None
        if "judge" not in self._extras:
            from .novelty import check_judge

            self._extras["judge"] = check_judge(self, name)
        return self._extras["judge"]

    def predict_with_novelty(self, feats: np.ndarray, batch_size: int = 16, threads: int | None = None
                             ) -> tuple[np.ndarray, np.ndarray | None]:
        """(class probabilities (n, n_classes), each window's embedding (n, d) or None for a bundle
        without a novelty fit). One run of the graph gives both where it exports the embedding; else
        the embedding comes from the fp32 model."""
        if self.novelty is None:
            return self.predict(feats, batch_size, threads), None
        feats = np.asarray(feats, dtype=np.float32)
        session = self.session_with(threads or env_threads())
        outputs = [o.name for o in session.get_outputs()]
        if "embedding" not in outputs:
            return self.predict(feats, batch_size, threads), _silent_nan(feats, self.embed(feats, batch_size), self.novelty.gate)
        name = session.get_inputs()[0].name
        runs = [session.run([outputs[0], "embedding"], {name: feats[i : i + batch_size]})
                for i in range(0, len(feats), batch_size)]
        logits = np.concatenate([r[0] for r in runs]) if runs else np.zeros((0, len(self.labels)), np.float32)
        emb = np.concatenate([r[1] for r in runs]) if runs else np.zeros((0, 0), np.float32)
        if not np.isfinite(logits).all():
            raise ModelError(f"{self.path.name}: the model gave no finite score for this audio; check the file's samples")
        return softmax(logits / self.temperature), _silent_nan(feats, emb, self.novelty.gate)

    def detect(self, feats: np.ndarray, batch_size: int = 16, threads: int | None = None) -> np.ndarray:
        """A detector's probability of the positive class for each window, shape (n,)."""
        return self.predict(feats, batch_size, threads)[:, self.positive_index]


def _silent_nan(feats: np.ndarray, emb: np.ndarray, gate: float = -np.inf) -> np.ndarray:
    """The embeddings, NaN for windows without sound: flat features (digital silence, or samples below
    the spectrogram's floor) and, with the novelty fit's gate, windows in which no band rises above its
    background further than stationary noise does (`novelty.no_sound`). The novelty fit takes a NaN
    embedding as infinitely far from every species."""
    from .novelty import no_sound

    flat = no_sound(feats, gate)
    if flat.any():
        emb = np.array(emb, dtype=np.float32)
        emb[flat] = np.nan
    return emb


def quantize(bundle_dir: str | Path, store_path: str | Path, windows: int = 256, seed: int = 0) -> dict:
    """Write `model.int8.onnx` beside a bundle's model.onnx: static QDQ quantization (weights int8 per
    channel, activations uint8) calibrated on `windows` training windows of the store the model was
    trained on. Returns the calibration facts, and how often the two versions agree on the test
    windows' top class, for the card. Needs onnxruntime's quantization tools (and `onnx`, train extra)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    from .store import FeatureStore, atomic_write_bytes

    bundle = Bundle.load(bundle_dir, precision="fp32")
    store = FeatureStore(store_path)
    if tuple(store.batch([0]).shape[1:]) != bundle.features.shape:
        raise ModelError(f"{store_path}: its windows are not this model's input ({bundle.features.shape}); "
                         "give the store the model was trained on")
    rng = np.random.default_rng(seed)
    train = store.indices("train")
    if not train:
        raise ModelError(f"{store_path}: has no training windows to calibrate on")
    pick = sorted(rng.choice(train, min(windows, len(train)), replace=False).tolist())
    name = bundle.session.get_inputs()[0].name
    calibration = store.batch(pick).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: calibration[i : i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(bundle.path / "model.onnx"), str(pre))
        # The body is quantized: every node after the first convolution up to the last one (they are
        # nearly all the work). The first convolution sees the input's one to three channels, so int8
        # saves nothing there, and it is the layer most sensitive to rounding (top-1 agreement 98.1% ->
        # 99.2%); what comes before it (the band centring) and after the last (pooling, head) stays
        # fp32 too: quantized as well, a model trained with outlier exposure agreed with fp32 on only
        # 62% of its test windows (99% this way).
        nodes = list(onnx.load(str(pre)).graph.node)
        convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
        keep_fp32 = [n.name for i, n in enumerate(nodes) if convs and (i <= convs[0] or i > convs[-1])]
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_fp32)
        atomic_write_bytes(bundle.path / INT8_FILE, out.read_bytes())
    test = store.indices("test") or store.indices("val")
    fp32 = Bundle(bundle.path, bundle.card, precision="fp32").predict(store.batch(test))
    int8 = Bundle(bundle.path, {**bundle.card, "quantized": {"file": INT8_FILE}}, precision="int8").predict(store.batch(test))
    info = {"file": INT8_FILE, "format": "ONNX QDQ, weights int8 per channel, activations uint8 (MinMax); "
                                         "int8 from after the first convolution to the last one, fp32 before and after",
            "calibration": {"split": "train", "windows": len(pick), "seed": seed},
            "test_windows": len(test),
            "test_top1_agreement": round(float((fp32.argmax(1) == int8.argmax(1)).mean()), 4) if len(test) else None,
            "test_max_probability_difference": round(float(np.abs(fp32 - int8).max()), 4) if len(test) else None}
    update_card(bundle.path, "quantized", info)
    return info


def update_card(bundle_dir: str | Path, key: str, value) -> None:
    """Set one entry of a bundle's card (atomically); the cached bundle is loaded again."""
    from .store import atomic_write_json

    path = Path(bundle_dir) / "card.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    card[key] = value
    atomic_write_json(path, card)
    _cache.pop(str(Path(bundle_dir).resolve()), None)


def update_card_metrics(bundle_dir: str | Path, metrics: dict) -> None:
    """Write evaluation figures into a bundle's card (atomically)."""
    update_card(bundle_dir, "metrics", metrics)


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
