"""'None of these': the novelty fit (Mahalanobis distance to the nearest species mean, as a share of
held-out known recordings) on embeddings whose answer is known, and end to end on a trained model."""

import json

import numpy as np
import pytest

from deepdive.novelty import DEFAULT_KEEP, Novelty, fit, shrunk_covariance, threshold_for


def _clusters(rng, n_per=200, d=16, classes=3, spread=0.3):
    centres = rng.normal(0, 3, (classes, d))
    x = np.concatenate([c + spread * rng.standard_normal((n_per, d)) for c in centres])
    return x, np.repeat(np.arange(classes), n_per), centres


def test_shrunk_covariance_is_ledoit_wolf():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 10)) * np.linspace(0.5, 2, 10)
    x -= x.mean(0)
    cov, shrink = shrunk_covariance(x)
    n, d = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / d
    delta = np.sum((s - mu * np.eye(d)) ** 2)
    beta = sum(np.sum((np.outer(r, r) - s) ** 2) for r in x) / n**2
    assert shrink == pytest.approx(min(beta, delta) / delta)
    assert np.allclose(cov, (1 - shrink) * s + shrink * mu * np.eye(d), atol=1e-6)
    few = rng.standard_normal((5, 50))  # fewer rows than dimensions: still invertible, more shrinkage
    cov_few, shrink_few = shrunk_covariance(few - few.mean(0))
    assert shrink_few > shrink and np.all(np.linalg.eigvalsh(cov_few) > 0)


def test_novelty_is_the_share_of_known_held_out_recordings_closer():
    rng = np.random.default_rng(1)
    x, y, centres = _clusters(rng)
    held = [c + 0.3 * rng.standard_normal((5, x.shape[1])) for c in centres for _ in range(40)]  # 120 recordings
    model = fit(x, y, 3, held, keep=0.9)
    known = np.array([model.recording(r) for r in held])
    assert np.mean(known <= 0.9) == pytest.approx(0.9, abs=0.02)  # the threshold keeps its share known
    fresh = [c + 0.3 * rng.standard_normal((5, x.shape[1])) for c in centres for _ in range(30)]
    assert np.mean([model.recording(r) <= 0.9 for r in fresh]) > 0.8
    far = [rng.normal(0, 3, x.shape[1]) + 0.3 * rng.standard_normal((5, x.shape[1])) for _ in range(30)]
    assert all(model.recording(r) == 1.0 for r in far)  # another cluster altogether
    w = model.windows(np.concatenate([held[0], far[0]]))
    assert w.shape == (10,) and w[5:].min() == 1.0 and w[:5].max() < 1.0


def test_novelty_keeps_rising_past_the_furthest_validation_recording(tmp_path):
    """Past the reference's 90th percentile an exponential tail: a recording beyond every validation
    recording is not simply 1 but rises with its distance, so that a threshold chosen out of fold can
    sit among such recordings; below it, novelty is the plain share of closer validation recordings."""
    from dataclasses import replace

    from deepdive.novelty import TAIL_FROM

    rng = np.random.default_rng(3)
    d = 16
    x, y, centres = _clusters(rng, d=d)
    held = [c + 0.3 * rng.standard_normal((5, d)) for c in centres for _ in range(60)]
    model = fit(x, y, 3, held)
    assert model.tail
    furthest = max(model.distances(r).mean() for r in held)
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    steps = [1.0, 1.1, 1.2, 1.3, 1.4]  # how far along `direction` a recording's windows sit, beyond every reference
    base = centres[0] + 0.3 * rng.standard_normal((5, d))
    beyond = [base + s * direction for s in steps]
    assert all(model.distances(r).mean() > furthest for r in beyond)
    nov = [model.recording(r) for r in beyond]
    assert all(TAIL_FROM < a < b < 1.0 for a, b in zip(nov, nov[1:], strict=False)), nov
    old = replace(model, tail=False)  # a fit made before the tail stops at 1 beyond every reference
    assert all(old.recording(r) == 1.0 for r in beyond)
    inside = [r for r in held if model.recording(r) < 0.85]
    assert inside and all(model.recording(r) == pytest.approx(old.recording(r)) for r in inside)
    model.save(tmp_path / "n.npz")
    assert Novelty.load(tmp_path / "n.npz").tail and Novelty.load(tmp_path / "n.npz").recording(beyond[2]) == pytest.approx(nov[2])
    # out-of-fold novelties of known recordings, a sixth of them past every reference: a threshold keeping
    # 95% known is now found among them, below 1
    oof = np.concatenate([[model.recording(r) for r in held[:150]], nov * 6])
    t = threshold_for(oof, 0.95)
    assert t < 1.0 and np.mean(oof <= t) >= 0.95


