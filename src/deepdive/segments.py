"""Review what a scan found: each event cut out as an audio clip and drawn as a spectrogram.

`write_segments(scan_out, out)` reads a scan's journal (`journal.jsonl`, written by every scan, so any
`--format` will do), takes its events (those at or above `min_confidence`, at most `max_per_label` per
label, the most confident first) and writes, for each, `<label>/<file>_<start>_<end>.wav` (the event
padded by `pad_s` on each side, within the file, at the file's own sample rate) and beside it the same
name as a spectrogram `.png` (each band's median level subtracted, so a call stands out of steady
noise) with the event's ends marked, plus `segments.csv` listing them all. An analyst
listens and looks, and keeps or rejects each detection. Cost: reading each event's stretch of audio
and one small plot per event (about 0.1 s each).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from . import audio
from .errors import DeepdiveError
from .store import atomic_write_bytes, atomic_write_text

PAD_S = 0.5


def _safe(text: str, limit: int = 60) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("_")[:limit] or "x"


def chosen_events(entries: list[dict], min_confidence: float = 0.0, max_per_label: int | None = None
                  ) -> list[tuple[dict, dict]]:
    """(journal entry, event) pairs to cut: peak at least `min_confidence`, the `max_per_label` most
    confident per label, in order of label, then file and time."""
    by_label: dict[str, list[tuple[dict, dict]]] = {}
    for entry in entries:
        for event in entry.get("events", []):
            if event["peak"] >= min_confidence:
                by_label.setdefault(event["label"], []).append((entry, event))
    out = []
    for label in sorted(by_label):
        pairs = sorted(by_label[label], key=lambda pe: -pe[1]["peak"])
        if max_per_label is not None:
            pairs = pairs[:max_per_label]
        out += sorted(pairs, key=lambda pe: (pe[0]["file"], pe[1]["start_s"]))
    return out


def write_segments(scan_out: str | Path, out: str | Path, min_confidence: float = 0.0,
                   max_per_label: int | None = None, pad_s: float = PAD_S, progress=None, on_error=None) -> dict:
    """Clips, spectrograms and `segments.csv` for the events of the scan in `scan_out` (see the module
    docstring). `on_error(file, message)` for a recording that can no longer be read (it is skipped)."""
    import soundfile as sf

    from .plots import spectrogram_png
    from .scanning import JOURNAL, _read_journal

    scan_out, out = Path(scan_out), Path(out)
    if not (scan_out / JOURNAL).is_file():
        raise DeepdiveError(f"{scan_out}: no scan here (no {JOURNAL}); give the --out folder of a deepdive scan")
    entries = [e for e in _read_journal(scan_out).values() if not e.get("error")]
    pairs = chosen_events(entries, min_confidence, max_per_label)
    rows, failed = [], 0
    for n, (entry, event) in enumerate(pairs, start=1):
        path = entry["file"]
        try:
            meta = audio.info(path)
            a = max(0.0, event["start_s"] - pad_s)
            b = min(meta.duration_s, event["end_s"] + pad_s)
            y, sr = audio.load(path, None, a, b - a)
        except DeepdiveError as exc:
            failed += 1
            if on_error:
                on_error(path, str(exc))
            continue
        name = f"{_safe(Path(path).stem)}_{event['start_s']:.2f}_{event['end_s']:.2f}"
        folder = out / _safe(event["label"])
        wav = io.BytesIO()
        sf.write(wav, y, sr, format="WAV", subtype="PCM_16")
        atomic_write_bytes(folder / f"{name}.wav", wav.getvalue())
        png, _ = spectrogram_png(y, sr, columns=min(800, max(100, len(y) // 16)), width_px=800, height_px=300,
                                 events=[{"start_s": event["start_s"] - a, "end_s": event["end_s"] - a}], edges_only=True,
                                 equalize=True)
        atomic_write_bytes(folder / f"{name}.png", png)
        rows.append({"label": event["label"], "file": path, "start_s": f"{event['start_s']:.3f}",
                     "end_s": f"{event['end_s']:.3f}", "peak": f"{event['peak']:.4f}",
                     "clip": f"{folder.name}/{name}.wav", "spectrogram": f"{folder.name}/{name}.png"})
        if progress:
            progress(n, len(pairs))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["label", "file", "start_s", "end_s", "peak", "clip", "spectrogram"],
                       lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "segments.csv", buf.getvalue())
    return {"segments": len(rows), "failed": failed, "labels": sorted({r["label"] for r in rows})}
