import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepdive.errors import ModelError  # noqa: E402
from deepdive.models import MODELS, build  # noqa: E402


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(64, 157), (48, 94)])
def test_shapes(name, shape):
    if name == "embedding-linear":  # a head over an embedding vector
        shape = (shape[0] * 8,)
    m = build(name, 7, shape).eval()
    out = m(torch.randn(3, *shape) * 20 - 40)
    assert out.shape == (3, 7)


def test_deepdive_cnn_is_the_published_architecture():
    m = build("deepdive-cnn", 31, (64, 157))
    convs = [c.out_channels for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert convs == [32, 48, 48, 32]
    assert sum(isinstance(c, torch.nn.MaxPool2d) for c in m.modules()) == 4
    assert sum(isinstance(c, torch.nn.BatchNorm2d) for c in m.modules()) == 4
    dense = [c.out_features for c in m.modules() if isinstance(c, torch.nn.Linear)]
    assert dense == [64, 31]
    assert [d.p for d in m.modules() if isinstance(d, torch.nn.Dropout)] == [0.2]


def test_resnet_ignores_where_the_call_is():
    """Global pooling: rolling the window in time barely moves the output (edges aside)."""
    m = build("deepdive-resnet", 5, (48, 96)).eval()
    x = torch.full((1, 48, 96), -80.0)
    x[0, 10:14, 20:30] = 0.0
    y = m(x)
    y2 = m(torch.roll(x, 40, dims=2))
    assert torch.allclose(torch.softmax(y, 1), torch.softmax(y2, 1), atol=0.02)


def test_fast_resnet_is_the_resnet_with_a_pooled_stem():
    """Same weights as deepdive-resnet (so the two load each other's model.pt), and a quarter of the
    positions after the stem."""
    slow, fast = build("deepdive-resnet", 16, (96, 313)), build("deepdive-resnet-fast", 16, (96, 313))
    assert {k: v.shape for k, v in slow.state_dict().items()} == {k: v.shape for k, v in fast.state_dict().items()}
    x = torch.zeros(1, 2, 96, 313)
    assert slow.stem(x).shape[2:] == (48, 157) and fast.stem(x).shape[2:] == (24, 78)
    assert fast(torch.full((3, 96, 313), -40.0)).shape == (3, 16)


def test_contrast_channel_cancels_a_broadband_click_and_exports(tmp_path):
    """detector-cnn with contrast=True: a third input channel, bands whitened over time then frames
    centred over the bands, so a click (every band at once) leaves it flat while a tonal call stands
    out; the ONNX graph gives torch's output."""
    import onnxruntime as ort

    from deepdive.train import export_onnx

    m = build("detector-cnn", 2, (64, 80), contrast=True).eval()
    assert m.stem[0].in_channels == 3 and build("detector-cnn", 2, (64, 80)).stem[0].in_channels == 2
    seen = []
    m.stem.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    x = torch.full((1, 64, 80), -60.0) + torch.randn(1, 64, 80, generator=torch.Generator().manual_seed(0))
    x[:, :, 40] = 0.0  # a click: every band at once
    x[:, 20:23, 10:30] = -20.0  # a tonal call in three bands
    m(x)
    centred, contrast = seen[0][0, 0], seen[0][0, 2]
    assert centred[:, 40].min() > 1.0  # band centring alone keeps the click, in every band
    quiet = torch.cat([contrast[:20, 40], contrast[23:, 40]])  # bands without the call: the click cancels
    assert quiet.abs().max() < 1.0 < contrast[20:23, 10:30].min()  # while the call stands out
    export_onnx(m, (64, 80), tmp_path / "c.onnx")
    xs = (np.random.default_rng(0).standard_normal((3, 64, 80)) * 20 - 40).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "c.onnx"), providers=["CPUExecutionProvider"]).run(None, {"logmel": xs})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, m(torch.from_numpy(xs)).numpy(), rtol=1e-4, atol=1e-4)


def test_unknown_model():
    with pytest.raises(ModelError, match="deepdive-cnn"):
        build("resnet9000", 2, (8, 8))


