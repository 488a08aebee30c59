"""Scanning long recordings: shared frames give exactly the windows computed alone; events merge."""

import numpy as np
import pytest
import soundfile as sf

from deepdive import synth
from deepdive.bundle import resolve
from deepdive.scanning import events_from_scores, prefetched, scan, sliding_windows, window_scores


def _windows(source, bundle, hop, sr=None):
    starts, feats = zip(*sliding_windows(source, bundle, hop, sr=sr, batch=7), strict=True)
    return np.concatenate(starts), np.concatenate(feats)


@pytest.mark.parametrize(("task", "duration", "hop"), [("detection", 23.3, 0.5), ("detection", 7.77, 0.5),
                                                      ("detection", 61.3, 0.5), ("detection", 31.1, 0.05),
                                                      ("species", 23.3, 0.5), ("species", 7.77, 0.5),
                                                      ("species", 171.0, 0.5), ("species", 280.0, 1.4)])
def test_shared_frames_equal_windows_computed_alone(task, duration, hop):
    """Over chunk seams too (the detector's chunks are about 16 s, the species model's about 80 s at a
    hop of half a window); hop is a fraction of the window."""
    bundle = resolve(None, task)
    cfg = bundle.features
    y = synth.recording("upcall", cfg.sr, duration, np.random.default_rng(1), n_calls=2)
    starts, feats = _windows(y, bundle, cfg.window_s * hop, sr=cfg.sr)
    step = round(cfg.window_s * hop * cfg.sr / cfg.hop_length) * cfg.hop_length / cfg.sr
    assert np.allclose(np.diff(starts)[:-1], step)  # hop rounded to whole frames
    assert starts[-1] + cfg.window_s == pytest.approx(duration, abs=cfg.hop_length / cfg.sr)  # a last window at the end
    for s, f in zip(starts, feats, strict=True):
        i = int(round(s * cfg.sr))
        np.testing.assert_allclose(f, cfg.compute(y[i : i + cfg.window_samples], cfg.sr), atol=1e-4)


def test_every_frame_is_computed_once_and_threads_give_the_same_scores(tmp_path, monkeypatch):
    import threading

    import deepdive.scanning as scanning

    bundle = resolve(None, "detection")
    cfg = bundle.features
    y = synth.recording("upcall", cfg.sr, 75.0, np.random.default_rng(4), n_calls=6)
    sf.write(tmp_path / "a.wav", y, cfg.sr, subtype="FLOAT")
    computed = []
    chunk_frames = scanning._chunk_frames
    monkeypatch.setattr(scanning, "_chunk_frames", lambda c, p: computed.append(chunk_frames(c, p)) or computed[-1])
    s1, p1, _ = window_scores(tmp_path / "a.wav", bundle, hop_s=0.5, threads=1)
    assert len(computed) > 3  # several chunks, each computed once: as many frames as the file has
    assert sum(len(c) for c in computed) == len(y) // cfg.hop_length + 1
    monkeypatch.setattr(scanning, "_chunk_frames", chunk_frames)
    for threads in (2, 3):
        s2, p2, _ = window_scores(tmp_path / "a.wav", bundle, hop_s=0.5, threads=threads)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_allclose(p1, p2, atol=1e-6)
    assert not any(t.name.startswith("deepdive-scan") for t in threading.enumerate())

    def failing(feats, threads=None):
        raise ValueError("model failed")

    monkeypatch.setattr(bundle, "detect", failing)
    with pytest.raises(ValueError, match="model failed"):  # raised in a lane, seen by the caller
        window_scores(tmp_path / "a.wav", bundle, hop_s=0.5, threads=2)
    assert not any(t.name.startswith("deepdive-scan") for t in threading.enumerate())


def test_samples_held_as_blocks():
    from deepdive.scanning import _Samples

    held = _Samples()
    for k in range(4):
        held.append(np.arange(10 * k, 10 * k + 10, dtype=np.float32))
    np.testing.assert_array_equal(held.slice(5, 27), np.arange(5, 27))
    assert np.shares_memory(held.slice(12, 18), held.blocks[1])  # inside one block: a view
    held.drop_before(25)
    assert held.first == 20 and len(held.blocks) == 2
    np.testing.assert_array_equal(held.slice(25, 40), np.arange(25, 40))
    with pytest.raises(AssertionError):
        held.slice(15, 30)


