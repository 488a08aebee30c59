import csv

import numpy as np
import pytest
import soundfile as sf

from deepdive.datasets import load_dataset, load_folders, load_manifest, load_watkins, select, write_manifest
from deepdive.datasets.watkins import encounter_groups
from deepdive.errors import DatasetError


def test_encounter_groups_join_tapes_and_dates():
    rows = [
        {"tape": "61021", "date": "3-Aug-1961"},
        {"tape": "61023", "date": "3-Aug-1961"},  # other tape, same day: same encounter
        {"tape": "61023", "date": "4-Aug-1961"},  # same tape, next day: still the same encounter
        {"tape": "70001", "date": "1-Jan-1970"},
    ]
    g = encounter_groups(rows)
    assert g[0] == g[1] == g[2] != g[3]


def test_watkins_with_metadata(synth_corpus):
    recs = load_watkins(synth_corpus)
    assert len(recs) == 5 * 3 * 4
    assert {r.label for r in recs} == {f"Synthetic {k}" for k in ("upcall", "whistle", "clicks", "moan", "pulse")}
    assert len({r.group for r in recs}) == 15
    assert all(r.duration_s and r.sample_rate == 16000 and r.clean for r in recs)


def test_watkins_without_metadata(tmp_path):
    for sp in ("Sperm_Whale", "Killer_Whale"):
        (tmp_path / sp).mkdir()
        for cut in ("72009001", "72009002", "85004001"):
            sf.write(tmp_path / sp / f"{cut}.wav", np.zeros(800), 8000)
    recs = load_watkins(tmp_path)
    assert {r.label for r in recs} == {"Sperm Whale", "Killer Whale"}
    assert len({r.group for r in recs if r.label == "Sperm Whale"}) == 2  # tapes 72009 and 85004


