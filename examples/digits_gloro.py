"""GloRo on scikit-learn's digits: train, export, certify, and check the certificates exactly.

    python examples/digits_gloro.py [--epochs N] [--eps 0.3] [--exact N] [--no-train]

1. Trains 64-64-64-10 ReLU networks on the 8x8 digits (pixels scaled to
   [0, 1]; 80/20 stratified split, seed 0), all from the same initialisation:
   one with plain cross-entropy, one with the GloRo loss at L2 radius eps
   (ramped up over the first half), and two with the relaxed GloRo losses
   (top-2 and affinity; exactverify.training.gloro.relaxed_loss).
2. Exports the first two to ONNX (examples/digits_standard.onnx,
   examples/digits_gloro.onnx) and the test split to
   examples/digits_gloro_test.npz (x, y). The relaxed ones stay in memory.
3. Lowers every network into the IR (the ONNX files through the ONNX loader)
   and certifies the whole test set with the sound one-pass certificate
   (exactverify.bounds.lipschitz) at L2 radius eps: standard, relaxed top-2 and
   affinity robustness (groups 1,7 / 3,5,8 / 4,9 / 0,6), reporting clean
   accuracy, certified fraction, VRA (certified, and the label in the
   certified set) and the certification time over a plain forward pass.
4. With --exact N: for up to N certified points per network and mode, decides
   the same property exactly (exactverify.metrics.local_robustness, MILP) on the L-inf
   ball of radius eps / 8 inscribed in the L2 ball (64 inputs), within the
   pixel domain [0, 1]; and likewise for the points the L-inf certificate
   accepts at radius eps / 8 itself (the same ball). All must be robust.

5. With --bench N: the first N test points as VNN-LIB-style local robustness
   properties (L-inf radius eps / 8 in [0, 1], label = prediction), decided
   by `verify` and, separately, by the Lipschitz fast path alone
   (exactverify.bounds.lipschitz.lipschitz_refutes: no MILP, no bounds): how many
   instances the fast path settles, and that it never contradicts `verify`.

--no-train re-uses the exported files (and skips the relaxed networks).
Torch is needed only for training.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

GROUPS = [[1, 7], [3, 5, 8], [4, 9], [0, 6]]


def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    return train_test_split(X, d.target.astype(np.int64), test_size=0.2, random_state=0, stratify=d.target)


def make_model(seed: int):
    import torch
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def train_and_export(args, Xtr, ytr) -> dict:
    """Train the four networks, export two; return the relaxed ones as IR networks by name."""
    import torch
    from exactverify import load_network
    from exactverify.training.gloro import GloRoNet, train
    from exactverify.loaders.onnx import save_onnx

    torch.set_num_threads(1)
    t = time.perf_counter()
    std = train(make_model(0), Xtr, ytr, epochs=args.epochs_standard, lr=1e-3, mode="standard")
    print(f"standard training: {time.perf_counter() - t:.1f} s")
    eps = args.train_eps or args.eps
    nets = {}
    for mode, kw in [("gloro", {}), ("topk", {"k": 2}), ("affinity", {"groups": GROUPS})]:
        t = time.perf_counter()
        g = GloRoNet(make_model(0), eps=eps, norm="2")
        train(g, Xtr, ytr, epochs=args.epochs, lr=args.lr, mode=mode, **kw)
        print(f"GloRo training ({mode} loss): {time.perf_counter() - t:.1f} s")
        nets[mode] = g.model.eval()
    std.eval()
    for model, name in [(std, "digits_standard.onnx"), (nets["gloro"], "digits_gloro.onnx")]:
        tmp = HERE / f".{name}.tmp"  # written aside and renamed: readers never see half a file
        save_onnx(load_network(model, input_shape=(1, 64)), tmp)
        os.replace(tmp, HERE / name)
    return {"GloRo top-2 loss (in memory)": load_network(nets["topk"], input_shape=(1, 64)),
            "GloRo affinity loss (in memory)": load_network(nets["affinity"], input_shape=(1, 64))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eps", type=float, default=0.3, help="L2 radius of the certificate (default 0.3)")
    p.add_argument("--train-eps", type=float, help="radius GloRo trains at (default: --eps)")
    p.add_argument("--epochs", type=int, default=100, help="GloRo training epochs (default 100)")
    p.add_argument("--epochs-standard", type=int, default=60, help="standard training epochs (default 60)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--exact", type=int, default=0, metavar="N",
                   help="exact checks of up to N certified points per network and mode")
    p.add_argument("--bench", type=int, default=0, metavar="N",
                   help="the first N test points as local-robustness properties: fast path against verify")
    p.add_argument("--no-train", action="store_true", help="use the exported ONNX files as they are")
    args = p.parse_args(argv)

    Xtr, Xte, ytr, yte = data()
    test_file = HERE / "digits_gloro_test.npz"
    if not test_file.exists():
        np.savez(HERE / ".digits_gloro_test.tmp.npz", x=Xte, y=yte)
        os.replace(HERE / ".digits_gloro_test.tmp.npz", test_file)
    relaxed = {} if args.no_train else train_and_export(args, Xtr, ytr)

    from exactverify import load_network
    from exactverify.bounds.lipschitz import certify_batch, margin_lipschitz
    from exactverify.metrics.local_robustness import check_local_robustness

    X = Xte.astype(np.float64)
    modes = [("standard", {}), ("topk", {"k": 2}), ("affinity", {"groups": GROUPS})]
    networks = {name: load_network(HERE / name) for name in ("digits_standard.onnx", "digits_gloro.onnx")}
    networks.update(relaxed)
    for name, net in networks.items():
        t = time.perf_counter()
        K = margin_lipschitz(net, "2")
        tk = time.perf_counter() - t
        fwd = min(_timed(lambda: net.forward(X)) for _ in range(5))
        print(f"\n{name}: clean accuracy {100 * np.mean(np.argmax(net.forward(X), 1) == yte):.1f}% "
              f"({len(X)} test points); max K_ij {K.max():.3f} (computed in {tk * 1e3:.1f} ms)")
        for mode, kw in modes:
            cert = certify_batch(net, X, args.eps, norm="2", mode=mode, K=K, **kw)
            secs = min(_timed(lambda: certify_batch(net, X, args.eps, norm="2", mode=mode, K=K, **kw))
                       for _ in range(5))
            hit = cert.label_in_set(yte)  # certified, and the label is in the certified top set
            print(f"  {mode:9s} eps={args.eps:g} (L2): certified {100 * cert.certified.mean():5.1f}%  "
                  f"VRA {100 * hit.mean():5.1f}%  certify/forward {secs / fwd:.2f} "
                  f"({secs * 1e3:.2f} ms vs {fwd * 1e3:.2f} ms)")
            if args.exact:
                idx = np.flatnonzero(cert.certified)[:args.exact]
                counts: dict = {}
                t = time.perf_counter()
                for i in idx:
                    r = check_local_robustness(net, X[i], args.eps / 8.0, mode=mode, domain=(0.0, 1.0),
                                               timeout=30, **kw)
                    counts[r.status] = counts.get(r.status, 0) + 1
                print(f"    exact check on the inscribed L-inf ball (eps/8) of {len(idx)} certified points: "
                      f"{counts} ({time.perf_counter() - t:.1f} s)")
            # the L-inf certificate on the L-inf ball itself, checked exactly on the same ball
            r = args.eps / 8.0
            cinf = certify_batch(net, X, r, norm="inf", mode=mode, **kw)
            line = (f"    L-inf certificate at eps/8 = {r:g}: certified {100 * cinf.certified.mean():5.1f}%  "
                    f"VRA {100 * cinf.label_in_set(yte).mean():5.1f}%")
            if args.exact:
                idx = np.flatnonzero(cinf.certified)[:args.exact]
                counts = {}
                for i in idx:
                    res = check_local_robustness(net, X[i], r, mode=mode, domain=(0.0, 1.0), timeout=30, **kw)
                    counts[res.status] = counts.get(res.status, 0) + 1
                line += f"; exact check of {len(idx)} certified points on the same ball: {counts}"
            print(line)
        if args.bench:
            bench(net, X[:args.bench], args.eps / 8.0)
    return 0


def bench(net, X, radius: float) -> None:
    """Local robustness properties decided by verify, and by the Lipschitz fast path alone."""
    from exactverify import verify
    from exactverify.bounds.lipschitz import lipschitz_refutes
    from exactverify.core.property import robustness_property

    counts, fast, wrong = {}, 0, 0
    t_fast = t_verify = 0.0
    for x in X:
        label = int(np.argmax(net.forward(x)))
        prop = robustness_property(x, radius, label, net.output_size, domain=(0.0, 1.0))
        t = time.perf_counter()
        refuted = all(lipschitz_refutes(net, prop.cases[0]))
        t_fast += time.perf_counter() - t
        t = time.perf_counter()
        res = verify(net, prop, timeout=30)
        t_verify += time.perf_counter() - t
        counts[res.status] = counts.get(res.status, 0) + 1
        fast += refuted
        wrong += refuted and res.status == "sat"
    print(f"    bench: {len(X)} local-robustness instances at L-inf {radius:g}: verify {counts} in {t_verify:.1f} s; "
          f"the Lipschitz fast path alone settles {fast} as unsat in {t_fast:.2f} s (contradicting verify: {wrong})")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
