"""Headless matplotlib for the reports' PNGs; plots are skipped where matplotlib is not installed."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None without matplotlib (inference-only installs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spectrogram_png(source, sr: int | None = None, columns: int = 1200, fmax: float | None = None,
                    width_px: int = 1200, height_px: int = 360, events: list[dict] | None = None,
                    edges_only: bool = False, equalize: bool = False) -> tuple[bytes, dict]:
    """A whole recording's spectrogram as a PNG with time and frequency axes, and where its plot lies.

    `source`: a file (streamed, any length) or an array with its `sr`. Columns are averaged frames
    (see `features.spectrogram.overview_power`), in dB relative to the loudest, 80 dB shown; `fmax`
    cuts the frequency axis (default: Nyquist). `events` ({"start_s", "end_s"}) are shaded when given,
    or with `edges_only` marked by dashed lines at their ends (the sound itself left clear, for review).
    `equalize`: each frequency band's median level is subtracted and 0 to 30 dB above it shown, so
    that steady noise (a recorder's hum, a buoy's hiss) fades and a call stands out.
    Returns (png bytes, {"duration_s", "sr", "fmax_hz", "plot": {"left", "right", "top", "bottom"}}),
    the plot box as fractions of the image from its top-left corner, so that a page can place marks
    at times along the axis. Uses matplotlib's object API (no pyplot): safe from several threads.
    """
    import io

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from . import audio
    from .features.spectrogram import overview_power, power_to_db

    if isinstance(source, np.ndarray):
        rate = sr
        total = len(source) if source.ndim == 1 else source.shape[0]
    else:
        meta = audio.info(source)
        rate, total = meta.sr, meta.frames
    power = overview_power(audio.blocks(source, rate, sr), total, rate, columns)
    duration = total / rate
    nyquist = rate / 2
    top = min(nyquist, fmax) if fmax else nyquist
    rows = int(np.floor(top / nyquist * (power.shape[0] - 1))) + 1
    db = power_to_db(power[:rows], ref="max", top_db=80.0)
    levels = {}
    if equalize:
        db = db - np.median(db, axis=1, keepdims=True)
        levels = {"vmin": 0.0, "vmax": 30.0}

    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", interpolation="antialiased", **levels,
              extent=(0.0, duration, 0.0, (rows - 1) / (power.shape[0] - 1) * nyquist))
    for e in events or []:
        if edges_only:
            for t in (e["start_s"], e["end_s"]):
                ax.axvline(t, color="#4dd0e1", lw=1.5, ls="--")
        else:
            ax.axvspan(e["start_s"], e["end_s"], color="#4dd0e1", alpha=0.25, lw=0)
    ax.set_xlabel("time (s)")
    kilo = top >= 2000
    ax.set_ylabel("frequency (kHz)" if kilo else "frequency (Hz)")
    if kilo:
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{v / 1000:g}")
    fig.subplots_adjust(left=min(0.2, 80 / width_px), right=1 - 12 / width_px, top=1 - 10 / height_px,
                        bottom=min(0.3, 50 / height_px))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    box = ax.get_position()
    plot = {"left": float(box.x0), "right": float(box.x1), "top": float(1 - box.y1), "bottom": float(1 - box.y0)}
    return buf.getvalue(), {"duration_s": float(duration), "sr": int(rate), "fmax_hz": float(top), "plot": plot}