def test_the_softmaxs_doubt_flags_what_sits_near_a_species_but_spreads_its_probabilities(tmp_path):
    """A model trained with outlier exposure may embed noise close to a species yet give it even
    probabilities: with validation probabilities, novelty is the percentile of the larger of the two
    percentiles (distance, 1 - top probability), still keeping its share of known recordings."""
    rng = np.random.default_rng(3)
    x, y, centres = _clusters(rng)

    def confident(k, n=5):
        p = np.full((n, 3), 0.05)
        p[:, k] = 0.9
        return p + rng.uniform(0, 0.02, (n, 3))

    held = [centres[k] + 0.3 * rng.standard_normal((5, x.shape[1])) for k in range(3) for _ in range(40)]
    held_p = [confident(k) for k in range(3) for _ in range(40)]
    model = fit(x, y, 3, held, keep=0.9, val_probs=held_p)
    assert model.uses_doubt
    known = np.array([model.recording(r, p) for r, p in zip(held, held_p, strict=True)])
    assert np.mean(known <= 0.9) == pytest.approx(0.9, abs=0.03)
    near_but_unsure = centres[0] + 0.3 * rng.standard_normal((5, x.shape[1]))
    even = np.full((5, 3), 1 / 3)
    assert model.recording(near_but_unsure) <= 0.9  # by distance alone it is known
    assert model.recording(near_but_unsure, even) == 1.0  # the doubt says otherwise
    w = model.windows(np.concatenate([near_but_unsure, held[0]]), np.concatenate([even, held_p[0]]))
    assert w[:5].min() == 1.0 and w[5:].max() < 1.0
    silent = np.full((2, x.shape[1]), np.nan)
    assert model.recording(silent, confident(0, 2)) == 1.0  # no sound at all stays novelty 1
    model.save(tmp_path / "d.npz")
    back = Novelty.load(tmp_path / "d.npz")
    assert back.uses_doubt and back.recording(near_but_unsure, even) == 1.0


def test_a_class_without_training_windows_and_save_load(tmp_path):
    rng = np.random.default_rng(2)
    x, y, centres = _clusters(rng, classes=2)
    model = fit(x, y, 3, [c + 0.3 * rng.standard_normal((4, x.shape[1])) for c in centres for _ in range(10)])
    assert model.means.shape == (2, x.shape[1]) and np.isfinite(model.distances(x[:3])).all()
    model.save(tmp_path / "n.npz")
    back = Novelty.load(tmp_path / "n.npz")
    probe = rng.standard_normal((6, x.shape[1]))
    assert np.allclose(back.windows(probe), model.windows(probe), atol=1e-4)
    assert back.threshold == model.threshold and back.shrinkage == pytest.approx(model.shrinkage)


