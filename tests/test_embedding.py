"""Search by example: embed every window of some recordings, then find the windows nearest a query."""

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from deepdive import synth
from deepdive.cli import app

pytest.importorskip("pyarrow")
runner = CliRunner()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    d = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(21)
    for kind in ("whistle", "clicks", "moan"):
        sf.write(d / f"{kind}.wav", synth.recording(kind, 32000, 20.0, rng, snr_db=20, n_calls=8), 32000)
    sf.write(d / "query.wav", synth.recording("whistle", 32000, 5.0, rng, snr_db=20, n_calls=2), 32000)
    return d


def test_embed_and_search_find_windows_like_the_query(library, tmp_path):
    emb = tmp_path / "emb.parquet"
    res = runner.invoke(app, ["embed", *(str(library / f"{k}.wav") for k in ("whistle", "clicks", "moan")),
                              "--out", str(emb)])
    assert res.exit_code == 0, res.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(emb)
    assert table.column_names == ["file", "start_s", "end_s", "embedding"]
    assert table.num_rows == 3 * 8  # 20 s: windows every 2.5 s (rounded to STFT frames), and one ending at the end
    assert len(table.column("embedding")[0]) == int(table.schema.metadata[b"deepdive.dim"]) == 256
    res = runner.invoke(app, ["search", str(library / "query.wav"), str(emb), "--top", "5", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    hits = json.loads(res.stdout)
    assert len(hits) == 5 and hits[0]["similarity"] >= hits[-1]["similarity"]
    assert sum(h["file"].endswith("whistle.wav") for h in hits) >= 4  # whistles are nearest a whistle
    # the detector's embeddings, searched with the model named in the table
    res = runner.invoke(app, ["embed", str(library / "moan.wav"), "--out", str(tmp_path / "d.parquet"),
                              "--model", "rightwhale", "--hop", "1"])
    assert res.exit_code == 0, res.stderr
    assert pq.read_table(tmp_path / "d.parquet").num_rows == 19 + 1  # 2 s windows every 1 s, one ending at the end
    res = runner.invoke(app, ["search", str(library / "query.wav"), str(tmp_path / "d.parquet"), "--top", "3"])
    assert res.exit_code == 0, res.stderr


def test_embed_and_search_errors(library, tmp_path):
    res = runner.invoke(app, ["embed", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "e.parquet")])
    assert res.exit_code == 1 and "no window was embedded" in res.stderr
    res = runner.invoke(app, ["search", str(library / "query.wav"), str(tmp_path / "none.parquet")])
    assert res.exit_code == 1 and "no such embeddings file" in res.stderr
    (tmp_path / "bad.parquet").write_text("not parquet")
    res = runner.invoke(app, ["search", str(library / "query.wav"), str(tmp_path / "bad.parquet")])
    assert res.exit_code == 1 and "not a Parquet file" in res.stderr and "Traceback" not in res.stderr
    runner.invoke(app, ["embed", str(library / "moan.wav"), "--out", str(tmp_path / "s.parquet")])
    res = runner.invoke(app, ["search", str(library / "query.wav"), str(tmp_path / "s.parquet"), "--model", "rightwhale"])
    assert res.exit_code == 1 and "not this model's" in res.stderr
