import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepdive.errors import ModelError  # noqa: E402
from deepdive.models import MODELS, build  # noqa: E402


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(64, 157), (48, 94)])
def test_shapes(name, shape):
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


def test_unknown_model():
    with pytest.raises(ModelError, match="deepdive-cnn"):
        build("resnet9000", 2, (8, 8))


def test_onnx_round_trip_matches_torch(tmp_path):
    import onnxruntime as ort

    from deepdive.train import export_onnx

    for name in MODELS:
        m = build(name, 4, (48, 94)).eval()
        export_onnx(m, (48, 94), tmp_path / f"{name}.onnx")
        x = (np.random.default_rng(0).standard_normal((5, 48, 94)) * 20 - 40).astype(np.float32)
        sess = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"logmel": x})[0]
        with torch.no_grad():
            want = m(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
