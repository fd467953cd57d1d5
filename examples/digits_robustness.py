"""Bastani et al.'s robustness metrics, exactly, for a small MLP on scikit-learn's digits (8x8 images).

    python examples/digits_robustness.py [--retrain] [--limit 100] [--norm inf] [--timeout 30] [--plot PNG]

1. Trains a 64-32-32-10 ReLU MLP with torch (CPU, fixed seed) on the bundled digits data, pixels
   scaled to [0, 1], and exports it to examples/digits_mlp.onnx; the held-out test split is saved
   as examples/digits_test.npz (arrays x, y). Both are kept in the repository, so this step only
   runs when they are missing or with --retrain (torch is needed only then).
2. Loads the ONNX file with exactverify and computes, for the first --limit test images, the exact
   pointwise robustness rho (domain [0, 1]) next to Bastani et al.'s linear-region estimate, and the
   adversarial frequency and severity at a few eps. The same numbers come from the CLI:

    exactverify robustness examples/digits_mlp.onnx examples/digits_test.npz --domain 0 1 \\
        --eps 0.02 0.05 0.1 --limit 100 --baseline --plot digits.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
ONNX = HERE / "digits_mlp.onnx"
TEST = HERE / "digits_test.npz"
EPS = [0.02, 0.05, 0.1]


def train_and_export(seed: int = 0, epochs: int = 300) -> None:
    import torch  # only here: exactverify itself never needs torch for an ONNX file
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixels 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(X_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs // 10):
        for _ in range(10):
            perm = torch.randperm(len(xt), generator=gen)
            for k in range(0, len(xt), 128):
                idx = perm[k:k + 128]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
    model.eval()
    with torch.no_grad():
        acc_tr = (model(xt).argmax(1) == yt).float().mean().item()
        acc_te = (model(torch.from_numpy(X_te)).argmax(1) == torch.from_numpy(y_te)).float().mean().item()
    print(f"trained 64-32-32-10: train accuracy {acc_tr:.3f}, test accuracy {acc_te:.3f}")
    torch.onnx.export(model, torch.zeros(1, 64), str(ONNX), input_names=["input"], output_names=["output"],
                      opset_version=13, dynamo=False)
    np.savez_compressed(TEST, x=X_te, y=y_te)
    print(f"wrote {ONNX.name} and {TEST.name} ({len(X_te)} test images)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--retrain", action="store_true", help="train and export again even if the files exist")
    ap.add_argument("--limit", type=int, default=100, help="test images to analyse (default 100)")
    ap.add_argument("--norm", choices=["inf", "1", "2"], default="inf")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per image")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--plot", metavar="PNG", help="plot points with rho <= eps against eps (exact and Bastani)")
    args = ap.parse_args(argv)
    if args.retrain or not (ONNX.exists() and TEST.exists()):
        train_and_export()

    from exactverify import load_network
    from exactverify.cli.robustness import format_report
    from exactverify.loaders.datasets import load_dataset
    from exactverify.metrics.dataset import dataset_robustness, plot_metrics

    net = load_network(ONNX)
    X, y = load_dataset(TEST, n_inputs=net.input_size, n_outputs=net.output_size)
    X, y = X[:args.limit], y[:args.limit]
    report = dataset_robustness(net, X, y, norm=args.norm, domain=(0.0, 1.0), eps_list=EPS, timeout=args.timeout,
                                workers=args.workers, baseline=True, progress=False)
    report["config"]["network"] = ONNX.name
    print(format_report(report))
    pts = [p for p in report["points"] if p["status"] == "exact" and p["radius"]["upper"] is not None]
    if pts:
        rho = np.array([p["radius"]["upper"] for p in pts])
        print(f"exact rho (L{args.norm}): median {np.median(rho):.4f}, min {rho.min():.4f}, max {rho.max():.4f}")
    if args.plot:
        plot_metrics(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