def test_onnx_round_trip_matches_torch(tmp_path):
    import onnxruntime as ort

    from deepdive.train import export_onnx

    for name in MODELS:
        shape = (48 * 94,) if name == "embedding-linear" else (48, 94)
        m = build(name, 4, shape).eval()
        export_onnx(m, shape, tmp_path / f"{name}.onnx")
        x = (np.random.default_rng(0).standard_normal((5, *shape)) * 20 - 40).astype(np.float32)
        sess = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"logmel": x})[0]
        with torch.no_grad():
            want = m(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_xception_is_chollets_architecture():
    from deepdive.models.xception import SeparableConv2d, Xception

    m = Xception(2, (128, 128), width=1.0)
    seps = [c for c in m.modules() if isinstance(c, SeparableConv2d)]
    plain = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3) and c.groups == 1]
    assert len(seps) == 34 and len(plain) == 2  # 36 convolutional layers, as in the paper
    assert all(s.conv1.groups == s.conv1.in_channels for s in seps)  # depthwise
    assert m.n_blocks == 12 and all(getattr(m, f"block{i}").skip is None for i in range(4, 12))  # 8 middle blocks
    assert m.fc.in_features == 2048
    # width multiplier: a quarter of every channel count
    small = Xception(2, (128, 128), width=0.25)
    assert small.fc.in_features == 512 and small.block5.rep[1].pointwise.out_channels == 184


def _fake_timm_state(path):
    import json

    from conftest import ROOT

    shapes = json.loads((ROOT / "tests" / "data" / "timm_legacy_xception_shapes.json").read_text())["shapes"]
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(3) if k.endswith("num_batches_tracked") else torch.randn(v, generator=gen)) for k, v in shapes.items()}
    torch.save(state, path)
    return state


def test_xception_has_timms_layout_and_loads_its_weights(tmp_path):
    from deepdive.models.xception import Xception

    state = _fake_timm_state(tmp_path / "xception.pth")
    own = Xception(2, (96, 96), width=1.0).state_dict()
    differ = {k for k, v in state.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)}
    assert differ == {"conv1.weight", "fc.weight", "fc.bias"}  # 3 colour channels and 1000 ImageNet classes
    m = Xception(2, (96, 96), width=1.0, pretrained=str(tmp_path / "xception.pth"))
    got = m.state_dict()
    assert torch.equal(got["block5.rep.1.pointwise.weight"], state["block5.rep.1.pointwise.weight"])
    assert torch.equal(got["bn4.running_var"], state["bn4.running_var"])
    assert torch.allclose(got["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert got["fc.weight"].shape == (2, 2048)
    with pytest.raises(ModelError, match="width 1.0"):
        Xception(2, (96, 96), width=0.5, pretrained=str(tmp_path / "xception.pth"))
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="timm"):
        Xception(2, (96, 96), width=1.0, pretrained=str(tmp_path / "other.pth"))
    with pytest.raises(ModelError, match="no such"):
        Xception(2, (96, 96), width=1.0, pretrained=str(tmp_path / "missing.pth"))


def test_inception1d_is_the_seeds_network():
    m = build("inception1d", 2, (30, 126))
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (30, 128, (3,), (1,)), (128, 128, (3,), (1,)), (128, 128, (3,), (1,))]
    assert sum(isinstance(c, torch.nn.BatchNorm1d) for c in m.modules()) == 3
    assert [d.p for d in m.modules() if isinstance(d, torch.nn.Dropout)] == [0.2, 0.2, 0.2]
    # channels are the measures, the last axis is time: a series shifted in time gives nearly the same answer
    m.eval()
    x = torch.rand(1, 30, 126)
    assert torch.allclose(torch.softmax(m(x), 1), torch.softmax(m(torch.roll(x, 30, 2)), 1), atol=0.05)


def test_inceptiontime_modules():
    from deepdive.models.inception import InceptionModule

    m = build("inceptiontime", 2, (30, 126))
    mods = [c for c in m.modules() if isinstance(c, InceptionModule)]
    assert len(mods) == 6 and len(m.shortcuts) == 2
    assert [c.kernel_size[0] for c in mods[0].convs] == [9, 19, 39]