def test_watkins_errors(tmp_path):
    with pytest.raises(DatasetError):
        load_watkins(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no recordings"):
        load_watkins(tmp_path)


def test_folders_and_manifest(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "data" / label / "day1").mkdir(parents=True)
        for i in range(2):
            sf.write(tmp_path / "data" / label / "day1" / f"{i}.wav", np.zeros(800), 8000)
    recs = load_folders(tmp_path / "data")
    assert len(recs) == 4 and len({r.group for r in recs}) == 4
    by_sub = load_folders(tmp_path / "data", group_by="subfolder")
    assert len({r.group for r in by_sub}) == 2
    man = tmp_path / "m.csv"
    write_manifest(by_sub, man)
    back = load_manifest(man)
    assert [(r.path, r.label, r.group) for r in back] == [(r.path, r.label, r.group) for r in by_sub]
    rel = tmp_path / "rel.csv"
    rel.write_text("path,label,group,start_s,end_s\ndata/a/day1/0.wav,a,g1,0.5,1.0\n")
    (r,) = load_manifest(rel)
    assert r.path == str(tmp_path / "data/a/day1/0.wav") and r.start_s == 0.5 and r.end_s == 1.0
    with pytest.raises(DatasetError, match="path"):
        bad = tmp_path / "bad.csv"
        bad.write_text("file,species\nx,y\n")
        load_manifest(bad)
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        load_dataset("kaggle2", str(tmp_path))


def test_select(synth_corpus):
    recs = load_watkins(synth_corpus)
    assert {r.label for r in select(recs, species=["synthetic upcall", "Synthetic Moan"])} == {
        "Synthetic upcall", "Synthetic moan"}
    assert all(r.duration_s >= 5 for r in select(recs, min_duration_s=5))
    # clean filter uses also_present
    rows = list(csv.DictReader(open(synth_corpus / "metadata.csv")))
    assert len(select(recs, clean_only=True)) == len(rows)
    from dataclasses import replace

    noisy = [replace(recs[0], also_present="Ship noise")] + recs[1:]
    assert len(select(noisy, clean_only=True)) == len(recs) - 1
    assert select(recs, min_recordings=1000) == []


def test_select_by_family():
    from deepdive.datasets import Recording
    from deepdive.datasets.taxonomy import family_of

    recs = [Recording("a", "Sperm Whale", "g", "Physeter catodon", family_of("Physeter catodon")),
            Recording("b", "Killer Whale", "g", "Orcinus orca", family_of("Orcinus orca"))]
    assert [r.label for r in select(recs, families=["delphinidae"])] == ["Killer Whale"]


def test_recording_systems_from_the_gear_text():
    """The Watkins `gear` column is free text; its spellings of one system map to one name."""
    from deepdive.datasets.watkins import recording_system

    same = ["Ithaco 602M108 hydrophones | Ithaco 450 amplifiers | WHOI/PEMTEK tape recorders",
            "WHOI Pemtek tape recorder, Ithaco 602M108 hydrophones, Ithaco 450 amplifiers",
            "Ithaco 602M108 hydrophones ; Ithaco 450 amplifiers | WHOI/PEMTEK tape recorders"]
    assert {recording_system(g) for g in same} == {"ithaco-pemtek"}
    assert {recording_system(g) for g in ("AX-58 hydrophones | Crown tape recorder | WHOI transistor amplifier",
                                           "AX58 hydrophones, WHOI transistor amplifier, Crown tape recorder")} == {"ax58-crown"}
    assert {recording_system(g) for g in ("AX 58 Hydrophone, WHOI Suitcase amplifier, Magnecorder",
                                           "AX-58 hydrophones | WHOI suitcase a**mplifier | Magnemite tape recorder")} == {
        "ax58-magnecorder"}
    assert recording_system("Panasonic AG-7400 VHS, Hi-Tech HTI-94-SSQ hydrophones") == "vhs"
    assert recording_system("") == "unknown" and recording_system("  ") == "unknown"
    assert recording_system("Brand-new Recorder X1") == "brand-new-recorder-x1"  # unknown systems keep their text


def _annotated_recordings(folder, n_recordings=4, seconds=40.0, seed=0):
    """Recordings at 2 kHz with up-calls at known times, and for each a Raven table (Raven Pro's own
    layout: its columns, a Waveform row per selection) naming the calls 'upcall' and some moans 'moan'."""
    from deepdive import synth

    rng = np.random.default_rng(seed)
    sr = 2000
    tables = []
    for k in range(n_recordings):
        y = synth.ocean_noise(int(seconds * sr), sr, rng, 0.02)
        rows = []
        for j, t0 in enumerate(np.arange(3.0, seconds - 3, 6.0)):
            kind = "upcall" if j % 3 else "moan"
            c = synth.call(kind, sr, rng)
            c *= 0.02 * 10 ** (15 / 20) / np.sqrt(np.mean(c**2))
            i = int(t0 * sr)
            y[i : i + len(c)] += c
            rows.append((t0, t0 + len(c) / sr, kind))
        name = f"rec{k}"
        sf.write(folder / f"{name}.wav", y, sr)
        lines = ["Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tAnnotation"]
        for s, (a, b, kind) in enumerate(rows, start=1):
            for view in ("Spectrogram 1", "Waveform 1"):
                lines.append(f"{s}\t{view}\t1\t{a:.3f}\t{b:.3f}\t40\t400\t{kind}")
        table = folder / f"{name}.Table.1.selections.txt"
        table.write_text("\n".join(lines) + "\n")
        tables.append(table)
    return tables


def test_raven_tables_as_training_windows(tmp_path):
    """Windows overlapping a selection take its label, the others are background; the recording is
    found by the table's name, by Begin File in --audio-dir, or by Begin Path; each recording is one group."""
    from deepdive.datasets.raven import BACKGROUND, load_raven, read_selections

    tables = _annotated_recordings(tmp_path, n_recordings=2, seconds=20.0)
    sel = read_selections(tables)
    assert set(sel) == {tmp_path / "rec0.wav", tmp_path / "rec1.wav"}
    assert len(sel[tmp_path / "rec0.wav"]) == 3  # Waveform rows are the same selections again
    windows = load_raven(tables, 2.0)
    assert len(windows) == 2 * 10 and {w.group for w in windows} == {str(tmp_path / "rec0.wav"), str(tmp_path / "rec1.wav")}
    by_start = {w.start_s: w.label for w in windows if w.path.endswith("rec0.wav")}
    for begin, _end, label in sel[tmp_path / "rec0.wav"]:
        assert by_start[np.floor(begin / 2) * 2] == label
    assert by_start[0.0] == BACKGROUND and by_start[18.0] == BACKGROUND
    # Begin File in another folder (--audio-dir), and an explicit label column
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    (tmp_path / "rec0.wav").rename(audio_dir / "rec0.wav")
    other = tmp_path / "elsewhere.txt"
    other.write_text("Selection\tBegin Time (s)\tEnd Time (s)\tBegin File\tCall type\n1\t2.5\t3.5\trec0.wav\tupcall\n")
    assert list(read_selections([other], audio_dir, "Call type")) == [audio_dir / "rec0.wav"]
    with pytest.raises(DatasetError, match="no label column"):
        read_selections([other], audio_dir)
    with pytest.raises(DatasetError, match="its audio is not found"):
        read_selections([other], None, "Call type")
    (tmp_path / "notes.txt").write_text("a\tb\n1\t2\n")
    with pytest.raises(DatasetError, match="not a Raven selection table"):
        read_selections([tmp_path / "notes.txt"])


def test_detection_negatives_from_other_species_cuts():
    """Up to `per_cut` 2 s windows spread over each cut of a species other than the right whales, a cut
    of 1 to 2 s as one shorter window, shorter ones left out; each keeps its cut's tape and encounter."""
    from deepdive.datasets.base import Recording
    from deepdive.datasets.watkins import detection_negatives, tape_encounters

    def cut(label, d, tape, group):
        return Recording(path=f"{tape}-{d}.wav", label=label, group=group, tape=tape, duration_s=d)

    recs = [cut("Humpback Whale", 9.0, "63019", "enc-63019"), cut("Humpback Whale", 1.5, "63019", "enc-63019"),
            cut("Bowhead Whale", 0.5, "88006", "enc-88006"), cut("Bowhead Whale", 4.4, "88006", "enc-88006"),
            cut("Northern Right Whale", 30.0, "56017", "enc-56017"), cut("Fin, Finback Whale", 3.0, "88007", "enc-88006")]
    neg = detection_negatives(recs, per_cut=3)
    spans = {(r.tape, r.duration_s): [(x.start_s, x.end_s) for x in neg if x.path == r.path] for r in recs}
    assert spans[("63019", 9.0)] == [(0.0, 2.0), (3.5, 5.5), (7.0, 9.0)]  # three, spread over the cut
    assert spans[("63019", 1.5)] == [(0.0, 1.5)]  # shorter than a window: mirrored out when prepared
    assert spans[("88006", 0.5)] == [] and spans[("56017", 30.0)] == []  # too short; a right whale's
    assert spans[("88006", 4.4)] == [(0.0, 2.0), (2.4, 4.4)] and spans[("88007", 3.0)] == [(0.0, 2.0)]
    assert {r.label for r in neg} == {"noise"} and {r.source for r in neg} == {"watkins"}
    assert {r.group for r in neg if r.tape == "88007"} == {"enc-88006"}
    assert tape_encounters(recs)["88007"] == "enc-88006"


def test_crossval_extras_leave_out_the_tapes_and_encounters_each_fold_tests():
    from deepdive.crossval import _extras_for
    from deepdive.datasets.base import Recording

    tested = [Recording(path="a.aiff", label="noise", group="tape:88006", tape="88006"),
              Recording(path="b.aiff", label="noise", group="clip:b")]  # a buoy clip: no tape
    extra = [Recording(path=f"{t}.wav", label="noise", group=g, tape=t, start_s=0.0, end_s=2.0)
             for t, g in (("88006", "enc-88006"), ("88007", "enc-88006"), ("63019", "enc-63019"))]
    kept = _extras_for(extra, tested, {"88006": "enc-88006", "88007": "enc-88006", "63019": "enc-63019"})
    assert [r.tape for r in kept] == ["63019"]  # its tape, and another tape of its encounter, left out
    assert [r.tape for r in _extras_for(extra, tested, {})] == ["88007", "63019"]  # without the encounters: its tape


def test_calls_of_a_challenge_folder_join_a_species_in_whole_groups(synth_kaggle, tmp_path):
    """`load_calls`: the up-calls of a challenge folder as recordings of a species, drawn (seeded) in whole
    groups; without sources.csv, identical clips are one group and are drawn together."""
    import shutil

    from deepdive.datasets import load_calls, load_kaggle

    calls = load_calls(synth_kaggle, "Synthetic upcall", "Synthetic upcall")
    positives = [r for r in load_kaggle(synth_kaggle) if r.label == "right whale"]
    assert [r.path for r in calls] == [r.path for r in positives]
    assert {r.label for r in calls} == {"Synthetic upcall"} and {r.scientific_name for r in calls} == {"Synthetic upcall"}
    some = load_calls(synth_kaggle, "Synthetic upcall", max_clips=5, seed=1)
    tapes = {r.group for r in some}
    # whole tapes: every up-call of a drawn tape, and the draw stops once it holds 5
    assert {r.path for r in positives if r.group in tapes} == {r.path for r in some}
    assert len(some) >= 5 and len(some) - max(sum(r.group == g for r in some) for g in tapes) < 5
    assert [r.path for r in load_calls(synth_kaggle, "x", max_clips=5, seed=1)] == [r.path for r in some]
    # no sources.csv: a clip copied under another name is drawn with its twin or not at all
    folder = tmp_path / "challenge"
    shutil.copytree(synth_kaggle, folder)
    (folder / "sources.csv").unlink()
    first = positives[0].path.rsplit("/", 1)[1]
    shutil.copy(folder / "train" / first, folder / "train" / "twin.aiff")
    with open(folder / "train.csv", "a") as f:
        f.write("twin.aiff,1\n")
    for seed in range(6):
        names = {r.path.rsplit("/", 1)[1] for r in load_calls(folder, "x", max_clips=2, seed=seed)}
        assert (first in names) == ("twin.aiff" in names)
    with pytest.raises(DatasetError, match="no up-call"):
        (folder / "train.csv").write_text("clip_name,label\n" + first + ",0\n")
        load_calls(folder, "x")
