import json

import numpy as np
import pytest

from deepdive.bundle import Bundle, bundled_path, resolve, softmax
from deepdive.errors import ModelError


def test_softmax():
    p = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3)]]))
    assert np.allclose(p, [[0.5, 0.5], [0.25, 0.75]])


def test_missing_and_broken_bundles(tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        Bundle.load(tmp_path / "nope")
    (tmp_path / "b").mkdir()
    with pytest.raises(ModelError, match="card.json"):
        Bundle.load(tmp_path / "b")
    (tmp_path / "b" / "card.json").write_text("{not json")
    (tmp_path / "b" / "model.onnx").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not valid JSON"):
        Bundle.load(tmp_path / "b")
    (tmp_path / "b" / "card.json").write_text(json.dumps({"labels": [{"species": "a"}], "features": {}}))
    with pytest.raises(ModelError, match="ONNX Runtime"):
        _ = Bundle.load(tmp_path / "b").session


def test_bundled_species_model_is_shipped():
    path = bundled_path("species")
    assert (path / "model.onnx").is_file() and (path / "card.json").is_file()
    b = resolve(None, "species")
    card = b.card
    assert b.labels == sorted({row["label"] for row in card["split"]["report"]})  # the species its split dealt
    assert len(b.labels) >= 16
    assert all(lab["scientific_name"] for lab in card["labels"])
    assert "non-commercial" in card["data_terms"] and "Watkins" in card["data_terms"]
    assert card["metrics"]["test"]["recording"]["n"] > 0
    size = (path / "model.onnx").stat().st_size
    assert size < 8 * 1024 * 1024


def test_resolve_reloads_a_folder_retrained_in_place(synth_model, tmp_path):
    import json
    import shutil

    from deepdive.bundle import resolve

    folder = tmp_path / "m"
    shutil.copytree(synth_model, folder)
    first = resolve(folder)
    assert resolve(folder) is first
    card = json.loads((folder / "card.json").read_text())
    card["threshold"] = 0.25
    (folder / "card.json").write_text(json.dumps(card) + "\n\n")
    again = resolve(folder)
    assert again is not first and again.card["threshold"] == 0.25


def test_quantize_writes_an_int8_model_used_by_default(synth_model, synth_store, tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from deepdive.cli import app
    from deepdive.store import FeatureStore

    folder = tmp_path / "m"
    shutil.copytree(synth_model, folder)
    assert resolve(folder).model_file.name == "model.onnx"  # no int8 model yet: fp32
    r = CliRunner().invoke(app, ["quantize", str(folder), str(synth_store), "--windows", "32"])
    assert r.exit_code == 0, r.output
    assert (folder / "model.int8.onnx").is_file()
    q = json.loads((folder / "card.json").read_text())["quantized"]
    assert q["file"] == "model.int8.onnx" and q["calibration"] == {"split": "train", "windows": 32, "seed": 0}
    assert set(q["test"]) == {"fp32", "int8"} and q["test"]["int8"]["recording"]["n"] > 0

    int8, fp32 = resolve(folder), Bundle.load(folder, precision="fp32")
    assert int8.model_file.name == "model.int8.onnx" and fp32.model_file.name == "model.onnx"
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size
    import onnx

    graph = onnx.load(str(folder / "model.int8.onnx")).graph
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert made_by.get(convs[0].input[1]) != "DequantizeLinear"  # the first convolution keeps fp32 weights
    assert all(made_by.get(c.input[1]) == "DequantizeLinear" for c in convs[1:])  # every other one is int8
    store = FeatureStore(synth_store)
    x = store.batch(store.indices("test"))
    p8, p32 = int8.predict(x), fp32.predict(x)
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.9  # the same model, 8-bit
    assert np.abs(p8 - p32).max() < 0.2 and not np.array_equal(p8, p32)

    monkeypatch.setenv("DEEPDIVE_PRECISION", "fp32")
    assert Bundle.load(folder).model_file.name == "model.onnx"
    monkeypatch.setenv("DEEPDIVE_PRECISION", "int4")
    with pytest.raises(ModelError, match="DEEPDIVE_PRECISION"):
        _ = Bundle.load(folder).model_file


def test_bundled_species_model_ships_its_int8_version():
    b = resolve(None, "species")
    q = b.card["quantized"]
    assert (b.path / q["file"]).is_file() and b.model_file.name == q["file"]
    # measured when it was made: the 8-bit model agrees with fp32 and scores like it on the test split
    assert q["test_top1_agreement"] >= 0.95
    assert abs(q["test"]["int8"]["recording"]["accuracy"] - q["test"]["fp32"]["recording"]["accuracy"]) <= 0.02


def test_bundled_cards_are_strict_json():
    """Cards are read by other tools too (jq, a browser's JSON.parse): no NaN or Infinity in them."""
    from pathlib import Path

    import deepdive

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    cards = sorted((Path(deepdive.__file__).parent / "bundled").glob("*/card.json"))
    assert len(cards) == 3
    for card in cards:
        json.loads(card.read_text(), parse_constant=refuse)
