"""GloRo networks in PyTorch: globally-robust training (Leino, Wang & Fredrikson, ICML 2021).

torch is imported inside the functions only: `import exactverify` (and this
module) never imports it.

`GloRoNet(model, eps)` wraps an `nn.Sequential` of Linear / ReLU / Flatten /
Identity layers. Its forward pass returns the model's C logits followed by a
bottom logit

    y_bot = max_{j != i} (y_j + eps K_ij),   i = argmax_j y_j (not differentiated),

where K_ij bounds the Lipschitz constant of the margin y_i - y_j: the product
of the hidden layers' operator norms times ||w_i - w_j|| of the last layer's
row difference (L2: spectral norms by power iteration, one step per training
batch on persistent vectors; L-inf: the smaller of the chain of exact max row
sums with the L1 row difference and the chain that switches to L2 at the
first layer, as in exactverify.bounds.lipschitz). The bottom class wins exactly when
the GloRo certificate fails, so cross-entropy on the C + 1 logits
(`gloro_loss`) trains for certified robustness. `eps` is an attribute: the
training loop (`train`) ramps it up linearly (`eps_schedule`).

The power-iteration constants are ESTIMATES (lower bounds of the spectral
norms, converging from below); they guide training only. Certificates are
issued by `exactverify.bounds.lipschitz` on the exported network, with sound bounds
(`GloRoNet(...).certified` is the estimate's verdict, for monitoring).

Relaxed variants (Leino & Fredrikson, NeurIPS 2021) for training:
`relaxed_loss(net, x, labels, mode="topk", k=K)` and `mode="affinity"` (with
groups): softplus of minus the best certified slack over the allowed top
sets that contain the label, plus the ordinary cross-entropy (see its
docstring); `train(..., mode="topk" | "affinity")` uses it. This is our own
simple relaxation, not the papers' exact loss.
"""

from __future__ import annotations

import math

import numpy as np


def _torch():
    import torch
    return torch


def eps_schedule(step: int, total: int, eps: float, warmup: float = 0.5, start: float = 0.0) -> float:
    """Linear ramp of eps from `start * eps` to `eps` over the first `warmup` share of `total` steps."""
    ramp = max(1, int(warmup * total))
    frac = min(1.0, step / ramp)
    return float(eps * (start + (1.0 - start) * frac))


_CLASS = None


def GloRoNet(model, eps: float, norm: str = "2", power_iterations: int = 1, eval_iterations: int = 200):
    """A GloRo wrapper module around `model` (see the module docstring)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _make_class()
    return _CLASS(model, eps, norm, power_iterations, eval_iterations)


def _leaves(module):
    torch = _torch()
    if type(module) is torch.nn.Sequential:
        for child in module.children():
            yield from _leaves(child)
    else:
        yield module


def _make_class():
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class _GloRoNet(nn.Module):
        def __init__(self, model, eps, norm, power_iterations, eval_iterations):
            super().__init__()
            norm = str(norm).lower().replace("l", "")
            if norm not in ("2", "inf"):
                raise ValueError(f"unsupported norm {norm!r} (choose '2' or 'inf')")
            leaves = list(_leaves(model))
            allowed = (nn.Linear, nn.ReLU, nn.Flatten, nn.Identity)
            bad = [type(m).__name__ for m in leaves if type(m) not in allowed]
            if bad:
                raise ValueError(f"GloRoNet supports nn.Sequential of Linear, ReLU, Flatten, Identity; got {bad}")
            linears = [m for m in leaves if isinstance(m, nn.Linear)]
            if not linears or not isinstance(leaves[-1], nn.Linear):
                raise ValueError("the model must end with an nn.Linear layer")
            self.model = model
            self.eps = float(eps)
            self.norm = norm
            self.power_iterations = int(power_iterations)
            self.eval_iterations = int(eval_iterations)
            self._hidden = linears[:-1]
            self._last = linears[-1]
            gen = torch.Generator().manual_seed(0)
            for n, lin in enumerate(self._hidden):
                u = torch.randn(lin.in_features, generator=gen, dtype=lin.weight.dtype)
                self.register_buffer(f"_u{n}", u / u.norm())

        # -- Lipschitz constants (differentiable in the weights)

        def _spectral(self, n: int, lin, iterations: int):
            w = lin.weight
            u = getattr(self, f"_u{n}")
            with torch.no_grad():
                for _ in range(iterations):
                    v = F.normalize(w @ u, dim=0)
                    u = F.normalize(w.t() @ v, dim=0)
                if iterations:
                    getattr(self, f"_u{n}").copy_(u)
            return (w @ u).norm()

        def hidden_lipschitz(self, norm=None):
            """The product of the hidden layers' operator norms in `norm` (default self.norm)."""
            norm = norm or self.norm
            iters = self.power_iterations if self.training else self.eval_iterations
            lip = torch.ones((), dtype=self._last.weight.dtype, device=self._last.weight.device)
            for n, lin in enumerate(self._hidden):
                if norm == "2":
                    lip = lip * self._spectral(n, lin, iters)
                elif norm == "inf":
                    lip = lip * lin.weight.abs().sum(dim=1).max()
                else:  # "inf->2": L-inf in, L2 out; inf->2 norm bound at the first layer, spectral after
                    if n == 0:
                        w = lin.weight
                        rows = w.abs().sum(dim=1).norm()
                        lip = lip * torch.minimum(rows, math.sqrt(w.shape[1]) * self._spectral(n, lin, iters))
                    else:
                        lip = lip * self._spectral(n, lin, iters)
            return lip

        def margin_lipschitz(self):
            """K (C x C): the estimate of each margin's Lipschitz constant, differentiable.

            L2: spectral norms and the L2 row difference. L-inf: as exactverify.bounds.lipschitz does, the
            smaller of the L-inf chain (row sums, L1 row difference) and the chain that switches to
            L2 at the first layer.
            """
            w = self._last.weight
            diff = w[:, None, :] - w[None, :, :]
            off = 1 - torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
            rows2 = torch.sqrt((diff * diff).sum(-1) + 1e-12) * off
            if self.norm == "2":
                return self.hidden_lipschitz("2") * rows2
            rows1 = diff.abs().sum(-1) * off
            k_inf = self.hidden_lipschitz("inf") * rows1
            if not self._hidden:
                return k_inf
            return torch.minimum(k_inf, self.hidden_lipschitz("inf->2") * rows2)

        # -- forward

        def logits(self, x):
            return self.model(x)

        def forward(self, x):
            y = self.model(x)
            K = self.margin_lipschitz()
            i = y.argmax(dim=1).detach()
            cand = y + self.eps * K[i]  # (N, C): y_j + eps K_ij
            cand = cand.masked_fill(F.one_hot(i, y.shape[1]).bool(), float("-inf"))
            bottom = cand.max(dim=1, keepdim=True).values
            return torch.cat([y, bottom], dim=1)

        def certified(self, x):
            """The (estimated) certificate: the bottom logit does not win."""
            with torch.no_grad():
                out = self.forward(x)
            return out[:, :-1].max(dim=1).values > out[:, -1]

    return _GloRoNet


