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