def test_file_and_array_agree_and_short_files_are_padded(tmp_path):
    bundle = resolve(None, "detection")
    y = synth.recording("upcall", 4000, 9.0, np.random.default_rng(2), n_calls=2)
    sf.write(tmp_path / "a.wav", y, 4000, subtype="FLOAT")
    s1, p1, _ = window_scores(tmp_path / "a.wav", bundle, hop_s=0.5)
    s2, p2, _ = window_scores(y, bundle, hop_s=0.5, sr=4000)
    np.testing.assert_allclose(s1, s2)
    np.testing.assert_allclose(p1, p2, atol=1e-4)
    starts, feats = _windows(y[:4000], bundle, 1.0, sr=4000)  # 1 s: one mirrored window, as detect does
    assert len(starts) == 1 and feats.shape == (1, *bundle.card["input"]["shape"][1:])  # (1, 65, 126) at 0-500 Hz


def test_prefetched_keeps_order_raises_in_the_caller_and_stops_early():
    import threading

    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for x in prefetched(failing()):
            got.append(x)
    assert got == [1]

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    gen = prefetched(endless(), depth=2)
    assert [next(gen) for _ in range(5)] == list(range(5))
    gen.close()  # the caller stops: the thread must stop too, a few items ahead at most
    assert not any(t.name == "deepdive-prefetch" for t in threading.enumerate())
    assert len(produced) <= 5 + 2 + 2


def test_events_merge_consecutive_windows():
    bundle = resolve(None, "detection")  # window 2 s
    starts = np.arange(10) * 1.0
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.95, 0.99, 0.96])
    ev = events_from_scores(starts, scores, bundle, threshold=0.5)
    assert [(e.start_s, e.end_s, e.windows) for e in ev] == [(1.0, 4.0, 2), (4.0, 6.0, 1), (7.0, 11.0, 3)]
    assert ev[0].peak == pytest.approx(0.9) and ev[0].mean == pytest.approx(0.85) and ev[0].label == "right whale"
    species = resolve(None, "species")
    probs = np.full((4, len(species.labels)), 0.01)
    probs[[0, 1], 3], probs[2, 5], probs[3, 5] = 0.8, 0.3, 0.9
    ev = events_from_scores(np.arange(4) * 2.5, probs, species, threshold=0.5)
    assert [(e.label, e.start_s, e.end_s) for e in ev] == [(species.labels[3], 0.0, 7.5), (species.labels[5], 7.5, 12.5)]


def test_scan_returns_events():
    y = synth.recording("upcall", 2000, 12.0, np.random.default_rng(3), n_calls=3)
    events = scan(y, threshold=0.0, sr=2000)
    assert len(events) == 1 and events[0]["start_s"] == 0.0 and events[0]["end_s"] == pytest.approx(12.0, abs=0.02)
    assert set(events[0]) == {"start_s", "end_s", "label", "scientific_name", "peak", "mean", "windows"}


def test_raven_table_round_trip_and_ravens_own_columns():
    from deepdive.outputs import RAVEN_COLUMNS, parse_raven_table, raven_table

    ev = [{"start_s": 1.0, "end_s": 4.0, "label": "right whale", "scientific_name": "Eubalaena glacialis", "peak": 0.9},
          {"start_s": 7.5, "end_s": 9.5, "label": "right whale", "scientific_name": "Eubalaena glacialis", "peak": 0.7}]
    text = raven_table([("a.wav", 60.0, ev[:1]), ("b.wav", 30.0, ev[1:])], 50.0, 250.0)
    assert text.splitlines()[0].split("\t") == RAVEN_COLUMNS
    rows = parse_raven_table(text)
    assert [r["Selection"] for r in rows] == [1, 2]
    assert rows[1]["Begin Time (s)"] == 67.5 and rows[1]["File Offset (s)"] == 7.5 and rows[1]["Begin Path"] == "b.wav"
    assert rows[0]["Confidence"] == 0.9 and rows[0]["Low Freq (Hz)"] == 50.0 and rows[0]["Species"] == "right whale"
    # a table as Raven Pro saves it: its own columns, in its own order, some empty
    raven = ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tDelta Time (s)\t"
             "Begin File\tAnnotation\n1\tSpectrogram 1\t1\t12.345\t13.9\t60.2\t240\t1.555\tx.wav\tupcall\n"
             "2\tWaveform 1\t1\t20\t21\t\t\t1\tx.wav\t\n")
    rows = parse_raven_table(raven)
    assert rows[0]["Begin Time (s)"] == 12.345 and rows[0]["Delta Time (s)"] == "1.555" and rows[0]["Annotation"] == "upcall"
    assert rows[1]["Low Freq (Hz)"] == "" and rows[1]["View"] == "Waveform 1"


