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
    assert len(b.labels) == 16
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
