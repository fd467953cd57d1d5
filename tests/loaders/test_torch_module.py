"""PyTorch nn.Sequential lowering, compared with torch's own forward."""

import numpy as np
import pytest

from exactverify.core.errors import InputError
from exactverify.loaders import load_network
from exactverify.core.network import Affine

torch = pytest.importorskip("torch")
nn = torch.nn

from exactverify.loaders.torch_module import from_torch  # noqa: E402


def randomise_batchnorm(module):
    """Fresh BatchNorm layers are the identity; give them statistics worth testing."""
    gen = torch.Generator().manual_seed(7)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(n, generator=gen) * 2 - 1)
                m.bias.data.copy_(torch.rand(n, generator=gen) * 2 - 1)
    return module


def assert_matches_torch(module, input_shape, samples=4):
    net = from_torch(module, input_shape)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(samples):
            x = torch.randn(input_shape, generator=gen)
            ref = module(x)
            assert net.output_shape == tuple(ref.shape)
            ref = ref.numpy().ravel()
            bound = 1e-5 * max(1.0, float(np.abs(ref).max()))
            assert np.max(np.abs(net.forward(x.numpy().ravel()) - ref)) <= bound
            assert np.max(np.abs(net.forward32(x.numpy().ravel()) - ref)) <= bound
    return net


def test_mlp_keeps_float32_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)).eval()
    net = assert_matches_torch(model, (1, 3, 4))
    assert [type(layer).__name__ for layer in net.layers] == ["Affine", "ReLU", "Affine"]
    assert np.array_equal(net.layers[0].weight, model[1].weight.detach().numpy().astype(np.float64))
    assert net.input_shape == (1, 3, 4) and net.source == "<torch Sequential>"


def test_cnn_with_every_supported_layer_and_nesting():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2, padding=1),
        nn.Sequential(nn.Conv2d(8, 4, 3, groups=2, padding="same", dilation=2, bias=False), nn.Identity()),
        nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
        nn.Flatten(),
        nn.Sequential(nn.Linear(4 * 5 * 5, 10), nn.BatchNorm1d(10), nn.Dropout(0.3), nn.ReLU()),
        nn.Linear(10, 3))
    net = assert_matches_torch(randomise_batchnorm(model).eval(), (1, 3, 13, 13))
    assert net.num_relus == 8 * 7 * 7 + 10


@pytest.mark.parametrize("layer,shape", [
    (nn.AvgPool2d(3, stride=2, padding=1), (1, 2, 7, 7)),  # count_include_pad=True, torch's default
    (nn.AvgPool2d(2, divisor_override=3), (1, 2, 6, 6)),
    (nn.MaxPool2d(3, stride=2, dilation=2, padding=1), (1, 2, 9, 9)),
    (nn.MaxPool2d(2, ceil_mode=True), (1, 1, 6, 6)),  # ceil_mode that does not change the size
    (nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), (2, 5, 5)),  # unbatched input
    (nn.Conv2d(2, 2, 3, padding="valid"), (1, 2, 5, 5)),
    (nn.Conv2d(2, 3, (4, 2), padding="same", dilation=(1, 3)), (1, 2, 6, 7)),  # odd total padding: extra at the end
    (nn.BatchNorm1d(4, affine=False), (1, 4, 3)),
    (nn.Linear(4, 2), (1, 3, 4)),  # applied to the last axis of each row
    (nn.Flatten(0, -1), (2, 3)),
])
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_single_layers(layer, shape):
    torch.manual_seed(2)
    assert_matches_torch(randomise_batchnorm(nn.Sequential(layer)).eval(), shape)


def test_bare_layer_without_sequential():
    torch.manual_seed(3)
    net = assert_matches_torch(nn.Linear(5, 2), (1, 5))
    assert isinstance(net.layers[0], Affine)


def test_load_network_accepts_a_module():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    assert load_network(model, input_shape=(1, 4)).output_size == 3
    with pytest.raises(InputError, match="input_shape is required"):
        load_network(model)


def test_unsupported_modules_are_all_listed():
    class MyLinear(nn.Linear):  # a subclass may change forward, so it is not trusted
        pass

    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Sequential(nn.Tanh(), MyLinear(3, 2)))
    with pytest.raises(InputError) as err:
        from_torch(model, (1, 4))
    problem = err.value.problem
    assert "Sigmoid ('1')" in problem and "Tanh ('2.0')" in problem and "MyLinear ('2.1')" in problem
    assert "<torch Sequential>" in str(err.value)


@pytest.mark.parametrize("model,shape,phrase", [
    (nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), (1, 4), "training mode"),
    (nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)), (1, 4), "training mode"),
    (nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False)).eval(), (1, 3), "no running statistics"),
    (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), (1, 1, 4, 4), "padding_mode"),
    (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), (1, 1, 5, 5), "ceil_mode"),
    (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), (1, 1, 4, 4), "return_indices"),
    (nn.Sequential(nn.Linear(4, 3)), (1, 5), "do not match"),
    (nn.Sequential(nn.Conv2d(1, 1, 3)), (1, 9), "3-D or 4-D input"),
    (nn.Sequential(nn.Linear(4, 3)), (1, 0), "positive sizes"),
    (nn.Sequential(nn.Linear(4, 3)), "1x4", "sequence of integers"),
])
def test_bad_modules(model, shape, phrase):
    with pytest.raises(InputError) as err:
        from_torch(model, shape)
    assert phrase in err.value.problem, err.value.problem


def test_nan_weights_are_rejected():
    model = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN or infinite"):
        from_torch(model, (1, 3))
