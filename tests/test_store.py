import numpy as np
import pytest

from deepdive.store import FeatureStore, StoreWriter, atomic_write_json, atomic_write_text, done_recordings


def test_writer_reader_and_incomplete_recordings(tmp_path):
    atomic_write_json(tmp_path / "config.json", {"labels": ["a"], "prepare": {}})
    w = StoreWriter(tmp_path, (2, 3), shard_size=2)
    for j in range(3):
        w.add(np.full((2, 3), j, np.float32), {"key": "rec1", "label": "a", "split": "train", "last": int(j == 2)})
    w.add(np.zeros((2, 3)), {"key": "rec2", "label": "a", "split": "test", "last": 0})  # never finished
    w.flush()
    assert done_recordings(tmp_path) == {"rec1"}
    s = FeatureStore(tmp_path)
    assert len(s) == 3 and [r["key"] for r in s.rows] == ["rec1"] * 3
    assert s.features(2)[0, 0] == 2.0 and s.features(2).dtype == np.float32
    with pytest.raises(ValueError):
        w.add(np.zeros((3, 3)), {"key": "x"})


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_store_without_config(tmp_path):
    from deepdive.errors import DatasetError

    with pytest.raises(DatasetError, match="prepare"):
        FeatureStore(tmp_path)
