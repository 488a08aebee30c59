"""Xception (Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions").

The full network: an entry flow (two plain 3x3 convolutions, then three residual blocks of
depthwise-separable convolutions that halve the resolution), a middle flow of eight residual blocks
of three separable convolutions at 728 channels, and an exit flow (a residual block to 1024 channels,
two separable convolutions to 1536 and 2048, global average pooling, the classifier). Every separable
convolution is followed by batch normalisation; ReLUs come before them as in the paper.

`width` multiplies every channel count (rounded to a multiple of 8): 1.0 is the paper's 22.9 M
parameters; 0.25 trains on a laptop CPU.

ImageNet weights. `pretrained` names a local file holding timm's Xception state dict (the
`legacy_xception` / `xception` checkpoint, e.g. `xception-43020ad28.pth`, as saved by
`torch.save(timm.create_model("legacy_xception", pretrained=True).state_dict(), path)`). Parameter
names here follow timm's (`conv1`, `bn1`, `conv2`, `bn2`, `block1`..`block12` with `rep.N.conv1`
(depthwise) / `rep.N.pointwise` / `skip` / `skipbn`, `conv3`, `bn3`, `conv4`, `bn4`, `fc`), so the
file loads at width 1.0; its 3-channel first convolution is summed into our single channel (the
spectrogram), and the ImageNet classifier `fc` is left out. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

DB_SCALE = 40.0  # dB images span about -80..0: map them to about -1..1, like ImageNet's normalisation


def _w(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8)) * 8)


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 convolution (one filter per channel) followed by a pointwise 1x1 convolution."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, kernel_size, 1, padding, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    """`reps` x (ReLU, separable conv, BN), a 3x3 max pool of stride 2 when `stride` is 2, plus a
    residual connection (a strided 1x1 convolution and BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, reps: int, stride: int = 1, start_with_relu: bool = True,
                 grow_first: bool = True) -> None:
        super().__init__()
        if c_out != c_in or stride != 1:
            self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(c_out)
        else:
            self.skip = None
        layers: list[nn.Module] = []
        for i in range(reps):
            if grow_first:
                inc, outc = (c_in if i == 0 else c_out), c_out
            else:
                inc, outc = c_in, (c_in if i < reps - 1 else c_out)
            layers += [nn.ReLU(), SeparableConv2d(inc, outc), nn.BatchNorm2d(outc)]
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        return self.rep(x) + skip


class Xception(nn.Module):
    HEAD = "fc"

    def __init__(self, n_classes: int, input_shape: tuple[int, int], width: float = 0.25, dropout: float = 0.2,
                 pretrained: str | None = None, middle_blocks: int = 8) -> None:
        super().__init__()
        c = {k: _w(k, width) for k in (32, 64, 128, 256, 728, 1024, 1536, 2048)}
        self.width = width
        # entry flow
        self.conv1 = nn.Conv2d(1, c[32], 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(c[32])
        self.conv2 = nn.Conv2d(c[32], c[64], 3, bias=False)
        self.bn2 = nn.BatchNorm2d(c[64])
        self.act = nn.ReLU()
        blocks = [Block(c[64], c[128], 2, 2, start_with_relu=False), Block(c[128], c[256], 2, 2), Block(c[256], c[728], 2, 2)]
        # middle flow
        blocks += [Block(c[728], c[728], 3, 1) for _ in range(middle_blocks)]
        # exit flow
        blocks.append(Block(c[728], c[1024], 2, 2, grow_first=False))
        for i, b in enumerate(blocks, start=1):
            setattr(self, f"block{i}", b)
        self.n_blocks = len(blocks)
        self.conv3 = SeparableConv2d(c[1024], c[1536])
        self.bn3 = nn.BatchNorm2d(c[1536])
        self.conv4 = SeparableConv2d(c[1536], c[2048])
        self.bn4 = nn.BatchNorm2d(c[2048])
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c[2048], n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if pretrained:
            self.load_imagenet(pretrained)

    def load_imagenet(self, path: str | Path) -> int:
        """Load timm's ImageNet Xception state dict from a local file (width 1.0 only)."""
        from ..errors import ModelError

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such weights file; give timm's Xception state dict saved with torch.save")
        if self.width != 1.0:
            raise ModelError(f"{path}: ImageNet weights fit width 1.0 only; this Xception has width {self.width}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"{path}: cannot read torch weights ({str(exc)[:100]})") from None
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if "conv1.weight" in state and state["conv1.weight"].shape[1] == 3:
            state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
        own = self.state_dict()
        take = {k: v for k, v in state.items() if k in own and not k.startswith("fc.") and own[k].shape == v.shape}
        missing = [k for k in own if not k.startswith("fc.") and k not in take and not k.endswith("num_batches_tracked")]
        if missing:
            raise ModelError(f"{path}: not an Xception state dict in timm's layout ({len(missing)} tensors missing, "
                             f"e.g. {missing[0]})")
        self.load_state_dict(take, strict=False)
        return len(take)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.unsqueeze(1) + DB_SCALE) / DB_SCALE
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        for i in range(1, self.n_blocks + 1):
            x = getattr(self, f"block{i}")(x)
        x = self.act(self.bn3(self.conv3(x)))
        return self.act(self.bn4(self.conv4(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.forward_features(x).mean(dim=(2, 3))))
