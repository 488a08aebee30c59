"""Model registry: `build(name, n_classes, input_shape, **options)` returns a torch module.

Every model takes a batch of feature windows (batch, *input_shape) as the card's feature configuration
computes them (dB spectrograms: peak 0, floor -top_db; or complexity-entropy series in [0, 1]) and
returns logits (batch, n_classes); input scaling lives inside the model, so the exported ONNX graph
needs nothing but the card's feature configuration.

| name | for | input |
|---|---|---|
| deepdive-cnn | species (Deep Dive's published CNN) | log-mel |
| deepdive-resnet | species (default) | log-mel |
| deepdive-resnet-fast | species: deepdive-resnet with a max pool after its stem, a quarter of the work (and less accurate) | log-mel |
| detector-cnn | right-whale detection (default): the residual design, narrow | spectrogram image |
| xception | detection, the Kaggle seed: Chollet (2017), `width` multiplier, optional ImageNet weights | spectrogram image |
| inception1d | detection, the seed's 1D CNN | complexity-entropy series |
| inceptiontime | detection, Fawaz et al. (2020) | complexity-entropy series |
| embedding-linear | species: a linear layer over BirdNET embeddings | birdnet |
"""

from __future__ import annotations

from pathlib import Path

MODELS = ("deepdive-cnn", "deepdive-resnet", "deepdive-resnet-fast", "detector-cnn", "xception", "inception1d", "inceptiontime",
          "embedding-linear")


def build(name: str, n_classes: int, input_shape: tuple[int, int], **options):
    from ..errors import ModelError
    from .cnn import DeepDiveCNN, DeepdiveResNet, EmbeddingHead
    from .inception import Inception1D, InceptionTime
    from .xception import Xception

    builders = {
        "deepdive-cnn": lambda: DeepDiveCNN(n_classes, input_shape, **options),
        "deepdive-resnet": lambda: DeepdiveResNet(n_classes, input_shape, **options),
        "deepdive-resnet-fast": lambda: DeepdiveResNet(n_classes, input_shape, **{"stem_pool": True, **options}),
        "detector-cnn": lambda: DeepdiveResNet(n_classes, input_shape, **{"widths": (16, 32, 48, 64), **options}),
        "xception": lambda: Xception(n_classes, input_shape, **options),
        "inception1d": lambda: Inception1D(n_classes, input_shape, **options),
        "inceptiontime": lambda: InceptionTime(n_classes, input_shape, **options),
        "embedding-linear": lambda: EmbeddingHead(n_classes, input_shape, **options),
    }
    if name not in builders:
        raise ModelError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
    try:
        return builders[name]()
    except TypeError as exc:
        raise ModelError(f"model '{name}': bad option ({exc})") from None


def _head_prefix(model) -> str:
    return getattr(model, "HEAD", "head") + "."


def load_matching(model, source: str | Path) -> dict:
    """Load every tensor of `source` (a bundle folder with model.pt, or a .pt state dict) whose name
    and shape match one of `model`'s, except the classifier head. Returns what was loaded and skipped."""
    import torch

    from ..errors import ModelError

    path = Path(source)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ModelError(f"{path}: no weights to start from; give a bundle folder with model.pt or a .pt file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read torch weights ({str(exc)[:100]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = model.state_dict()
    head = _head_prefix(model)
    take = {k: v for k, v in state.items() if k in own and not k.startswith(head) and own[k].shape == v.shape}
    if not take:
        raise ModelError(f"{path}: none of its layers match this model's; start from a model of the same architecture")
    model.load_state_dict(take, strict=False)
    return {"from": str(source), "loaded": len(take), "of": len([k for k in own if not k.startswith(head)]),
            "skipped": sorted(k for k in state if k not in take)[:20]}


def freeze_backbone(model) -> None:
    """Train only the classifier head: freeze every other parameter and its batch-norm statistics."""
    from torch import nn

    head = _head_prefix(model)
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(head)
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not (name + ".").startswith(head):
            m.eval()