def test_trained_model_says_none_of_these_for_noise(synth_model, tmp_path):
    """A model trained with a validation split carries its novelty fit; a steady 7 kHz tone, like
    nothing in its training cuts, is none of the species it knows in classify (Python, JSON, CSV,
    table), and a scan makes no species event of it. (On this synthetic corpus every class's cuts are
    mostly ocean noise, so noise itself is known here; the real figures are in benchmarks/open_set.py.)"""
    import csv
    import io

    import soundfile as sf
    from typer.testing import CliRunner

    import deepdive
    from deepdive import synth
    from deepdive.cli import app
    from deepdive.scanning import scan_files

    card = json.loads((synth_model / "card.json").read_text())
    assert (synth_model / "novelty.npz").is_file() and card["novelty"]["threshold"] == 0.95
    assert card["novelty"]["fitted_on"]["validation_recordings"] >= 5
    rng = np.random.default_rng(5)
    sr = 16000
    tone = 0.3 * np.sin(2 * np.pi * 7000 * np.arange(6 * sr) / sr)
    files = {"upcall": synth.recording("upcall", sr, 6.0, rng, snr_db=15), "tone": tone, "tone2": 0.5 * tone}
    for name, y in files.items():
        sf.write(tmp_path / f"{name}.wav", y.astype(np.float32), sr)
    call = deepdive.classify(tmp_path / "upcall.wav", model=synth_model)
    assert call.known is True and 0 <= call.novelty <= 0.95 and call[0]["species"] == "Synthetic upcall"
    for name in ("tone", "tone2"):
        r = deepdive.classify(tmp_path / f"{name}.wav", model=synth_model)
        assert r.known is False and r.novelty > 0.95 and len(r) == len(card["labels"])  # still ranked
    runner = CliRunner()
    paths = [str(tmp_path / f"{n}.wav") for n in files]
    out = json.loads(runner.invoke(app, ["classify", *paths, "--model", str(synth_model), "-f", "json"]).stdout)
    assert [o["known"] for o in out] == [True, False, False] and all("novelty" in o for o in out)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["classify", *paths, "--model", str(synth_model),
                                                                  "-f", "csv"]).stdout)))
    assert {r["known"] for r in rows if "tone" in r["file"]} == {"false"}
    table = runner.invoke(app, ["classify", paths[1], "--model", str(synth_model)]).stdout
    assert "none of the species it knows" in " ".join(table.split())
    summary = scan_files([tmp_path / "tone.wav", tmp_path / "upcall.wav"], tmp_path / "scan", model=str(synth_model),
                         threshold=0.0, formats=("json", "parquet"))
    events = {f["file"].rsplit("/", 1)[-1]: f["events"] for f in json.loads((tmp_path / "scan" / "events.json").read_text())["files"]}
    assert events["tone.wav"] == [] and events["upcall.wav"] and summary["events"] == len(events["upcall.wav"])
    import pyarrow.parquet as pq

    win = pq.read_table(tmp_path / "scan" / "windows.parquet").to_pylist()
    assert not any(w["known"] for w in win if w["file"].endswith("tone.wav"))
    assert all(0 <= w["novelty"] <= 1 for w in win)


def test_a_species_held_out_of_training_is_none_of_these(small_cfg, tmp_path):
    """Leave one species out: a model trained on four synthetic species (5 encounters of 5 cuts each),
    never on the whistles, scores new whistles as unlike anything it knows (novelty AUROC against new
    recordings of the species it knows; most whistles flagged at the card's threshold), while new
    recordings of the species it knows mostly stay known. A held-out species that sounds like a known
    one is a harder case: held out the same way, the moans (low tonal calls like the up-calls) and the
    clicks were not flagged (AUROC about 0.7). Real species held out: benchmarks/open_set.py --leave-out."""
    import deepdive
    from deepdive import synth
    from deepdive.bundle import Bundle
    from deepdive.datasets import load_watkins
    from deepdive.evaluate import roc_auc
    from deepdive.prepare import prepare
    from deepdive.train import TrainConfig, train

    held = "whistle"
    corpus = synth.write_corpus(tmp_path / "corpus", encounters=5, cuts_per_encounter=5, seed=1)
    recs = [r for r in load_watkins(corpus) if r.label != f"Synthetic {held}"]
    prepare(recs, tmp_path / "store", small_cfg, source={"kind": "synthetic"})
    train(tmp_path / "store", tmp_path / "model", TrainConfig(model="deepdive-resnet", epochs=20, patience=20, lr=3e-3,
                                                              seed=0), progress=False)
    bundle = Bundle.load(tmp_path / "model")
    assert held not in " ".join(bundle.labels)
    rng = np.random.default_rng(7)
    novelty, known = {}, {}
    for kind in synth.KINDS:  # new encounters: their own noise level and SNR
        results = [deepdive.classify(synth.recording(kind, 16000, 6.0, rng, snr_db=float(rng.uniform(8, 20)),
                                                     noise_level=float(rng.uniform(0.005, 0.05))), sr=16000, model=bundle)
                   for _ in range(10)]
        novelty[kind] = np.array([r.novelty for r in results])
        known[kind] = np.array([r.known for r in results])
    others = np.concatenate([novelty[k] for k in synth.KINDS if k != held])
    y = np.r_[np.zeros(len(others)), np.ones(len(novelty[held]))]
    assert roc_auc(y, np.r_[others, novelty[held]]) >= 0.85
    assert np.mean(~known[held]) >= 0.6  # most whistles: none of the species it knows
    assert np.mean(np.concatenate([known[k] for k in synth.KINDS if k != held])) >= 0.75


