"""Model registry: `build(name, n_classes, input_shape)` returns a torch module.

Every model takes a batch of log-mel windows (batch, n_mels, n_frames) in dB (peak 0, floor -top_db)
and returns logits (batch, n_classes); input scaling lives inside the model, so the exported ONNX
graph needs nothing but the card's feature configuration.
"""

from __future__ import annotations

MODELS = ("deepdive-cnn", "deepdive-resnet")


def build(name: str, n_classes: int, input_shape: tuple[int, int]):
    from .cnn import DeepDiveCNN, DeepdiveResNet

    if name == "deepdive-cnn":
        return DeepDiveCNN(n_classes, input_shape)
    if name == "deepdive-resnet":
        return DeepdiveResNet(n_classes, input_shape)
    from ..errors import ModelError

    raise ModelError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