def test_features_without_frames_are_computed_per_window(tmp_path):
    import json

    pytest.importorskip("torch")
    from deepdive.bundle import Bundle
    from deepdive.features import OrdinalConfig
    from deepdive.models import build
    from deepdive.train import export_onnx

    cfg = OrdinalConfig()
    export_onnx(build("inception1d", 2, cfg.shape), cfg.shape, tmp_path / "model.onnx", "features")
    card = {"task": "detection", "labels": [{"label": "noise"}, {"label": "right whale"}], "positive_label": "right whale",
            "features": cfg.to_dict(), "prepare": {"min_last_s": 1.0, "pad": "mirror"}}
    (tmp_path / "card.json").write_text(json.dumps(card))
    bundle = Bundle.load(tmp_path)
    y = synth.recording("upcall", 2000, 6.5, np.random.default_rng(4), n_calls=1)
    starts, feats = _windows(y, bundle, 1.5, sr=2000)
    assert starts.tolist() == [0.0, 1.5, 3.0, 4.5]  # 4.5 + 2 = 6.5: the last window already ends at the end
    for s, f in zip(starts, feats, strict=True):
        i = int(round(s * 2000))
        np.testing.assert_allclose(f, cfg.compute(y[i : i + 4000], 2000), atol=1e-6)
    starts, feats = _windows(y[:12000], bundle, 1.5, sr=2000)
    assert starts.tolist() == [0.0, 1.5, 3.0, 4.0]  # 6 s: a last window ends at the file's end
    np.testing.assert_allclose(feats[-1], cfg.compute(y[8000:12000], 2000), atol=1e-6)


def test_scan_command_writes_every_output(tmp_path):
    import json

    from typer.testing import CliRunner

    import deepdive
    from deepdive.cli import app
    from deepdive.outputs import read_raven_table

    rec = tmp_path / "rec"
    (rec / "day2").mkdir(parents=True)
    rng = np.random.default_rng(5)
    sf.write(rec / "a.wav", synth.recording("upcall", 2000, 20.0, rng, n_calls=3), 2000)
    sf.write(rec / "day2" / "b.flac", synth.recording("upcall", 8000, 12.0, rng, n_calls=2), 8000)
    (rec / "broken.wav").write_text("not audio")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["scan", str(rec), "--out", str(out), "--recursive", "--threshold", "0"])
    assert res.exit_code == 1  # one file failed; the others were scanned
    assert "3 files" in res.stdout and "1 failed" in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 3 and summary["failed"] == 1 and summary["audio_hours"] == pytest.approx(32 / 3600, abs=1e-3)
    errors = (out / "errors.csv").read_text().splitlines()
    assert len(errors) == 2 and "broken.wav" in errors[1]
    per_file = read_raven_table(out / "a.selections.txt")
    assert per_file and per_file[0]["Begin Path"].endswith("a.wav")
    combined = read_raven_table(out / "all.selections.txt")
    b_rows = [r for r in combined if r["Begin Path"].endswith("b.flac")]
    assert b_rows and all(r["Begin Time (s)"] == pytest.approx(20.0 + r["File Offset (s)"]) for r in b_rows)
    assert [r["Selection"] for r in combined] == list(range(1, len(combined) + 1))
    events = json.loads((out / "events.json").read_text())
    assert events["schema"] == "deepdive-events/1" and len(events["files"]) == 2
    assert (out / "events.csv").read_text().startswith("file,start_s,end_s,label")
    # the Python API gives the same events for a file
    assert deepdive.scan(rec / "a.wav", threshold=0.0) == events["files"][0]["events"]


