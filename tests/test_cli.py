import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from deepdive.bundle import resolve
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
    assert len(out[0]["ranking"]) == len(resolve(None, "species").labels)
    assert abs(sum(r["probability"] for r in out[0]["ranking"]) - 1) < 1e-5
    assert set(out[0]["ranking"][0]) == {"species", "scientific_name", "probability"}
    assert f"error: {bad}: " in res.stderr and "Traceback" not in res.stderr


def test_classify_table_and_csv(files):
    good, _ = files
    res = runner.invoke(app, ["classify", str(good), "--top", "3"])
    assert res.exit_code == 0 and "probability" in res.stdout
    res = runner.invoke(app, ["classify", str(good), "--format", "csv", "--top", "2"])
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "file,rank,species,scientific_name,probability,known,novelty,error" and len(lines) == 3


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
    res = runner.invoke(app, ["train", str(store), "--out", str(model), "--epochs", "2", "--model", "deepdive-resnet-fast",
                              "--novelty-threshold", "0.99"])
    assert res.exit_code == 0, res.stdout
    from deepdive.novelty import Novelty

    assert json.loads((model / "card.json").read_text())["novelty"]["threshold"] == 0.99
    assert Novelty.load(model / "novelty.npz").threshold == 0.99  # what `known` is decided by
    res = runner.invoke(app, ["evaluate", str(model), str(store)])
    assert res.exit_code == 0, res.stdout
    card = json.loads((model / "card.json").read_text())
    assert card["metrics"]["test"]["recording"]["n"] > 0
    assert (model / "eval" / "report.md").is_file()
    res = runner.invoke(app, ["prepare", "watkins", str(tmp_path / "nothing"), "--out", str(store)])
    assert res.exit_code == 1 and "error:" in res.stderr


