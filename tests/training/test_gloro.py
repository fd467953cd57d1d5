"""GloRo in PyTorch: the bottom logit, the training losses, and agreement with the sound certificate."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exactverify import load_network  # noqa: E402
from exactverify.training.gloro import GloRoNet, eps_schedule, gloro_loss, relaxed_loss, train  # noqa: E402
from exactverify.bounds.lipschitz import certify_batch, margin_lipschitz  # noqa: E402


def model(seed=0, sizes=(2, 16, 16, 3)):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.8]])
    y = rng.integers(0, 3, n)
    return (centres[y] + 0.35 * rng.standard_normal((n, 2))).astype(np.float32), y


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_estimated_constants_against_sound_ones(norm):
    g = GloRoNet(model(1), eps=0.1, norm=norm).eval()
    with torch.no_grad():
        K_est = g.margin_lipschitz().double().numpy()
    K = margin_lipschitz(load_network(g.model, input_shape=(1, 2)), norm)
    off = ~np.eye(3, dtype=bool)
    # the same chains: the power-iteration estimates converge from below to the certified norms
    assert np.all(K_est[off] <= K[off] * (1 + 1e-5))
    assert np.all(K_est[off] >= 0.98 * K[off])


def test_bottom_logit():
    g = GloRoNet(model(2), eps=0.2).eval()
    x = torch.randn(7, 2)
    with torch.no_grad():
        out = g(x)
        y = g.logits(x)
        K = g.margin_lipschitz()
    assert out.shape == (7, 4) and torch.equal(out[:, :3], y)
    for n in range(7):
        i = int(y[n].argmax())
        expect = max(float(y[n, j] + 0.2 * K[i, j]) for j in range(3) if j != i)
        assert float(out[n, 3]) == pytest.approx(expect, rel=1e-5)


def test_gloro_training_certifies_and_agrees_with_the_sound_certificate():
    torch.set_num_threads(1)
    X, y = blobs()
    eps = 0.3
    g = GloRoNet(model(3), eps=eps)
    with torch.no_grad():
        before = float(gloro_loss(g(torch.as_tensor(X)), torch.as_tensor(y)))
    train(g, X, y, epochs=40, lr=3e-3, mode="gloro")
    with torch.no_grad():
        after = float(gloro_loss(g(torch.as_tensor(X)), torch.as_tensor(y)))
    assert after < before
    est = g.certified(torch.as_tensor(X)).numpy()
    net = load_network(g.model, input_shape=(1, 2))
    sound = certify_batch(net, X.astype(np.float64), eps, norm="2")
    assert sound.certified.mean() > 0.5
    # the sound K is a hair above the power-iteration estimate: at most a few borderline points differ
    assert np.sum(sound.certified & ~est) <= 2
    assert np.sum(est & ~sound.certified) <= 0.05 * len(X)


@pytest.mark.parametrize("mode,kw", [("topk", {"k": 2}), ("affinity", {"groups": [[0, 1]]})])
def test_relaxed_losses_train(mode, kw):
    torch.set_num_threads(1)
    X, y = blobs(200, seed=1)
    g = GloRoNet(model(4), eps=0.3)
    xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    before = float(relaxed_loss(g, xt, yt, mode, **kw).detach())
    loss = relaxed_loss(g, xt, yt, mode, **kw)
    loss.backward()
    assert all(p.grad is not None for p in g.parameters())
    g.zero_grad()
    train(g, X, y, epochs=25, lr=3e-3, mode=mode, **kw)
    with torch.no_grad():
        assert float(relaxed_loss(g, xt, yt, mode, **kw)) < before
    net = load_network(g.model, input_shape=(1, 2))
    cert = certify_batch(net, X.astype(np.float64), 0.3, mode=mode, **kw)
    assert cert.label_in_set(y).mean() > 0.3


def test_eps_schedule_and_bad_models():
    assert eps_schedule(0, 100, 0.5) == 0.0
    assert eps_schedule(25, 100, 0.5) == pytest.approx(0.25)
    assert eps_schedule(80, 100, 0.5) == 0.5
    with pytest.raises(ValueError):
        GloRoNet(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 2)), eps=0.1)
    with pytest.raises(ValueError):
        GloRoNet(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()), eps=0.1)