@pytest.fixture(scope="module")
def long_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(6)
    for i in range(5):
        sf.write(d / f"rec{i}.wav", synth.recording("upcall", 2000, 15.0 + 3 * i, rng, n_calls=3), 2000)
    return d


def _outputs(out):
    import json

    events = json.loads((out / "events.json").read_text())["files"]
    return events, (out / "all.selections.txt").read_text(), (out / "events.csv").read_text()


def test_resume_after_kill_9(long_files, tmp_path):
    import json
    import subprocess
    import sys

    from deepdive.scanning import scan_files

    clean = tmp_path / "clean"
    scan_files([long_files], clean, threshold=0.05)
    out = tmp_path / "killed"
    script = (
        "import os, signal, sys\n"
        "from deepdive.scanning import scan_files\n"
        "def progress(done, total, s, within=None):\n"
        "    if done == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"scan_files([{str(long_files)!r}], {str(out)!r}, threshold=0.05, progress=progress)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == -9
    assert len((out / "journal.jsonl").read_text().splitlines()) == 2
    assert not (out / "summary.json").exists() and not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    with open(out / "journal.jsonl", "a") as f:
        f.write('{"file": "half a line')  # as if killed while writing a journal line
    summary = scan_files([long_files], out, threshold=0.05)
    assert summary["resumed_files"] == 2 and summary["files"] == 5
    assert _outputs(out) == _outputs(clean)
    again = scan_files([long_files], out, threshold=0.05)  # nothing left to do
    assert again["resumed_files"] == 5 and _outputs(out) == _outputs(clean)
    assert json.loads((out / "summary.json").read_text())["events"] == summary["events"]
    assert again["threshold"] == 0.05
    # other settings on the same --out: every file is scanned again, not taken from the journal
    other = scan_files([long_files], out, threshold=0.5)
    assert other["resumed_files"] == 0 and other["threshold"] == 0.5
    scan_files([long_files], tmp_path / "fresh", threshold=0.5)
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_workers_and_dask_give_the_single_process_results(long_files, tmp_path):
    from distributed import Client, LocalCluster

    from deepdive.scanning import scan_files

    scan_files([long_files], tmp_path / "one", threshold=0.05)
    scan_files([long_files], tmp_path / "two", threshold=0.05, workers=2)
    assert _outputs(tmp_path / "two") == _outputs(tmp_path / "one")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      processes=True) as cluster, Client(cluster):
        summary = scan_files([long_files], tmp_path / "dask", threshold=0.05, dask=cluster.scheduler_address)
    assert summary["dask"].startswith("tcp://127.0.0.1")
    assert _outputs(tmp_path / "dask") == _outputs(tmp_path / "one")


def test_parquet_tables(long_files, tmp_path):
    import pyarrow.parquet as pq

    from deepdive.scanning import scan_files, window_scores

    scan_files([long_files / "rec0.wav", long_files / "rec1.wav"], tmp_path, threshold=0.05,
               formats=("parquet", "json"))
    windows = pq.read_table(tmp_path / "windows.parquet").to_pydict()
    starts, scores, _ = window_scores(long_files / "rec0.wav")
    mine = [i for i, f in enumerate(windows["file"]) if f.endswith("rec0.wav")]
    assert np.allclose([windows["start_s"][i] for i in mine], starts)
    assert np.allclose([windows["probability"][i] for i in mine], scores, atol=1e-6)
    assert windows["end_s"][0] - windows["start_s"][0] == pytest.approx(2.0)
    events = pq.read_table(tmp_path / "events.parquet")
    assert events.column_names == ["file", "start_s", "end_s", "label", "scientific_name", "peak", "mean", "windows"]
    species_dir = tmp_path / "species"
    scan_files([long_files / "rec0.wav"], species_dir, model="species", formats=("parquet",))
    table = pq.read_table(species_dir / "windows.parquet")
    assert "Sperm Whale" in table.column_names and "label" in table.column_names


