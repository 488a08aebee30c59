"""1D networks over complexity-entropy series (channels = measures, length = time frames).

`Inception1D` is the Whale Sound Detection seed's network: three 1D convolutions of 128 filters,
kernel 3, same padding, each followed by batch normalisation, ReLU and dropout 0.2; global average
pooling over time; a softmax classifier (the softmax is applied at inference; training uses the
cross-entropy of the logits).

`InceptionTime` is Fawaz et al. (2020): `depth` Inception modules (a 1x1 bottleneck of 32 filters,
then parallel convolutions of kernels 9, 19 and 39 — the paper's 10, 20, 40 made odd for same
padding — plus a 3-wide max pool followed by a 1x1 convolution; 4 x 32 filters concatenated, batch
norm, ReLU), a residual connection every three modules, global average pooling, the classifier.
"""

from __future__ import annotations

import torch
from torch import nn


class Inception1D(nn.Module):
    def __init__(self, n_classes: int, input_shape: tuple[int, int], filters: int = 128, dropout: float = 0.2,
                 layers: int = 3) -> None:
        super().__init__()
        c_in = input_shape[0]
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Conv1d(c_in, filters, 3, padding=1), nn.BatchNorm1d(filters), nn.ReLU(), nn.Dropout(dropout)]
            c_in = filters
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(filters, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, channels, time)
        return self.head(self.features(x).mean(dim=2))


class InceptionModule(nn.Module):
    def __init__(self, c_in: int, filters: int = 32, kernels: tuple[int, ...] = (9, 19, 39), bottleneck: int = 32) -> None:
        super().__init__()
        use_bottleneck = c_in > 1 and bottleneck > 0
        self.bottleneck = nn.Conv1d(c_in, bottleneck, 1, bias=False) if use_bottleneck else nn.Identity()
        width = bottleneck if use_bottleneck else c_in
        self.convs = nn.ModuleList(nn.Conv1d(width, filters, k, padding=k // 2, bias=False) for k in kernels)
        self.pool = nn.Sequential(nn.MaxPool1d(3, 1, 1), nn.Conv1d(c_in, filters, 1, bias=False))
        self.bn = nn.BatchNorm1d(filters * (len(kernels) + 1))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        out = torch.cat([conv(z) for conv in self.convs] + [self.pool(x)], dim=1)
        return self.act(self.bn(out))


class InceptionTime(nn.Module):
    def __init__(self, n_classes: int, input_shape: tuple[int, int], depth: int = 6, filters: int = 32,
                 kernels: tuple[int, ...] = (9, 19, 39)) -> None:
        super().__init__()
        c_in = input_shape[0]
        c_out = filters * (len(kernels) + 1)
        self.modules_ = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        res_in = c_in
        for d in range(depth):
            self.modules_.append(InceptionModule(c_in if d == 0 else c_out, filters, tuple(kernels)))
            if d % 3 == 2:
                self.shortcuts.append(nn.Sequential(nn.Conv1d(res_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out)))
                res_in = c_out
        self.act = nn.ReLU()
        self.head = nn.Linear(c_out, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x
        s = 0
        for d, module in enumerate(self.modules_):
            x = module(x)
            if d % 3 == 2:
                x = self.act(x + self.shortcuts[s](res))
                res = x
                s += 1
        return self.head(x.mean(dim=2))
