"""Spectrogram CNNs for species ranking and call detection.

`DeepDiveCNN` is the network Deep Dive published: four 3x3 convolutions of 32, 48, 48 and 32
filters, each followed by 2x2 max pooling and batch normalisation, a dense layer of 64 and dropout
0.2 before the classifier.

`DeepdiveResNet` is our default, built to generalise across encounters (other recorders, sample
rates and noise) rather than to memorise one: each frequency band is centred on its mean over time
(a recorder's colouring and stationary noise are mostly constant per band), residual blocks see
the spectrogram at four scales, and global mean+max pooling over time and frequency makes the
decision independent of where in the window a call falls. With narrow widths (16, 32, 48, 64) it is the
default right-whale detector (`detector-cnn`): band centring is the per-frequency whitening that the
challenge's best entries applied to their spectrograms; `contrast=True` adds their contrast enhancement
as a third channel (bands whitened over time, then frames centred over the bands). `level=False`
drops the absolute-level channel, so the network sees only the band-centred spectrogram: a
recorder's frequency response (a constant per band in dB) cannot reach it at all. `pcen=T` adds
per-channel energy normalisation (Wang et al. 2017; Lostanlen et al. 2019) as a channel: each band's
power divided by its own causal running mean over about T frames (automatic gain control, so a
stationary background of any colour or level becomes about constant and what rises above it stands
out), then root-compressed; with the gain fully normalised (alpha 1) a recorder's per-band response
cancels in it too.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DB_SCALE = 20.0  # dB features span about -80..0; divide so activations start near unit scale


class DeepDiveCNN(nn.Module):
    def __init__(self, n_classes: int, input_shape: tuple[int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in (32, 48, 48, 32):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(c)]
            c_in = c
        self.features = nn.Sequential(*layers)
        h, w = input_shape
        for _ in range(4):
            h, w = h // 2, w // 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * h * w, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.unsqueeze(1) + 40.0) / DB_SCALE
        return self.head(self.features(x))


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)) if c_in != c_out else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.skip(x))


class DeepdiveResNet(nn.Module):
    def __init__(self, n_classes: int, input_shape: tuple[int, int], widths=(32, 64, 96, 128), dropout: float = 0.3,
                 stem_pool: bool = False, contrast: bool = False, level: bool = True, pcen: float = 0.0) -> None:
        super().__init__()
        self.contrast, self.level, self.pcen = contrast, level, float(pcen)
        self.pcen_b = pcen_coefficient(self.pcen) if self.pcen else 0.0
        self.n_frames = int(input_shape[1])  # windows are this long: the scan's steps are fixed
        # a strided stem halves both axes at once: four times less work in the widest block
        stem = [nn.Conv2d(1 + int(contrast) + int(level) + int(bool(pcen)), widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                nn.ReLU()]
        if stem_pool:  # deepdive-resnet-fast: a max pool after it, a quarter of the positions again
            stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, c in enumerate(widths):
            stages.append(_Block(c_in, c))
            if i < len(widths) - 1:
                stages.append(nn.MaxPool2d(2))
            c_in = c
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embedding) from one pass: the embedding is the pooled vector the classifier reads
        (mean and max of the last block over time and frequency), what `deepdive embed` stores."""
        e = self.embed(x)
        return self.head(e), e

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        centred = (x - x.mean(dim=3, keepdim=True)) / DB_SCALE * 2  # per band, over time
        channels = [centred]
        if self.level:  # absolute level relative to the window's peak (which also carries the recorder's colouring)
            channels.append((x + 40.0) / DB_SCALE)
        if self.contrast:
            # contrast enhancement as in the challenge's winning entry: each band whitened over time,
            # then each frame centred over the bands (a broadband click or a level change cancels)
            white = centred / (centred.std(dim=3, keepdim=True) + 0.05)
            channels.append(white - white.mean(dim=2, keepdim=True))
        if self.pcen:
            channels.append(pcen_channel(x, self.pcen_b, self.n_frames))
        h = self.stages(self.stem(torch.cat(channels, dim=1)))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


PCEN_BIAS = 2.0  # delta of Lostanlen et al. (2019), librosa's default; the root r is theirs too, 1/2
_PCEN_FLAT = math.sqrt(1 + PCEN_BIAS) - math.sqrt(PCEN_BIAS)  # a frame at its running mean


def pcen_coefficient(time_constant: float) -> float:
    """b of PCEN's smoother for a time constant in frames, as librosa computes it."""
    if time_constant <= 0:
        raise ValueError(f"pcen: the time constant must be positive frames, not {time_constant}")
    return (math.sqrt(1 + 4 * time_constant**2) - 1) / (2 * time_constant**2)


def pcen_smooth(e: torch.Tensor, b: float, n_frames: int | None = None) -> torch.Tensor:
    """PCEN's first-order IIR smoother along the last axis, m[t] = (1 - b) m[t-1] + b e[t], started in
    its steady state for the first frame (m[-1] = e[0], so m[0] = e[0]). Computed as a log-depth scan
    (at step k each frame adds (1 - b)^(2^k) times the frame 2^k before it): exact, about 9 shifted
    additions for 313 frames where the equivalent T x T matrix product costs 30 times the work, exported
    to ONNX as slices, concatenations and additions, and left in fp32 by the int8 quantization (which keeps
    everything before the network's first convolution). `n_frames`: e's last axis, given as a number
    where e is traced for export."""
    y = torch.cat([e[..., :1], b * e[..., 1:]], dim=-1)
    a, shift, n = 1.0 - b, 1, int(n_frames or e.shape[-1])
    while shift < n:
        y = y + a * torch.cat([torch.zeros_like(y.narrow(-1, 0, shift)), y.narrow(-1, 0, n - shift)], dim=-1)
        a, shift = a * a, shift * 2
    return y


def pcen_channel(x: torch.Tensor, b: float, n_frames: int | None = None) -> torch.Tensor:
    """PCEN of dB windows x (batch, 1, bands, frames): power over its running mean (gain alpha = 1),
    root-compressed, less its value for a frame at its running mean: a stationary background gives 0,
    an onset at most sqrt(1/b + 2) - sqrt(3) (b the smoother's coefficient: 3.5 for 25 frames), and a
    sound held longer than the time constant fades towards 0 as the mean catches up."""
    e = torch.exp(x * (math.log(10.0) / 10.0))  # power from dB; exp and sqrt, not pow: ONNX Runtime's Pow is 30x slower
    ratio = e / (pcen_smooth(e, b, n_frames) + 1e-12)
    return torch.sqrt(ratio + PCEN_BIAS) - math.sqrt(PCEN_BIAS) - _PCEN_FLAT


class EmbeddingHead(nn.Module):
    """A linear classifier over a fixed embedding (BirdNET's): standardised by batch norm (its running
    statistics are the training set's mean and variance once trained), dropout, one linear layer."""

    def __init__(self, n_classes: int, input_shape: tuple[int], dropout: float = 0.3) -> None:
        super().__init__()
        (d,) = input_shape
        self.norm = nn.BatchNorm1d(d)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x))