def test_a_model_without_a_novelty_fit_says_nothing(tmp_path):
    import shutil

    import deepdive
    from deepdive import synth
    from deepdive.bundle import bundled_path

    copy = tmp_path / "species"
    shutil.copytree(bundled_path("species"), copy)
    (copy / "novelty.npz").unlink(missing_ok=True)
    card = json.loads((copy / "card.json").read_text())
    card.pop("novelty", None)
    (copy / "card.json").write_text(json.dumps(card))
    r = deepdive.classify(synth.recording("moan", 32000, 5.0, np.random.default_rng(0)), sr=32000, model=copy)
    assert r.known is None and r.novelty is None and r.as_dict()["ranking"] == list(r)


def test_digital_silence_is_none_of_these():
    """A recording of zeros has flat features: the bundled model still ranks its species, but says the
    recording sounds like none of them (the issue's 'classify silence.wav says Melon Headed Whale 96%')."""
    import deepdive

    silent = deepdive.classify(np.zeros(5 * 32000, np.float32), sr=32000)
    assert silent.known is False and silent.novelty == 1.0
    y = np.concatenate([np.zeros(8 * 32000), 0.1 * np.random.default_rng(1).standard_normal(8 * 32000)]).astype(np.float32)
    events = deepdive.scan(y, model="species", threshold=0.0, sr=32000)
    assert all(e["end_s"] > 8.0 for e in events)  # no species event made of silent windows alone


def test_threshold_chosen_on_out_of_fold_novelties():
    """threshold_for: the quantile of known recordings' novelties that keeps the asked share known,
    never below the default (a fold that flags fewer than the validation split does not lower it)."""
    v = np.linspace(0.0, 1.0, 101)
    assert threshold_for(v, 0.90) == pytest.approx(DEFAULT_KEEP)  # its 0.90 quantile, 0.90, is below the default
    shifted = np.concatenate([np.linspace(0.0, 0.9, 80), np.linspace(0.96, 1.0, 20)])  # 20% beyond 0.95
    t = threshold_for(shifted, 0.90)
    assert 0.96 < t < 1.0 and np.mean(shifted <= t) >= 0.90
    assert threshold_for([], 0.9) == DEFAULT_KEEP and threshold_for([np.inf, 0.5], 0.9) == DEFAULT_KEEP
    # 8% lie beyond every reference (novelty 1): keeping 95% is out of reach below 1, and 1 flags
    # nothing; the threshold is the largest novelty below 1, which flags exactly those 8%
    saturated = np.concatenate([np.linspace(0.0, 0.97, 92), np.ones(8)])
    t = threshold_for(saturated, 0.95)
    assert t == pytest.approx(0.97) and np.mean(saturated > t) == pytest.approx(0.08)


def _mel_windows(y, sr=32000):
    from deepdive.features import MelConfig
    from deepdive.windows import centre_pad

    cfg = MelConfig()
    n = cfg.window_samples
    return np.stack([cfg.compute(centre_pad(y[i : i + n], n, False)[0], sr) for i in range(0, len(y), n)])


def test_salience_tells_a_sound_event_from_stationary_noise_of_any_colour_or_level():
    """`salience`: stationary noise (white, brown, hum, near-silence) rises only 5-6.5 dB above its
    median by chance in any band; a call at 10 dB SNR rises far further; the zeros padding a short
    recording do not count as background; a window with almost no sound is not judged (inf)."""
    from deepdive import synth
    from deepdive.novelty import no_sound, salience

    rng = np.random.default_rng(0)
    sr, n = 32000, 10 * 32000
    t = np.arange(n) / sr
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(200) / 200, "same")
    noises = {"white": 0.1 * rng.standard_normal(n), "brown": 0.3 * brown / np.abs(brown).max(),
              "hum": 0.3 * np.sin(2 * np.pi * 60 * t) + 0.05 * rng.standard_normal(n),
              "near-silence": 1e-5 * rng.standard_normal(n), "short white": 0.1 * rng.standard_normal(sr)}
    for name, y in noises.items():
        s = salience(_mel_windows(y))
        assert np.all(s < 6.6), (name, s)
    for kind in ("upcall", "whistle", "clicks"):
        s = salience(_mel_windows(synth.recording(kind, sr, 5.0, rng, snr_db=10, n_calls=1)))
        assert s.max() > 9.0, (kind, s)
    tiny = _mel_windows(0.1 * rng.standard_normal(1000))  # 31 ms: fewer than 8 frames of sound
    assert np.isinf(salience(tiny)).all() and not no_sound(tiny, 6.8).any()
    assert no_sound(_mel_windows(np.zeros(5 * sr))).all()  # digital silence, with or without a gate