def test_transfer_loads_matching_layers_and_freezes(tmp_path):
    from deepdive.models import freeze_backbone, load_matching

    species = build("deepdive-resnet", 16, (96, 313))
    torch.save(species.state_dict(), tmp_path / "model.pt")
    det = build("deepdive-resnet", 2, (129, 126))
    info = load_matching(det, tmp_path)
    assert info["loaded"] == info["of"] and info["skipped"] == ["head.1.bias", "head.1.weight"]
    assert torch.equal(det.stem[0].weight, species.stem[0].weight)
    freeze_backbone(det)
    det.train()
    freeze_backbone(det)
    assert [n for n, p in det.named_parameters() if p.requires_grad] == ["head.1.weight", "head.1.bias"]
    assert not det.stem[1].training
    with pytest.raises(ModelError, match="none of its layers"):
        load_matching(build("inception1d", 2, (30, 126)), tmp_path)


def test_resnet_without_the_level_channel_cannot_hear_a_recorders_frequency_response():
    """`level=False`: only the band-centred spectrogram reaches the network, so adding any constant
    per band (a hydrophone's response, in dB) leaves the output unchanged; with the level channel it moves."""
    import torch

    from deepdive.models import build

    torch.manual_seed(0)
    x = torch.randn(3, 96, 64) * 5 - 40
    response = torch.linspace(-12, 12, 96)[None, :, None]
    centred = build("deepdive-resnet", 5, (96, 64), level=False).eval()
    plain = build("deepdive-resnet", 5, (96, 64)).eval()
    with torch.no_grad():
        assert torch.allclose(centred(x), centred(x + response), atol=1e-5)
        assert not torch.allclose(plain(x), plain(x + response), atol=1e-3)


def test_pcen_smoothing_is_the_iir_filter_and_the_channel_follows_the_background(tmp_path):
    """pcen=T: the log-depth scan gives PCEN's first-order IIR (librosa's coefficient for T frames,
    started in its steady state on the first frame) exactly; a stationary background of any level
    gives a flat channel (0), a call rising above it stands out, a recorder's per-band response
    cancels with level=False, and the ONNX graph gives torch's output."""
    import onnxruntime as ort
    from scipy.signal import lfilter

    from deepdive.features import MelConfig, StftImageConfig
    from deepdive.models.cnn import pcen_coefficient, pcen_smooth
    from deepdive.train import export_onnx

    t_frames = 25.0
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    assert pcen_coefficient(t_frames) == pytest.approx(b, rel=1e-12)
    for n in (1, 2, 80, 313):  # the scan's last step covers a part of the window, or all of it
        e = np.random.default_rng(n).random((4, n))
        want = lfilter([b], [1, b - 1], e, axis=-1, zi=(1 - b) * e[:, :1])[0]
        np.testing.assert_allclose(pcen_smooth(torch.from_numpy(e), b).numpy(), want, rtol=1e-10)
    assert MelConfig().columns(0.4) == pytest.approx(25.0)  # 32 kHz, hop 512
    assert StftImageConfig().columns(0.4) == pytest.approx(25.0)  # 2 kHz, hop 32: 126 frames
    assert StftImageConfig(image=(128, 63)).columns(0.4) == pytest.approx(12.5)  # resized to half the columns

    m = build("deepdive-resnet-fast", 5, (64, 80), level=False, pcen=t_frames).eval()
    assert m.stem[0].in_channels == 2 and build("deepdive-resnet-fast", 5, (64, 80), level=False).stem[0].in_channels == 1
    seen = []
    m.stem.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    x = torch.linspace(-70, -30, 64)[:, None].expand(64, 80).clone()[None]  # coloured, stationary
    x[:, 20:23, 40:60] = -10.0  # a call in three bands
    with torch.no_grad():
        m(x)
        pcen = seen[0][0, 1]
        assert pcen[:, :40].abs().max() < 1e-4 and pcen[:20].abs().max() < 1e-4  # the background: flat at 0
        assert pcen[20:23, 40].min() > 3.0 and pcen[20:23, 41:60].min() > 0.2  # the call's onset stands out, and it
        assert pcen[20:23, 59].max() < pcen[20:23, 45].min()  # fades as the running mean catches up
        response = torch.linspace(-12, 12, 64)[None, :, None]
        xs = torch.randn(3, 64, 80, generator=torch.Generator().manual_seed(0)) * 5 - 40
        assert torch.allclose(m(xs), m(xs + response), atol=1e-4)
    export_onnx(m, (64, 80), tmp_path / "p.onnx")
    got = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"]).run(None, {"logmel": xs.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, m(xs).numpy(), rtol=1e-4, atol=1e-4)