def test_raven_tables_raven_can_use_summary_and_audacity_labels(tmp_path):
    """Selections lie within their files (a file shorter than the window too), Begin Path is absolute
    and Begin File its name, the band stays under each file's Nyquist frequency; summary.csv has a row
    per file with its events per label and its most confident one; --format audacity writes labels."""
    import csv
    import os
    from pathlib import Path

    from deepdive.outputs import read_raven_table
    from deepdive.scanning import scan_files

    rng = np.random.default_rng(8)
    rec = tmp_path / "rec"
    rec.mkdir()
    sf.write(rec / "short.wav", synth.recording("upcall", 600, 1.45, rng, n_calls=1), 600)  # 300 Hz Nyquist
    sf.write(rec / "long.wav", synth.recording("upcall", 2000, 9.0, rng, n_calls=2), 2000)
    (rec / "bad.wav").write_text("no")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # relative paths given: the tables must still point at the files
        summary = scan_files([Path("rec")], tmp_path / "out", threshold=0.0, formats=("raven", "csv", "audacity"))
    finally:
        os.chdir(cwd)
    assert summary["failed"] == 1
    rows = read_raven_table(tmp_path / "out" / "all.selections.txt")
    by_file = {}
    for r in rows:
        by_file.setdefault(r["Begin File"], []).append(r)
        assert os.path.isabs(r["Begin Path"]) and Path(r["Begin Path"]).is_file()
        assert Path(r["Begin Path"]).name == r["Begin File"]
    assert set(by_file) == {"short.wav", "long.wav"}
    short = by_file["short.wav"][0]
    assert short["File Offset (s)"] == 0.0 and short["End Time (s)"] - short["Begin Time (s)"] == pytest.approx(1.45, abs=1e-3)
    assert short["High Freq (Hz)"] <= 300.0 and short["Low Freq (Hz)"] <= short["High Freq (Hz)"]
    assert all(r["High Freq (Hz)"] <= 1000.0 and 0 <= r["File Offset (s)"] for r in rows)
    assert all(r["File Offset (s)"] + r["End Time (s)"] - r["Begin Time (s)"] <= 9.0 + 1e-6 for r in by_file["long.wav"])
    lines = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert [Path(r["file"]).name for r in lines] == ["bad.wav", "long.wav", "short.wav"]
    assert lines[0]["error"] and lines[2]["events: right whale"] == lines[2]["events"] == "1"
    assert float(lines[1]["top_confidence"]) > 0 and lines[1]["top_label"] == "right whale"
    labels = (tmp_path / "out" / "short.labels.txt").read_text().splitlines()
    start, end, label = labels[0].split("\t")
    assert float(start) == 0.0 and float(end) == pytest.approx(1.45, abs=1e-3) and label.startswith("right whale ")


