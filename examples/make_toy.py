"""Train the bundled toy classifier and write its ONNX file and two VNN-LIB properties.

    python examples/make_toy.py

A 2-16-16-3 ReLU network learns three interleaved spirals in the plane (plain
numpy, full-batch Adam, fixed seed, a few seconds). The properties ask whether
some point within L-inf distance eps of (0.3, -0.2) is classified as anything
other than the network's label for that point:
  toy_eps0.05.vnnlib  small ball: the label is stable (unsat)
  toy_eps0.15.vnnlib  large ball: it crosses a decision boundary (sat)
The outputs are committed, so running this is only needed to regenerate them.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = [2, 16, 16, 3]
CENTRE = np.array([0.3, -0.2])


def spirals(n_per_class=200, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(3):
        t = np.linspace(0.1, 1.0, n_per_class)
        angle = 3.0 * t + 2 * np.pi * c / 3 + rng.normal(0, 0.15, n_per_class)
        xs.append(np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs), np.concatenate(ys)


def train(x, y, steps=3000, lr=0.01, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        params += [rng.normal(0, np.sqrt(2 / n_in), (n_out, n_in)), np.zeros(n_out)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(3)[y]
    for step in range(1, steps + 1):
        acts = [x]
        for k in range(0, len(params), 2):
            z = acts[-1] @ params[k].T + params[k + 1]
            acts.append(np.maximum(z, 0) if k < len(params) - 2 else z)
        logits = acts[-1]
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        delta = (p - onehot) / len(x)
        grads = [None] * len(params)
        for k in range(len(params) - 2, -1, -2):
            grads[k] = delta.T @ acts[k // 2]
            grads[k + 1] = delta.sum(0)
            if k > 0:
                delta = (delta @ params[k]) * (acts[k // 2] > 0)
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] -= lr * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    return [p.astype(np.float32) for p in params]


def forward(params, x):
    h = x
    for k in range(0, len(params), 2):
        h = h @ params[k].T.astype(np.float64) + params[k + 1]
        if k < len(params) - 2:
            h = np.maximum(h, 0)
    return h


def save_onnx(params, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, cur = [], [], "input"
    for k in range(0, len(params), 2):
        i = k // 2
        inits += [numpy_helper.from_array(params[k], f"W{i}"), numpy_helper.from_array(params[k + 1], f"B{i}")]
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"B{i}"], [f"z{i}"], transB=1, name=f"dense{i}"))
        cur = f"z{i}"
        if k < len(params) - 2:
            nodes.append(helper.make_node("Relu", [cur], [f"h{i}"], name=f"relu{i}"))
            cur = f"h{i}"
    nodes[-1].output[0] = "output"
    graph = helper.make_graph(nodes, "toy_spirals",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, SIZES[0]])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, SIZES[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="exactverify")
    model.ir_version = 8
    onnx.save(model, str(path))


def robustness_vnnlib(label, eps):
    lines = [f"; Is some point within L-inf distance {eps} of ({CENTRE[0]}, {CENTRE[1]}) not classified as {label}?"]
    lines += [f"(declare-const X_{i} Real)" for i in range(2)] + [f"(declare-const Y_{j} Real)" for j in range(3)]
    for i in range(2):
        lines += [f"(assert (>= X_{i} {CENTRE[i] - eps:.6f}))", f"(assert (<= X_{i} {CENTRE[i] + eps:.6f}))"]
    others = [j for j in range(3) if j != label]
    lines.append("(assert (or " + " ".join(f"(and (>= Y_{j} Y_{label}))" for j in others) + "))")
    return "\n".join(lines) + "\n"


def main():
    x, y = spirals()
    params = train(x, y)
    acc = (forward(params, x).argmax(1) == y).mean()
    save_onnx(params, HERE / "toy_spirals.onnx")
    label = int(forward(params, CENTRE[None])[0].argmax())
    for eps in (0.05, 0.15):
        (HERE / f"toy_eps{eps:.2f}.vnnlib").write_text(robustness_vnnlib(label, eps))
    print(f"training accuracy {acc:.3f}; label at {CENTRE.tolist()} is {label}")


if __name__ == "__main__":
    main()