# ---------------------------------------------------------------- bad inputs, bad options, bad places
# Every case runs the real command line (`python -m deepdive`, through `cli.main`) on a corpus of bad
# inputs made in tmp_path, and must give its exit code and one `error:` line naming the fix: never a
# traceback, never a NaN in JSON, and the other files of a batch still processed.


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from deepdive import synth

    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(3)
    y = synth.recording("whistle", 16000, 3.0, rng)
    sf.write(d / "good.wav", y, 16000)
    sf.write(d / "clip.aiff", synth.recording("upcall", 2000, 2.0, rng, n_calls=1), 2000, format="AIFF")
    (d / "notes.wav").write_text("field notes, not audio")
    sf.write(d / "huge.wav", (y / np.abs(y).max() * 3e38).astype(np.float32), 16000, subtype="FLOAT")
    sf.write(d / "one_sample.wav", y[:1], 16000)
    for ext, fmt, sub in (("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")):
        sf.write(d / f"whole.{ext}", np.tile(y, 3), 16000, format=fmt, subtype=sub)
        data = (d / f"whole.{ext}").read_bytes()
        (d / f"cut.{ext}").write_bytes(data[: len(data) // 2])
    (d / "emptydir").mkdir()
    (d / "nest" / "sub").mkdir(parents=True)
    sf.write(d / "nest" / "sub" / "good.wav", y, 16000)
    (d / "existing_file").write_text("")
    long_name = d / ("x" * 246 + ".wav")  # 250 bytes: the longest names a file system takes, less a little
    long_name.write_bytes((d / "good.wav").read_bytes())
    odd = d / os.fsdecode(b"caf\xe9-\xff.wav")  # not UTF-8
    odd.write_bytes((d / "good.wav").read_bytes())
    synth.write_corpus(d / "watkins", encounters=2, cuts_per_encounter=2, seed=1)
    synth.write_kaggle(d / "challenge", tapes=4, clips_per_tape=4, seed=2)
    return d


def _deepdive(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "deepdive", *map(str, args)], capture_output=True, cwd=cwd,
                          timeout=timeout)


BAD_CASES = [
    # (id, arguments (with {d} the corpus folder), exit code, what stderr says)
    ("out-is-a-file", ["scan", "{d}/good.wav", "--out", "{d}/existing_file"], 1, "is a file, not a folder"),
    ("out-under-a-file", ["scan", "{d}/good.wav", "--out", "{d}/existing_file/out"], 1, "cannot create the folder"),
    ("hop-inf", ["scan", "{d}/good.wav", "--out", "{d}/o", "--hop", "inf"], 1, "--hop inf"),
    ("hop-nan", ["scan", "{d}/good.wav", "--out", "{d}/o", "--hop", "nan"], 1, "--hop nan"),
    ("hop-zero", ["scan", "{d}/good.wav", "--out", "{d}/o", "--hop", "0"], 1, "above 0"),
    ("hop-negative", ["scan", "{d}/good.wav", "--out", "{d}/o", "--hop", "-1"], 1, "above 0"),
    ("hop-huge", ["scan", "{d}/good.wav", "--out", "{d}/o", "--hop", "1e308"], 1, "at most 86400"),
    ("threshold-5", ["scan", "{d}/good.wav", "--out", "{d}/o", "--threshold", "5"], 1, "from 0 to 1"),
    ("threshold-nan", ["detect", "{d}/clip.aiff", "--threshold", "nan"], 1, "from 0 to 1"),
    ("workers-0", ["scan", "{d}/good.wav", "--out", "{d}/o", "--workers", "0"], 1, "--workers 0"),
    ("top-0", ["classify", "{d}/good.wav", "--top", "0"], 1, "--top 0"),
    ("top-negative", ["classify", "{d}/good.wav", "--top", "-2"], 1, "--top -2"),
    ("port-70000", ["serve", "--port", "70000"], 1, "--port 70000"),
    ("host-unknown", ["serve", "--host", "no.such.host.invalid"], 1, "cannot listen on no.such.host.invalid"),
    ("folder-of-folders", ["scan", "{d}/nest", "--out", "{d}/o"], 1, "add --recursive"),
    ("nothing-to-scan", ["scan", "{d}/emptydir", "--out", "{d}/o"], 1, "no audio files"),
    ("dask-unreachable", ["scan", "{d}/good.wav", "--out", "{d}/o", "--dask", "tcp://127.0.0.1:1"], 1,
     "cannot reach the Dask scheduler"),
    ("submission-into-a-folder", ["detect", "{d}/clip.aiff", "--submission", "{d}/emptydir"], 1,
     "cannot write the submission"),
    ("submission-under-a-file", ["detect", "{d}/clip.aiff", "--submission", "{d}/existing_file/sub.csv"], 1,
     "cannot write the submission"),
    ("novelty-threshold-2", ["train", "{d}/watkins", "--out", "{d}/m", "--novelty-threshold", "2"], 1,
     "give a novelty from 0 to 1"),
    ("train-device-unknown", ["train", "{d}/watkins", "--out", "{d}/m", "--device", "gpu0"], 1, "not a torch device"),
    ("prepare-workers-0", ["prepare", "watkins", "{d}/watkins", "--out", "{d}/s3", "--workers", "0"], 1, "--workers 0"),
    ("unknown-species", ["prepare", "watkins", "{d}/watkins", "--out", "{d}/s1", "--species", "Unicorn"], 1,
     "--species Unicorn: not in this dataset; it holds"),
    ("unknown-family", ["prepare", "watkins", "{d}/watkins", "--out", "{d}/s2", "--family", "Dragons"], 1,
     "--family Dragons: not in this dataset"),
    ("detector-on-species-folders", ["evaluate", "{bundled}/detector", "{d}/watkins", "--out", "{d}/ev",
                                     "--no-update-card"], 1, "none labelled 'right whale'"),
    ("truncated-ogg", ["classify", "{d}/cut.ogg"], 1, "truncated"),
    ("truncated-mp3", ["classify", "{d}/cut.mp3"], 1, "truncated"),
    ("one-sample-classify", ["classify", "{d}/one_sample.wav"], 1, "too short; give at least 0.02 s"),
    ("one-sample-detect", ["detect", "{d}/one_sample.wav"], 1, "too short; give at least 0.02 s"),
    ("one-sample-scan", ["scan", "{d}/one_sample.wav", "--out", "{d}/o1"], 1, ""),
    # one bad argument among good ones: the others still run, the exit code says something failed
    ("missing-among-good", ["classify", "{d}/good.wav", "{d}/missing.wav", "{d}/good.wav", "-f", "json"], 1,
     "missing.wav: no such file"),
    ("empty-folder-among-good", ["detect", "{d}/clip.aiff", "{d}/emptydir", "{d}/clip.aiff", "-f", "json"], 1,
     "emptydir: no .aiff"),
    # accepted, and right: a detector on a challenge folder needs no --kind; odd and long names scan
    ("evaluate-challenge-folder", ["evaluate", "{bundled}/detector", "{d}/challenge", "--out", "{d}/ev2",
                                   "--no-update-card"], 0, None),
    ("odd-and-long-names", ["scan", "{odd}", "{long}", "--out", "{d}/names", "--format", "raven,csv,json,parquet"],
     0, None),
    ("huge-samples", ["classify", "{d}/huge.wav", "-f", "json"], 0, None),
    ("huge-samples-detect", ["detect", "{d}/huge.wav", "-f", "json"], 0, None),
    ("whole-ogg", ["classify", "{d}/whole.ogg", "--top", "1"], 0, None),
]


def test_prepare_watkins_with_calls_of_another_recorder(synth_corpus, synth_kaggle, tmp_path):
    """`prepare watkins --calls`: a challenge folder's up-calls join a species as a second source. The
    Watkins cuts keep the split they get alone, each source is balanced on its own, the card says where
    the calls came from, and `evaluate` reports each source, the clip-grouped calls outside the
    encounter-disjoint figure."""
    import shutil

    calls = tmp_path / "challenge"
    shutil.copytree(synth_kaggle, calls)
    (calls / "sources.csv").unlink()  # grouped by identical clips, as the challenge's own buoy clips are
    alone, both, model = tmp_path / "alone", tmp_path / "both", tmp_path / "model"
    common = ["--window", "3", "--species", "Synthetic upcall", "--species", "Synthetic whistle", "--species", "Synthetic moan"]
    assert runner.invoke(app, ["prepare", "watkins", str(synth_corpus), "--out", str(alone), *common]).exit_code == 0
    res = runner.invoke(app, ["prepare", "watkins", str(synth_corpus), "--out", str(both), *common, "--calls", str(calls),
                              "--calls-species", "Synthetic upcall", "--calls-max", "12"])
    assert res.exit_code == 0, res.stdout
    single = json.loads((alone / "config.json").read_text())
    config = json.loads((both / "config.json").read_text())
    mine = {r["label"]: r for r in config["split_report"] if r["source"] == synth_corpus.name}
    for row in single["split_report"]:
        for split in ("train", "val", "test"):
            assert [u.removeprefix(synth_corpus.name + "/") for u in mine[row["label"]][f"{split}_units"]] == row[f"{split}_units"]
    added = [r for r in config["split_report"] if r["source"] == "challenge"]
    assert [r["label"] for r in added] == ["Synthetic upcall"]
    assert sum(added[0][f"{s}_recordings"] for s in ("train", "val", "test")) >= 12
    assert "challenge: Synthetic upcall" in config["slices_per_label"]
    assert config["source"]["calls"] == {"path": str(calls), "species": "Synthetic upcall", "max": 12, "seed": 0,
                                         "source": "challenge"}
    res = runner.invoke(app, ["train", str(both), "--out", str(model), "--epochs", "2", "--model", "deepdive-resnet-fast"])
    assert res.exit_code == 0, res.stdout
    # "none of these" is judged against validation recordings of encounters never heard: the Watkins
    # source's, not the calls' (one recorder, split clip by clip); the calls' validation clips are there
    from deepdive.bundle import Bundle
    from deepdive.novelty import fit_store
    from deepdive.store import FeatureStore

    card = json.loads((model / "card.json").read_text())
    val = {s: sum(r["val_recordings"] for r in config["split_report"] if r["source"] == s) for s in ("challenge", synth_corpus.name)}
    assert val["challenge"] > 0 and "challenge" in card["novelty"]["reference"]
    assert card["novelty"]["fitted_on"]["validation_recordings"] == val[synth_corpus.name]
    _, with_calls = fit_store(Bundle.load(model, precision="fp32"), FeatureStore(both), reference_calls=True)
    assert with_calls["fitted_on"]["validation_recordings"] == val[synth_corpus.name] + val["challenge"]
    assert "reference" not in with_calls
    res = runner.invoke(app, ["evaluate", str(model), str(both), "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.stdout
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    figures = report["by_source"]
    assert figures["challenge"]["recording"]["n"] == added[0]["test_recordings"]
    assert figures[synth_corpus.name]["recording"]["n"] == sum(r["test_recordings"] for r in single["split_report"])
    assert figures["challenge"]["encounter_disjoint"]["recording"].get("n", 0) == 0
    assert report["encounter_disjoint"]["recording"]["n"] == figures[synth_corpus.name]["encounter_disjoint"]["recording"]["n"]
    assert "challenge: recording" in (tmp_path / "eval" / "report.md").read_text()
    res = runner.invoke(app, ["prepare", "watkins", str(synth_corpus), "--out", str(tmp_path / "s"), "--calls", str(calls),
                              "--calls-species", "Unicorn"])
    assert res.exit_code == 1 and "--calls-species Unicorn" in res.output


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_inputs_give_one_line(corpus, case):
    from pathlib import Path

    import deepdive

    name, args, code, says = case
    bundled = Path(deepdive.__file__).parent / "bundled"
    odd = next(p for p in corpus.iterdir() if p.name.startswith("caf"))
    long = next(p for p in corpus.iterdir() if p.name.startswith("xxxx"))
    argv = [a.format(d=corpus, bundled=bundled) if "{odd}" not in a and "{long}" not in a else
            (odd if a == "{odd}" else long) for a in args]
    res = _deepdive(*argv)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == code, (name, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    if says:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert any(says in line for line in lines), err
    out = res.stdout.decode("utf-8", "replace")
    if "-f" in args and "json" in args:
        json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    if name == "missing-among-good":
        assert [("ranking" in o) for o in json.loads(out)] == [True, False, True]
    if name == "empty-folder-among-good":
        assert [o["file"].endswith("clip.aiff") and "probability" in o for o in json.loads(out)] == [True, True]
    if name.startswith("one-sample"):  # the same verdict in every command
        said = err if name != "one-sample-scan" else (corpus / "o1" / "errors.csv").read_text()
        assert "too short; give at least 0.02 s" in said
    if name == "odd-and-long-names":
        raven = sorted(p.name for p in (corpus / "names").glob("*.selections.txt"))
        assert len(raven) == 3 and all(len(n.encode()) < 120 for n in raven)  # all, one per file, short names
    if name == "huge-samples-detect":
        assert 0 <= json.loads(out)[0]["probability"] <= 1


def test_serve_on_a_port_in_use_is_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        res = _deepdive("serve", "--port", taken.getsockname()[1])
    assert res.returncode == 1 and b"Address already in use" in res.stderr and b"Traceback" not in res.stderr


def test_version_and_short_help():
    from deepdive import __version__

    res = _deepdive("--version")
    assert res.returncode == 0 and res.stdout.decode().strip() == f"deepdive {__version__}"
    res = _deepdive("-h")
    assert res.returncode == 0 and b"classify" in res.stdout
    res = _deepdive("scan", "-h")
    assert res.returncode == 0 and b"--hop" in res.stdout


def test_a_full_disk_is_one_line(corpus, monkeypatch, capsys):
    """ENOSPC (or any system error a command did not expect) while writing: one line naming the path."""
    import errno

    from deepdive import cli, store

    def full(path, data, durable=True):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store, "atomic_write_bytes", full)
    monkeypatch.setattr(sys, "argv", ["deepdive", "scan", str(corpus / "good.wav"), "--out", str(corpus / "full")])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert err.strip().splitlines()[-1].startswith("error: ") and "No space left on device" in err
    assert "Traceback" not in err


def test_an_unreadable_folder_is_reported_and_the_rest_scanned(corpus, monkeypatch, tmp_path):
    """A folder that cannot be listed (as a user without the right would find it) is one failed entry;
    the files given beside it are still scanned."""
    from pathlib import Path

    from deepdive.scanning import scan_files

    locked = corpus / "nest"
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    summary = scan_files([locked, corpus / "good.wav"], tmp_path / "out")
    assert summary["files"] == 2 and summary["failed"] == 1
    assert "cannot list the folder (Permission denied)" in (tmp_path / "out" / "errors.csv").read_text()


def test_raven_names_follow_the_order_given_not_the_finishing_order(corpus, tmp_path):
    """Same-named files of two folders: the first given is x.selections.txt, the second x-2, with
    worker processes finishing in any order; a rerun keeps the names."""
    from deepdive.scanning import _output_names, scan_files

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    long = np.tile(sf.read(corpus / "good.wav")[0], 20)  # the first takes longer: it finishes last
    sf.write(a / "x.wav", long, 16000)
    sf.write(b / "x.wav", sf.read(corpus / "good.wav")[0], 16000)
    assert _output_names([a / "x.wav", b / "x.wav"], set()) == {str(a / "x.wav"): "x", str(b / "x.wav"): "x-2"}
    scan_files([a / "x.wav", b / "x.wav"], tmp_path / "out", model="species", workers=2)
    journal = [json.loads(line) for line in (tmp_path / "out" / "journal.jsonl").read_text().splitlines()]
    assert {e["file"]: e["raven"] for e in journal} == {str(a / "x.wav"): "x.selections.txt",
                                                        str(b / "x.wav"): "x-2.selections.txt"}


def test_a_second_scan_into_the_same_folder_stops_at_once(corpus, tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".scan.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = _deepdive("scan", corpus / "good.wav", "--out", out)
    assert res.returncode == 1 and b"another scan is writing into this folder" in res.stderr
    assert not (out / "journal.jsonl").exists()
    assert _deepdive("scan", corpus / "good.wav", "--out", out).returncode == 0  # once the first is done


def test_classify_min_confidence_keeps_only_the_species_above_it(tmp_path):
    import json

    import soundfile as sf
    from typer.testing import CliRunner

    import deepdive
    from deepdive import synth
    from deepdive.cli import app

    rng = np.random.default_rng(3)
    path = tmp_path / "a.wav"
    sf.write(path, synth.recording("upcall", 8000, 4.0, rng, n_calls=1), 8000)
    full = deepdive.classify(path)
    probs = [r["probability"] for r in full]
    k = next(i for i in range(1, len(probs)) if probs[i] < probs[i - 1] and i >= 2)  # the first drop after 2 species
    cut = (probs[k - 1] + probs[k]) / 2
    kept = deepdive.classify(path, min_confidence=cut)
    assert list(kept) == full[:k] and all(r["probability"] >= cut for r in kept)
    runner = CliRunner()
    res = runner.invoke(app, ["classify", str(path), "--min-confidence", str(cut), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["ranking"] == json.loads(json.dumps(full[:k]))
    res = runner.invoke(app, ["classify", str(path), "--min-confidence", "1"])
    assert res.exit_code == 0 and "no species at or above 100%" in res.stdout
    for bad in ("1.5", "-0.1", "nan"):
        res = runner.invoke(app, ["classify", str(path), "--min-confidence", bad])
        assert res.exit_code == 1 and "--min-confidence" in res.stderr
