from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WATKINS = SHARED / "watkins"
RIGHTWHALE = SHARED / "rightwhale2k"


def pytest_collection_modifyitems(config, items):
    if not (WATKINS / "metadata.csv").is_file() or not (RIGHTWHALE / "train.csv").is_file():
        skip = pytest.mark.skip(reason=f"real data not found at {SHARED} (tests marked 'real' need ../shared/data)")
        for item in items:
            if "real" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    from deepdive import synth

    return synth.write_corpus(tmp_path_factory.mktemp("corpus"), encounters=3, cuts_per_encounter=4, seed=1)


@pytest.fixture(scope="session")
def small_cfg():
    from deepdive.features.spectrogram import MelConfig
    from deepdive.prepare import PrepareConfig

    # a small feature shape keeps the end-to-end test quick on two cores
    return PrepareConfig(features=MelConfig(sr=16000, n_fft=1024, hop_length=512, n_mels=48, fmin=20, fmax=8000, window_s=3.0),
                         min_last_s=1.5, shard_size=32)


@pytest.fixture(scope="session")
def synth_store(synth_corpus, small_cfg, tmp_path_factory) -> Path:
    from deepdive.datasets import load_watkins
    from deepdive.prepare import prepare

    out = tmp_path_factory.mktemp("store")
    prepare(load_watkins(synth_corpus), out, small_cfg, source={"kind": "synthetic", "terms": "synthetic, no terms"})
    return out


@pytest.fixture(scope="session")
def synth_model(synth_store, tmp_path_factory) -> Path:
    from deepdive.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model")
    train(synth_store, out, TrainConfig(model="deepdive-resnet", epochs=20, patience=20, lr=3e-3, seed=0), progress=False)
    return out


@pytest.fixture(scope="session")
def synth_kaggle(tmp_path_factory) -> Path:
    from deepdive import synth

    return synth.write_kaggle(tmp_path_factory.mktemp("kaggle"), tapes=8, clips_per_tape=10, seed=3)


def detection_cfg(features=None):
    from deepdive.features import StftImageConfig
    from deepdive.prepare import PrepareConfig

    return PrepareConfig(features=features or StftImageConfig(), task="detection", positive="right whale",
                         min_last_s=1.0, pad="mirror", shift="roll", augment_all=True, shard_size=64)


@pytest.fixture(scope="session")
def detector_store(synth_kaggle, tmp_path_factory) -> Path:
    from deepdive.datasets import load_kaggle
    from deepdive.prepare import prepare

    out = tmp_path_factory.mktemp("det-store")
    prepare(load_kaggle(synth_kaggle), out, detection_cfg(), source={"kind": "synthetic"})
    return out


@pytest.fixture(scope="session")
def detector_model(detector_store, tmp_path_factory) -> Path:
    from deepdive.train import TrainConfig, train

    out = tmp_path_factory.mktemp("det-model")
    train(detector_store, out, TrainConfig(model="detector-cnn", epochs=12, patience=12, lr=3e-3, seed=0), progress=False)
    return out


@pytest.fixture(scope="session")
def live_server():
    """The app on uvicorn in a thread, on a free loopback port: its base URL."""
    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    import socket
    import threading
    import time

    import uvicorn

    from deepdive.web import Settings, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(workers=2)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):  # start-up loads the models; bounded wait
        if server.started:
            break
        time.sleep(0.1)
    assert server.started, "the test server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