def gloro_loss(augmented, labels):
    """Cross-entropy over the C + 1 GloRo logits (the label never is the bottom class)."""
    torch = _torch()
    return torch.nn.functional.cross_entropy(augmented, labels)


def relaxed_loss(net, x, labels, mode: str = "topk", k: int | None = None, groups=None):
    """A training loss for relaxed top-K or affinity robustness.

    For each allowed k (k <= K for topk; top-k sets inside one group for
    affinity) with the label inside the top-k set S_k, the certified slack of
    S_k is s_k = min_{i in S_k, j not in S_k} (y_i - y_j - eps K_ij). We
    treat max_k s_k as the label's margin over a bottom class, exactly as
    GloRo's cross-entropy does for k = 1: loss = softplus(-max_k s_k) plus the
    ordinary cross-entropy of the label (which pulls the label into the top
    set). Ranks (the sets S_k) are not differentiated.
    """
    torch = _torch()
    F = torch.nn.functional
    y = net.logits(x)
    K = net.margin_lipschitz()
    n, C = y.shape
    order = y.detach().argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(C, device=y.device).expand(n, C))
    P = y[:, :, None] - y[:, None, :] - net.eps * K[None]  # (n, C, C)
    if mode == "topk":
        sizes = range(1, min(int(k), C) + 1)
        gm = None
    elif mode == "affinity":
        rows = [sorted(set(int(c) for c in g)) for g in groups if len(g)]
        covered = {c for g in rows for c in g}
        rows += [[c] for c in range(C) if c not in covered]
        gm = torch.zeros(len(rows), C, dtype=y.dtype, device=y.device)
        for r, g in enumerate(rows):
            gm[r, g] = 1.0
        sizes = range(1, C + 1)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    best = torch.full((n,), -1e9, dtype=y.dtype, device=y.device)
    label_rank = rank.gather(1, labels[:, None])[:, 0]
    for kc in sizes:
        inS = rank < kc
        pair = inS[:, :, None] & ~inS[:, None, :]
        if not pair.any():
            continue
        s = P.masked_fill(~pair, float("inf")).amin(dim=(1, 2))
        ok = label_rank < kc
        if gm is not None:
            ok = ok & ((inS.to(y.dtype) @ gm.t()) == kc).any(dim=1)
        best = torch.where(ok, torch.maximum(best, s), best)
    return F.softplus(-best).mean() + F.cross_entropy(y, labels)


def train(net, X, y, epochs: int = 100, lr: float = 1e-3, batch_size: int = 64, eps: float | None = None,
          warmup: float = 0.5, mode: str = "gloro", k: int | None = None, groups=None, seed: int = 0,
          log=None):
    """Train `net` (a GloRoNet for mode gloro/topk/affinity, or a plain module for mode 'standard').

    X, y: numpy arrays. The GloRo eps ramps linearly to `eps` (default net.eps) over `warmup` of the run.
    Returns net (in eval mode).
    """
    torch = _torch()
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(Xt) / batch_size)
    total = epochs * steps_per_epoch
    target = getattr(net, "eps", 0.0) if eps is None else eps
    step = 0
    net.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        total_loss = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            xb, yb = Xt[idx], yt[idx]
            if mode == "standard":
                loss = F.cross_entropy(net(xb), yb)
            else:
                net.eps = eps_schedule(step, total, target, warmup)
                if mode == "gloro":
                    loss = gloro_loss(net(xb), yb)
                else:
                    loss = relaxed_loss(net, xb, yb, mode, k, groups)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_loss += float(loss.detach()) * len(idx)
            step += 1
        if log is not None:
            log(epoch, total_loss / len(Xt))
    if mode != "standard":
        net.eps = target
    net.eval()
    return net