def test_segments_cut_each_event_for_review(tmp_path):
    """`deepdive segments SCAN_OUT --out DIR`: a clip and a spectrogram per event, padded within the
    file, at the file's rate; --min-confidence and --max-per-label choose; a folder that is not a scan
    is one error line."""
    import csv

    from typer.testing import CliRunner

    from deepdive.cli import app
    from deepdive.scanning import scan_files

    rng = np.random.default_rng(11)
    rec = tmp_path / "rec"
    rec.mkdir()
    sf.write(rec / "a.wav", synth.recording("upcall", 2000, 30.0, rng, n_calls=4), 2000)
    sf.write(rec / "b.wav", synth.recording("upcall", 4000, 12.0, rng, n_calls=2), 4000)
    scan_files([rec], tmp_path / "scan", threshold=0.0, hop_s=2.0, formats=("csv",))
    runner = CliRunner()
    res = runner.invoke(app, ["segments", str(tmp_path / "scan"), "--out", str(tmp_path / "seg")])
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "seg" / "segments.csv")))
    assert rows and {r["label"] for r in rows} == {"right whale"}
    for r in rows:
        clip, png = tmp_path / "seg" / r["clip"], tmp_path / "seg" / r["spectrogram"]
        assert clip.parent.name == "right_whale" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        y, sr = sf.read(clip)
        assert sr == (2000 if "/a_" in r["clip"] else 4000)
        start, end = float(r["start_s"]), float(r["end_s"])
        expected = min(end + 0.5, 30.0 if sr == 2000 else 12.0) - max(0.0, start - 0.5)
        assert len(y) / sr == pytest.approx(expected, abs=2 / sr)
    res = runner.invoke(app, ["segments", str(tmp_path / "scan"), "--out", str(tmp_path / "few"), "--max-per-label", "1",
                              "--min-confidence", "0"])
    assert res.exit_code == 0 and len(list(csv.DictReader(open(tmp_path / "few" / "segments.csv")))) == 1
    best = max(float(r["peak"]) for r in rows)
    res = runner.invoke(app, ["segments", str(tmp_path / "scan"), "--out", str(tmp_path / "none"),
                              "--min-confidence", str(min(1.0, best + 1e-3))])
    assert res.exit_code == 0 and "0 segments" in res.stdout
    res = runner.invoke(app, ["segments", str(rec), "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "no scan here" in res.stderr


def test_timestamp_formats_find_the_start_in_file_names():
    from datetime import UTC, datetime

    from deepdive.errors import DeepdiveError
    from deepdive.timestamps import FileTimes, iso, strftime_pattern

    assert strftime_pattern("YYMMDDhhmmss") == strftime_pattern("soundtrap") == "%y%m%d%H%M%S"
    assert strftime_pattern("YYYYMMDD_HHMMSS") == strftime_pattern("AudioMoth") == "%Y%m%d_%H%M%S"
    t = FileTimes("soundtrap")
    assert t.start("/data/5783.190602123456.wav") == datetime(2019, 6, 2, 12, 34, 56, tzinfo=UTC)
    assert t.start("5783.191302123456.wav") is None  # month 13: digits, but no date
    assert t.start("1190602123456.wav") is None  # the digits run on: not this format
    assert t.start("recording.wav") is None
    moth = FileTimes("%Y%m%d_%H%M%S")
    assert moth.start("site3_20200409_173257.WAV") == datetime(2020, 4, 9, 17, 32, 57, tzinfo=UTC)
    assert FileTimes("%Y-%j_%H%M").start("x_2021-032_0405.flac") == datetime(2021, 2, 1, 4, 5, tzinfo=UTC)
    assert iso(datetime(2019, 6, 2, 23, 59, 59, tzinfo=UTC), 1.25) == "2019-06-03T00:00:00.250Z"
    for bad in ("%Y%m%d", "%Y%m%d%H%M%Q", "hello"):
        with pytest.raises(DeepdiveError, match="--timestamp-format"):
            FileTimes(bad)


def test_scan_gives_absolute_utc_times_and_progress_inside_long_files(tmp_path):
    """--timestamp-format: events of a file named by its start time get start_utc/end_utc in every
    table (Raven, CSV, JSON, Parquet) and summary.csv the file's start; a file without a time in its
    name is scanned, named on stderr, and has no absolute times. Progress moves inside a long file."""
    import csv
    import json

    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from deepdive.cli import app
    from deepdive.outputs import read_raven_table
    from deepdive.scanning import scan_files

    rng = np.random.default_rng(12)
    rec = tmp_path / "rec"
    rec.mkdir()
    sf.write(rec / "5783.190602235950.wav", synth.recording("upcall", 2000, 20.0, rng, n_calls=3), 2000)
    sf.write(rec / "untimed.wav", synth.recording("upcall", 2000, 8.0, rng, n_calls=1), 2000)
    res = CliRunner().invoke(app, ["scan", str(rec), "--out", str(tmp_path / "out"), "--threshold", "0",
                                   "--format", "raven,csv,json,parquet", "--timestamp-format", "YYMMDDhhmmss"])
    assert res.exit_code == 0, res.stderr
    assert "1 file(s) without a start time" in res.stderr and "untimed.wav" in res.stderr
    out = tmp_path / "out"
    files = {f["file"].rsplit("/", 1)[-1]: f for f in json.loads((out / "events.json").read_text())["files"]}
    timed = files["5783.190602235950.wav"]["events"]
    assert timed and all("start_utc" not in e for e in files["untimed.wav"]["events"])
    for e in timed:  # 2019-06-02 23:59:50 + start_s, across midnight
        from datetime import datetime, timedelta

        start = datetime(2019, 6, 2, 23, 59, 50) + timedelta(seconds=e["start_s"])
        assert e["start_utc"] == start.isoformat(timespec="milliseconds") + "Z"
        assert e["end_utc"] > e["start_utc"]
    rows = list(csv.DictReader(open(out / "events.csv")))
    assert {r["start_utc"] for r in rows if "untimed" in r["file"]} == {""}
    assert [r["start_utc"] for r in rows if "5783" in r["file"]] == [e["start_utc"] for e in timed]
    raven = read_raven_table(out / "all.selections.txt")
    assert [r["Begin Date Time (UTC)"] for r in raven if "5783" in r["Begin File"]] == \
        [e["start_utc"].replace("T", " ").rstrip("Z") for e in timed]
    summary = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert summary["5783.190602235950.wav"]["start_utc"] == "2019-06-02T23:59:50.000Z"
    assert summary["untimed.wav"]["start_utc"] == ""
    table = pq.read_table(out / "events.parquet").to_pylist()
    got = [r["start_utc"] for r in table if "5783" in r["file"]]
    assert [g.isoformat(timespec="milliseconds").replace("+00:00", "Z") for g in got] == [e["start_utc"] for e in timed]
    # without the option the tables are as before
    scan_files([rec], tmp_path / "plain", threshold=0.0)
    assert "start_utc" not in (tmp_path / "plain" / "events.csv").read_text()
    assert "Date Time" not in (tmp_path / "plain" / "all.selections.txt").read_text()

    # progress: told inside the 20 s file, not only once it is done
    seen = []
    scan_files([rec / "5783.190602235950.wav"], tmp_path / "p", threshold=0.0, hop_s=0.1,
               progress=lambda done, total, s, within=None: seen.append((done, s, within)))
    inside = [w for d, s, w in seen if w is not None]
    assert len(inside) >= 2 and all(d == 0 for d, s, w in seen if w is not None)
    assert [w[0] for w in inside] == sorted(w[0] for w in inside) and inside[-1][0] == pytest.approx(20.0, abs=0.2)
    assert all(w[1] == pytest.approx(20.0) for w in inside) and seen[-1][:2] == (1, pytest.approx(20.0))


def test_short_files_side_by_side_give_the_scores_of_one_at_a_time(long_files, tmp_path):
    """Short files are scanned side by side (one lane each), a long one with every lane between them;
    results come in the order given, equal to scanning each alone, and BLAS gets its threads back."""
    from threadpoolctl import threadpool_info

    from deepdive import scanning

    rng = np.random.default_rng(13)
    long_path = tmp_path / "long.wav"
    sf.write(long_path, synth.recording("upcall", 2000, scanning.SHORT_FILE_S + 10, rng, n_calls=4), 2000)
    files = sorted(long_files.glob("*.wav"))
    files = files[:2] + [long_path, tmp_path / "missing.wav"] + files[2:]
    blas_before = [(p["user_api"], p["num_threads"]) for p in threadpool_info()]
    alone = list(scanning._local_results(files, None, None, None, lanes=1))
    seen = []
    together = list(scanning._local_results(files, None, None, None, within=lambda f, s: seen.append(f), lanes=2))
    assert [r.path for r in together] == [str(f) for f in files]
    for a, b in zip(alone, together, strict=True):
        assert a.error == b.error and a.events == b.events
        if not a.error:
            assert np.array_equal(a.starts, b.starts) and np.allclose(a.scores, b.scores, atol=1e-6)
    assert together[3].error and set(seen) == {str(long_path)}  # progress inside the long file only
    assert [(p["user_api"], p["num_threads"]) for p in threadpool_info()] == blas_before