def test_the_gate_keeps_its_share_and_a_recording_is_judged_on_its_windows_with_sound(tmp_path):
    """gate_for keeps 99% of known recordings with a window at or above it. The novelty of a recording
    is over its windows with sound (NaN embeddings: no sound event); none at all is novelty 1; the
    reference distances leave those windows out; the gate is saved with the fit."""
    from deepdive.novelty import gate_for

    rng = np.random.default_rng(4)
    recs = [np.full((2, 1, 4, 20), -40.0) + rng.normal(0, 1, (2, 1, 4, 20)) for _ in range(100)]
    for i, r in enumerate(recs):
        r[0, 0, i % 4, :5] += 5 + 0.2 * i  # one event per recording, 5 to 25 dB above the rest
    from deepdive.novelty import salience

    loudest = np.array([salience(r).max() for r in recs])
    g = gate_for(recs)
    assert np.mean(loudest >= g) >= 0.99 and np.mean(loudest >= g) < 1.0
    from deepdive.novelty import GATE_CEILING_DB

    loud = [r.copy() for r in recs]
    for r in loud:
        r[0, 0, 0, :5] += 20  # every recording 20 dB or more above its background: the gate stays at the ceiling
    assert gate_for(loud) == pytest.approx(GATE_CEILING_DB) and 7.0 < GATE_CEILING_DB < 7.5
    x, y, centres = _clusters(rng)
    held = [centres[k % 3] + 0.3 * rng.standard_normal((4, x.shape[1])) for k in range(60)]
    gated = [np.vstack([h, np.full((3, x.shape[1]), np.nan)]) for h in held]  # three windows without sound
    plain, with_gaps = fit(x, y, 3, held, 0.9), fit(x, y, 3, gated, 0.9, gate=6.5)
    assert np.allclose(plain.recording_ref, with_gaps.recording_ref) and np.allclose(plain.window_ref, with_gaps.window_ref)
    assert with_gaps.recording(gated[0]) == pytest.approx(plain.recording(held[0]))  # judged on its 4 windows with sound
    assert with_gaps.recording(np.full((3, x.shape[1]), np.nan)) == 1.0
    with_gaps.save(tmp_path / "g.npz")
    assert Novelty.load(tmp_path / "g.npz").gate == pytest.approx(6.5)
    assert Novelty.load(tmp_path / "g.npz").no_sound(_mel_windows(0.1 * rng.standard_normal(5 * 32000))).all()


def test_the_bundled_species_model_says_none_of_these_for_stationary_noise():
    """The bundle's gate (in its card): white noise, a ship's hum and near-silence, none of which the
    issue's user wants named a species, are none of these, and a scan makes no species event of them;
    a recording with a call in its last window stays judged on that window."""
    import deepdive
    from deepdive.bundle import resolve

    b = resolve(None, "species")
    assert b.card["novelty"]["gate_db"] == pytest.approx(b.novelty.gate, abs=1e-3) and 5.0 < b.novelty.gate < 9.0
    rng = np.random.default_rng(7)
    sr = 32000
    t = np.arange(20 * sr) / sr
    for y in (0.1 * rng.standard_normal(20 * sr), 0.3 * np.sin(2 * np.pi * 80 * t) + 0.05 * rng.standard_normal(len(t)),
              1e-5 * rng.standard_normal(20 * sr)):
        r = deepdive.classify(y.astype(np.float32), sr=sr)
        assert r.known is False and r.novelty == 1.0
        assert deepdive.scan(y.astype(np.float32), model="species", threshold=0.0, sr=sr) == []
