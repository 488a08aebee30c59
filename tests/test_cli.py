import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from deepdive.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from deepdive import synth

    d = tmp_path_factory.mktemp("cli")
    good = d / "whistle.wav"
    sf.write(good, synth.recording("whistle", 48000, 5.0, np.random.default_rng(0)), 48000)
    bad = d / "notes.wav"
    bad.write_text("field notes, not audio")
    return good, bad


def test_classify_json_with_a_bad_file(files):
    good, bad = files
    res = runner.invoke(app, ["classify", str(good), str(bad), str(good), "--format", "json"])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert [o["file"] for o in out] == [str(good), str(bad), str(good)]
    assert "ranking" in out[0] and "error" in out[1] and "ranking" in out[2]
    assert len(out[0]["ranking"]) == 16
    assert abs(sum(r["probability"] for r in out[0]["ranking"]) - 1) < 1e-5
    assert set(out[0]["ranking"][0]) == {"species", "scientific_name", "probability"}
    assert f"error: {bad}: " in res.stderr and "Traceback" not in res.stderr


def test_classify_table_and_csv(files):
    good, _ = files
    res = runner.invoke(app, ["classify", str(good), "--top", "3"])
    assert res.exit_code == 0 and "probability" in res.stdout
    res = runner.invoke(app, ["classify", str(good), "--format", "csv", "--top", "2"])
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "file,rank,species,scientific_name,probability,error" and len(lines) == 3


def test_missing_model_is_one_line(files, tmp_path):
    good, _ = files
    res = runner.invoke(app, ["classify", str(good), "--model", str(tmp_path / "none")])
    assert res.exit_code == 1 and res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1


def test_python_dash_m_and_console_script(files):
    good, _ = files
    res = subprocess.run([sys.executable, "-m", "deepdive", "classify", str(good), "--format", "json", "--top", "1"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["ranking"][0]["probability"] > 0


def test_demo(tmp_path):
    res = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.stdout
    assert "synthetic" in res.stdout.lower() and len(list(tmp_path.glob("synthetic_*.wav"))) == 7
    assert "right-whale calls (threshold" in res.stdout.lower()


def test_prepare_train_evaluate_commands(synth_corpus, tmp_path):
    store, model = tmp_path / "store", tmp_path / "model"
    res = runner.invoke(app, ["prepare", "watkins", str(synth_corpus), "--out", str(store), "--window", "3",
                              "--species", "Synthetic upcall", "--species", "Synthetic whistle"])
    assert res.exit_code == 0, res.stdout
    assert "Synthetic upcall" in res.stdout and "encounter" in res.stdout
    res = runner.invoke(app, ["train", str(store), "--out", str(model), "--epochs", "2", "--model", "deepdive-cnn"])
    assert res.exit_code == 0, res.stdout
    res = runner.invoke(app, ["evaluate", str(model), str(store)])
    assert res.exit_code == 0, res.stdout
    card = json.loads((model / "card.json").read_text())
    assert card["metrics"]["test"]["recording"]["n"] > 0
    assert (model / "eval" / "report.md").is_file()
    res = runner.invoke(app, ["prepare", "watkins", str(tmp_path / "nothing"), "--out", str(store)])
    assert res.exit_code == 1 and "error:" in res.stderr
