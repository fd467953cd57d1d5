"""Sound Lipschitz bounds for the IR and one-pass robustness certificates (GloRo-style).

Everything here is an UPPER bound that holds in exact arithmetic for the network
as stored (the float64 values of its weights), never an estimate; every
floating-point computation is padded outward by more than the rounding it can
carry.

Norms
-----
`norm="2"`: the input ball is Euclidean. The chain of layers is bounded in the
L2 norm: an affine layer by its spectral norm ||W||_2, ReLU by 1 (it is
1-Lipschitz coordinatewise, hence in any monotone norm), MaxGroups by
sqrt(max multiplicity), where the multiplicity of an input is the number of
groups it belongs to (|max_G a - max_G b| <= max_{j in G} |a_j - b_j|, so
||y - y'||_2^2 <= sum_k sum_{j in G_k} d_j^2 <= (max_j mult_j) ||d||_2^2;
non-overlapping pools give 1). The margin f_i - f_j = (w_i - w_j) . h + c is
then bounded by the dual norm of the last layer's row difference:

    K2[i, j] = ||w_i - w_j||_2 * prod_(layers before the last affine) L2(layer)

`norm="inf"`: the input ball is an L-inf ball. Two chains, each sound, and we
keep the smaller bound for each pair:

  A. the L-inf chain: ||W||_inf->inf = max row sum of |W|, ReLU and MaxGroups 1,
     and the last row difference in the dual norm L1:
         KA[i, j] = ||w_i - w_j||_1 * prod L_inf(layer)
  B. switch to L2 at the first affine layer, whose inf->2 norm is at most
     min(sqrt(n_in) ||W||_2, sqrt(sum_r ||w_r||_1^2)), then the L2 chain, and
     the row difference in L2.

If the network does not end with an affine layer (a final ReLU or MaxGroups),
the output itself is bounded: K[i, j] = L(network) * ||e_i - e_j||_dual.

Spectral norms
--------------
For a layer whose smaller side is at most `EXACT_MAX` (2048), the spectral
norm is certified: the Gram matrix G = A A^T of the smaller side is formed,
its top eigenvalue lambda estimated (LAPACK), and mu = lambda (1 + 1e-7)
proven to bound lambda_max(G) by a successful floating-point Cholesky
factorisation of mu I - G - c I, with c a multiple of the a-priori backward
error of Cholesky (Rump 2006, "Verification of positive definiteness"; we use
c = 4 (s + 2) eps_mach (s mu + tr|G|), about 8x the theorem's constant).
The rounding error of forming G is at most gamma_t ||A||_F^2 in the 2-norm
and is added. Weights are first scaled by an exact power of two.

Larger layers (big convolutions) get the Collatz-Wielandt bound on the
spectral radius of |W|^T |W| (for any v > 0, rho(N) <= max_i (N v)_i / v_i when
N >= 0; v from a power iteration), which bounds ||W||_2 because
rho(W^T W) <= rho(|W|^T |W|); also min'ed with ||W||_F and
sqrt(||W||_1 ||W||_inf). Sums of non-negative terms are padded by
(terms + 4) eps_mach relative.

Certificates
------------
`certify_batch` does ONE forward pass for a whole batch, carrying for every
point a rigorous bound E on the floating-point error of its logits (per layer
E <- A E + gamma (A max|h| + max|b|), A = max row sum of |W|, which costs
O(n) per layer and point next to the O(n^2) of the matrix product), then
compares margins with eps * K:

- `standard`: predicted class i = argmax f(x); certified iff for all j != i,
  f_i(x) - f_j(x) - eps K[i, j] > pad (then no x' in the ball has
  f_j(x') >= f_i(x')).
- `topk` (relaxed top-K robustness, Leino & Fredrikson, NeurIPS 2021):
  certified iff for some k <= K the top-k set S_k of f(x) is certified
  stable: f_i - f_j - eps K[i, j] > pad for all i in S_k, j not in S_k (then
  every x' in the ball has the same top-k set, every i in S_k strictly above
  every j outside). k = 1 is the standard certificate.
- `affinity` (same paper): `groups` is a list of class groups (classes in no
  group are singletons). Certified iff for some k, S_k is contained in one
  group and is certified stable as above; so every x' in the ball has the same
  top-k set, inside one group, and in particular its prediction stays in
  that group.

The pad is 2 E + 4 eps_mach (|f_i| + |f_j| + eps K[i, j]) + 1e-300, so the
float64 comparison can never certify a point the exact arithmetic would not.
The certificate speaks about the whole ball (no domain clipping), which is a
superset of any clipped ball, and about the network in exact arithmetic on
its stored weights (as the MILP does), not about a float32 runtime.

For the verifier
----------------
`linear_form_lipschitz(network, A, norm)` bounds the Lipschitz constant of
x -> A_r . f(x) for every row of A, and `lipschitz_refutes(network, case)` uses
it to refute the output disjuncts of a property case over its whole input box
(the box lies in the L-inf and the L2 ball around its centre): one forward
pass, no bounds, no MILP. This is the fast path `verify` can try first.

API summary: margin_lipschitz, lipschitz_certificate (-> Certificate),
certify_batch (-> BatchCertificate), linear_form_lipschitz, lipschitz_refutes,
and the norm helpers l2_operator_norm, linf_operator_norm, inf_to_2_norm,
layer_lipschitz, lipschitz_constant.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

import numpy as np

from ..core.network import Affine, MaxGroups, Network, ReLU, issparse

EPS = float(np.finfo(np.float64).eps)  # 2.2e-16, twice the unit roundoff
EXACT_MAX = 2048  # largest smaller side of a layer whose spectral norm is certified via Cholesky
_TINY = 1e-290
MODES = ("standard", "topk", "affinity")


# ------------------------------------------------------------------ norms


def normalize_norm(norm) -> str:
    """'2' or 'inf' from the usual spellings (2, '2', 'l2', 'inf', np.inf, 'linf')."""
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        if norm == 2:
            return "2"
        if np.isinf(norm):
            return "inf"
    s = str(norm).lower().strip()
    if s in ("2", "l2"):
        return "2"
    if s in ("inf", "linf", "l-inf", "l_inf", "infinity"):
        return "inf"
    raise ValueError(f"unsupported norm {norm!r} (choose '2' or 'inf')")


def _up_sum(value, terms: int):
    """Pad a computed sum of `terms` non-negative terms up past its rounding error."""
    return value * (1.0 + (terms + 4) * EPS) + _TINY


def _abs_weight(weight):
    return abs(weight) if issparse(weight) else np.abs(weight)


def row_abs_sums(weight) -> np.ndarray:
    """Upper bounds on sum_c |W_rc| for every row r."""
    s = np.asarray(_abs_weight(weight).sum(axis=1)).ravel()
    return _up_sum(s, weight.shape[1])


def linf_operator_norm(weight) -> float:
    """||W||_{inf->inf} = max_r sum_c |W_rc|, padded up."""
    if weight.shape[0] == 0 or weight.shape[1] == 0:
        return 0.0
    return float(np.max(row_abs_sums(weight)))


def l1_operator_norm(weight) -> float:
    """||W||_{1->1} = max_c sum_r |W_rc|, padded up."""
    if weight.shape[0] == 0 or weight.shape[1] == 0:
        return 0.0
    s = np.asarray(_abs_weight(weight).sum(axis=0)).ravel()
    return float(np.max(_up_sum(s, weight.shape[0])))


def frobenius_norm(weight) -> float:
    """||W||_F = sqrt(sum_rc W_rc^2), padded up: an upper bound on the spectral norm."""
    data = weight.data if issparse(weight) else np.ravel(weight)
    if data.size == 0:
        return 0.0
    amax = float(np.max(np.abs(data)))
    if amax == 0.0:
        return 0.0
    e = int(np.frexp(amax)[1])
    scaled = np.ldexp(data, -e)  # exact
    sq = _up_sum(float(np.dot(scaled, scaled)), data.size)
    return float(np.ldexp(np.sqrt(sq) * (1 + 2 * EPS), e))


def inf_to_2_norm(weight) -> float:
    """An upper bound on max_{||x||_inf <= 1} ||W x||_2."""
    rows = row_abs_sums(weight)
    bound = float(np.sqrt(_up_sum(float(np.dot(rows, rows)), len(rows))) * (1 + 2 * EPS))
    alt = float(np.sqrt(weight.shape[1]) * (1 + 2 * EPS) * _cached("2", weight, l2_operator_norm) * (1 + 2 * EPS))
    return min(bound, alt)


def l2_operator_norm(weight, exact_max: int = EXACT_MAX) -> float:
    """A certified upper bound on the spectral norm ||W||_2 (see the module docstring)."""
    m, n = weight.shape
    if m == 0 or n == 0:
        return 0.0
    if min(m, n) <= exact_max:
        dense = weight.toarray() if issparse(weight) else np.asarray(weight, dtype=np.float64)
        bound = _spectral_cholesky(dense)
        if bound is not None:
            return bound
    return _spectral_fallback(weight)


def _spectral_cholesky(w: np.ndarray) -> float | None:
    a = w if w.shape[0] <= w.shape[1] else w.T
    amax = float(np.max(np.abs(a)))
    if amax == 0.0:
        return 0.0
    e = int(np.frexp(amax)[1])
    a = np.ldexp(a, -e)  # exact power-of-two scaling: entries in [0.5, 1) at most
    s, t = a.shape
    g = a @ a.T
    frob2 = _up_sum(float(np.sum(a * a)), a.size)
    err_g = 2.0 * (t + 4) * EPS * frob2 + _TINY  # ||fl(A A^T) - A A^T||_2 <= gamma_t ||A||_F^2
    try:
        lam = float(np.linalg.eigvalsh(g)[-1])
    except np.linalg.LinAlgError:
        return None
    lam = max(lam, 0.0)
    tr_abs = _up_sum(float(np.sum(np.abs(np.diag(g)))), s)
    eye = np.eye(s)
    for rel in (1e-7, 1e-5, 1e-3, 1e-1, 1.0):
        mu = lam * (1.0 + rel) + rel * err_g + _TINY
        c = 4.0 * (s + 2) * EPS * (s * mu + tr_abs) + 1e-280
        if mu - lam <= 2.0 * c and rel < 1.0:
            continue
        try:
            np.linalg.cholesky(mu * eye - g - c * eye)
        except np.linalg.LinAlgError:
            continue
        bound2 = (mu + err_g) * (1 + 4 * EPS)
        return float(np.ldexp(np.sqrt(bound2) * (1 + 2 * EPS), e))
    return None


def _spectral_fallback(weight, iterations: int = 100) -> float:
    """min(Collatz-Wielandt bound on || |W| ||_2, ||W||_F, sqrt(||W||_1 ||W||_inf))."""
    m, n = weight.shape
    aw = _abs_weight(weight)
    aw = aw.tocsr() if issparse(aw) else aw
    awt = aw.T.tocsr() if issparse(aw) else aw.T
    v = np.ones(n)
    for _ in range(iterations):
        nv = np.asarray(awt @ np.asarray(aw @ v).ravel()).ravel()
        top = float(np.max(nv))
        if top <= 0.0:
            return 0.0
        v = nv / top
    v = np.maximum(v, 1e-6)  # strictly positive; any positive v gives a valid bound
    nv = np.asarray(awt @ np.asarray(aw @ v).ravel()).ravel()
    ratio = float(np.max(nv / v)) * (1.0 + 2 * (m + n + 8) * EPS) + _TINY
    cw = float(np.sqrt(ratio) * (1 + 2 * EPS))
    hoelder = float(np.sqrt(l1_operator_norm(weight) * linf_operator_norm(weight)) * (1 + 4 * EPS))
    return min(cw, frobenius_norm(weight), hoelder)


def max_groups_l2(layer: MaxGroups) -> float:
    """L2 Lipschitz constant bound of a MaxGroups layer: sqrt(max multiplicity of an input)."""
    g = layer.groups[layer.groups >= 0]
    if g.size == 0:
        return 0.0
    mult = int(np.max(np.bincount(g, minlength=layer.in_size)))
    return float(np.sqrt(mult) * (1 + 2 * EPS))


_NORM_CACHE: dict = {}


def _cached(kind: str, weight, compute) -> float:
    """Memoise a norm of a weight matrix by identity (a weak reference guards against reused ids)."""
    key = (kind, id(weight))
    hit = _NORM_CACHE.get(key)
    if hit is not None and hit[0]() is weight:
        return hit[1]
    value = compute(weight)
    try:
        ref = weakref.ref(weight)
    except TypeError:  # not weak-referenceable: do not cache
        return value
    if len(_NORM_CACHE) > 4096:
        _NORM_CACHE.clear()
    _NORM_CACHE[key] = (ref, value)
    return value


def layer_lipschitz(layer, norm: str = "2") -> float:
    """Upper bound on the Lipschitz constant of one layer, from `norm` to the same norm.

    Affine norms are memoised per weight object: replace a layer's weight array
    rather than editing it in place if the network changes.
    """
    norm = normalize_norm(norm)
    if isinstance(layer, Affine):
        if norm == "2":
            return _cached("2", layer.weight, l2_operator_norm)
        return _cached("inf", layer.weight, linf_operator_norm)
    if isinstance(layer, ReLU):
        return 1.0
    if isinstance(layer, MaxGroups):
        return max_groups_l2(layer) if norm == "2" else 1.0
    raise TypeError(f"no Lipschitz bound for layer type {type(layer).__name__}")


def _product(values) -> float:
    out = 1.0
    for v in values:
        out *= v
    return out * (1 + 2 * (len(values) + 2) * EPS)


def lipschitz_constant(network: Network, norm: str = "2") -> float:
    """Upper bound on the Lipschitz constant of the whole network, `norm` in and out."""
    norm = normalize_norm(norm)
    return _product([layer_lipschitz(l, norm) for l in network.layers])


# ------------------------------------------------------------------ margins


def _row_differences(w: np.ndarray, order: str) -> np.ndarray:
    """D[i, j] >= ||w_i - w_j||_order (order '1' or '2'), padded up; D[i, i] = 0."""
    n_out, n_in = w.shape
    d = np.zeros((n_out, n_out))
    for i in range(n_out):
        diff = np.abs(w[i][None, :] - w)  # each entry within one rounding of the exact value
        if order == "1":
            d[i] = diff.sum(axis=1)
        else:
            amax = float(np.max(diff)) if diff.size else 0.0
            if amax > 0:
                e = int(np.frexp(amax)[1])
                sc = np.ldexp(diff, -e)
                d[i] = np.ldexp(np.sqrt(np.einsum("ij,ij->i", sc, sc)), e)
    d = d * (1.0 + 2 * (n_in + 8) * EPS) + _TINY
    np.fill_diagonal(d, 0.0)
    return d


def margin_lipschitz(network: Network, norm: str = "2") -> np.ndarray:
    """K (n_out x n_out): K[i, j] bounds the Lipschitz constant of f_i - f_j w.r.t. the input `norm`.

    Sound upper bounds (see the module docstring for the chains used); K[i, i] = 0.
    """
    norm = normalize_norm(norm)
    layers = list(network.layers)
    n_out = network.output_size
    affines = [i for i, l in enumerate(layers) if isinstance(l, Affine)]
    if not affines or affines[-1] != len(layers) - 1:
        # no final affine map: bound the output itself, K = L * ||e_i - e_j||_dual
        if norm == "2":
            k = lipschitz_constant(network, "2") * np.sqrt(2.0) * (1 + 4 * EPS)
        else:
            k = min(2.0 * lipschitz_constant(network, "inf"),
                    np.sqrt(2.0) * _chain_inf_to_2(layers)) * (1 + 4 * EPS)
        out = np.full((n_out, n_out), k)
        np.fill_diagonal(out, 0.0)
        return out
    last = layers[-1]
    hidden = layers[:-1]
    w = last.dense_weight() if last.is_sparse else np.asarray(last.weight, dtype=np.float64)
    if norm == "2":
        lh = _product([layer_lipschitz(l, "2") for l in hidden])
        k = lh * _row_differences(w, "2")
    else:
        ka = _product([layer_lipschitz(l, "inf") for l in hidden]) * _row_differences(w, "1")
        if any(isinstance(l, Affine) for l in hidden):
            kb = _chain_inf_to_2(hidden) * _row_differences(w, "2")
            k = np.minimum(ka, kb)
        else:
            k = ka
    k = k * (1 + 4 * EPS)
    np.fill_diagonal(k, 0.0)
    return k


def _chain_inf_to_2(layers) -> float:
    """Bound on the inf->2 Lipschitz constant of a chain: L-inf until the first affine, inf->2 there, then L2."""
    factors, switched = [], False
    for layer in layers:
        if not switched:
            if isinstance(layer, Affine):
                factors.append(_cached("inf->2", layer.weight, inf_to_2_norm))
                switched = True
            else:
                factors.append(layer_lipschitz(layer, "inf"))
        else:
            factors.append(layer_lipschitz(layer, "2"))
    if not switched:  # never reached an affine map: ||.||_2 <= sqrt(n) ||.||_inf at the end
        factors.append(np.sqrt(layers[-1].out_size if layers else 1) * (1 + 2 * EPS))
    return _product(factors)


def linear_form_lipschitz(network: Network, A, norm: str = "2") -> np.ndarray:
    """L (m,): L[r] bounds the Lipschitz constant of x -> A[r] . f(x) w.r.t. the input `norm`.

    The same chains as margin_lipschitz, with the last layer's rows combined by A
    (A = e_i - e_j gives K[i, j] up to rounding). Used to refute output constraints
    over a whole input box (`lipschitz_refutes`).
    """
    norm = normalize_norm(norm)
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    layers = list(network.layers)
    if A.shape[1] != network.output_size:
        raise ValueError(f"A has {A.shape[1]} columns, the network has {network.output_size} outputs")
    affines = [i for i, l in enumerate(layers) if isinstance(l, Affine)]
    m = A.shape[0]
    if not affines or affines[-1] != len(layers) - 1:
        if norm == "2":
            return lipschitz_constant(network, "2") * _row_norms(A, "2") * (1 + 4 * EPS)
        return np.minimum(lipschitz_constant(network, "inf") * _row_norms(A, "1"),
                          _chain_inf_to_2(layers) * _row_norms(A, "2")) * (1 + 4 * EPS)
    last = layers[-1]
    hidden = layers[:-1]
    w = last.dense_weight() if last.is_sparse else np.asarray(last.weight, dtype=np.float64)
    v = A @ w  # (m, n_hidden); |fl(A w) - A w| <= gamma |A| |w| entrywise
    slack = 2.0 * (A.shape[1] + 4) * EPS * (np.abs(A) @ np.abs(w))
    vabs = np.abs(v) + slack
    if norm == "2":
        out = _product([layer_lipschitz(l, "2") for l in hidden]) * _row_norms(vabs, "2")
    else:
        out = _product([layer_lipschitz(l, "inf") for l in hidden]) * _row_norms(vabs, "1")
        if any(isinstance(l, Affine) for l in hidden):
            out = np.minimum(out, _chain_inf_to_2(hidden) * _row_norms(vabs, "2"))
    return out.reshape(m) * (1 + 4 * EPS)


def _row_norms(v: np.ndarray, order: str) -> np.ndarray:
    """Upper bounds on the L1 or L2 norm of every row of v."""
    a = np.abs(v)
    n = a.shape[1]
    if order == "1":
        return _up_sum(a.sum(axis=1), n)
    amax = a.max(axis=1) if n else np.zeros(len(a))
    out = np.zeros(len(a))
    for r in np.flatnonzero(amax > 0):
        e = int(np.frexp(amax[r])[1])
        sc = np.ldexp(a[r], -e)
        out[r] = np.ldexp(np.sqrt(_up_sum(float(np.dot(sc, sc)), n)) * (1 + 2 * EPS), e)
    return out


def lipschitz_refutes(network: Network, case, norms=("inf", "2")) -> list:
    """Per output disjunct of `case` (a property.Case): True if Lipschitz bounds prove it unreachable.

    The box [case.lower, case.upper] lies in the ball around its centre c of radius
    max half-width (L-inf) or ||half-widths||_2 (L2). A disjunct (A y <= b, all rows)
    is refuted when some row r has, over that ball, A_r f(x) >= A_r f(c) - L_r radius
    > b_r, with f(c) computed with a rigorous error bound. Sound for any network: a
    True here is a proof that no input of the box meets that disjunct (the extra
    linear input constraints of the case, if any, only shrink the set). One
    forward pass and O(outputs x hidden) work per disjunct after the layer norms.
    """
    lo = np.asarray(case.lower, dtype=np.float64)
    hi = np.asarray(case.upper, dtype=np.float64)
    c = (lo + hi) / 2.0
    half = np.maximum(c - lo, hi - c) * (1 + 2 * EPS) + _TINY  # covers the rounding of c
    y, err = _Prepared(network, "2", K=np.zeros((network.output_size,) * 2)).forward(c.reshape(1, -1))
    y, err = y[0], float(err[0])
    radius = {"inf": float(np.max(half)) if half.size else 0.0,
              "2": float(np.sqrt(_up_sum(float(np.dot(half, half)), half.size)) * (1 + 2 * EPS))}
    out = []
    for d in case.disjuncts:
        A = np.atleast_2d(np.asarray(d.A, dtype=np.float64))
        b = np.asarray(d.b, dtype=np.float64)
        if A.shape[0] == 0:
            out.append(False)
            continue
        val = A @ y  # the float error of A y: ||A_r||_1 err + gamma |A_r| |y|
        pad = np.abs(A).sum(axis=1) * err + 2.0 * (A.shape[1] + 4) * EPS * (np.abs(A) @ np.abs(y)) + \
            4 * EPS * np.abs(b) + 1e-300
        refuted = False
        for norm in norms:
            norm = normalize_norm(norm)
            L = linear_form_lipschitz(network, A, norm)
            drop = L * radius[norm] * (1 + 4 * EPS)
            if np.any(val - drop - pad - 4 * EPS * (np.abs(val) + drop) > b):
                refuted = True
                break
        out.append(refuted)
    return out


# ------------------------------------------------------------------ certificates


@dataclass
class Certificate:
    """The one-pass certificate at one point.

    certified: True only when the property provably holds on the whole ball.
    predicted: argmax of the logits. margins[j]: the certified slack against
    class j (f_i - f_j - eps K[i, j] - pad, minimised over i in the set that
    was checked: the certified top set, or {predicted} when none is); +inf for
    classes inside that set. top_set: the certified set (None if not
    certified); k: its size.
    """

    certified: bool
    predicted: int
    margins: list
    seconds: float
    mode: str = "standard"
    norm: str = "2"
    eps: float = 0.0
    k: int | None = None
    top_set: list | None = None
    logits: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """The certificate as JSON-ready data; margins that are not finite (+inf inside the set) become None."""
        return {"certified": self.certified, "predicted": self.predicted,
                "margins": [None if not np.isfinite(m) else float(m) for m in self.margins],
                "seconds": self.seconds, "mode": self.mode, "norm": self.norm, "eps": self.eps,
                "k": self.k, "top_set": self.top_set, "logits": [float(v) for v in self.logits]}


@dataclass
class BatchCertificate:
    """certify_batch's answer: arrays over the N points (k = 0 where not certified)."""

    certified: np.ndarray  # (N,) bool
    predicted: np.ndarray  # (N,) int
    k: np.ndarray  # (N,) int, size of the certified top set, 0 if none
    margins: np.ndarray  # (N, n_out): slack against each class, +inf inside the set checked
    logits: np.ndarray  # (N, n_out)
    error_bound: np.ndarray  # (N,) bound on the float error of each logit
    seconds: float
    mode: str
    norm: str
    eps: float
    # (N, n_out): classes by decreasing logit, the certified set being order[n, :k[n]]; in mode
    # standard only the first column (the prediction) is filled, the rest is -1
    order: np.ndarray

    def __len__(self):
        return len(self.certified)

    def top_set(self, n: int) -> list | None:
        """The certified top set of point n (sorted class indices), or None."""
        if not self.certified[n]:
            return None
        return sorted(int(c) for c in self.order[n, :self.k[n]])

    @property
    def top_sets(self) -> list:
        """`top_set(n)` for every point n."""
        return [self.top_set(n) for n in range(len(self))]

    def label_in_set(self, labels) -> np.ndarray:
        """(N,) bool: certified and the label lies in the certified top set (the VRA hit for every mode)."""
        labels = np.asarray(labels, dtype=np.int64)
        inside = np.arange(self.order.shape[1])[None, :] < self.k[:, None]
        return self.certified & np.any((self.order == labels[:, None]) & inside, axis=1)

    def point(self, n: int) -> Certificate:
        """The Certificate of point n, with an equal share of the batch's seconds."""
        return Certificate(bool(self.certified[n]), int(self.predicted[n]), self.margins[n].tolist(),
                           self.seconds / max(len(self), 1), self.mode, self.norm, self.eps,
                           int(self.k[n]) if self.certified[n] else None, self.top_set(n),
                           self.logits[n].tolist())


class _Prepared:
    """What certification needs of a network, computed once: K and the error-propagation constants."""

    def __init__(self, network: Network, norm: str, K=None):
        self.network = network
        self.norm = norm
        self.K = np.asarray(K, dtype=np.float64) if K is not None else margin_lipschitz(network, norm)
        n = network.output_size
        if self.K.shape != (n, n):
            raise ValueError(f"K has shape {self.K.shape}, expected ({n}, {n})")
        self.steps = []
        for layer in network.layers:
            if isinstance(layer, Affine):
                a = layer_lipschitz(layer, "inf") * (1 + 2 * EPS)
                beta = float(np.max(np.abs(layer.bias))) if layer.bias.size else 0.0
                gamma = 2.0 * (layer.in_size + 4) * EPS
                self.steps.append((layer, a, beta, gamma))
            else:
                self.steps.append((layer, None, None, None))

    def forward(self, X: np.ndarray):
        """Logits and, per point, a rigorous bound on |computed logit - exact logit| (every logit)."""
        h = X
        err = np.zeros(len(X))
        for layer, a, beta, gamma in self.steps:
            if a is not None:
                s = np.max(np.abs(h), axis=1) if h.shape[1] else np.zeros(len(h))
                h = layer.apply(h)
                err = (a * err + gamma * (a * s + beta)) * (1 + 4 * EPS) + _TINY
            else:
                h = layer.apply(h)
        return h, err


_PREPARED: dict = {}


def _prepared(network: Network, norm: str, K=None) -> _Prepared:
    if K is not None:
        return _Prepared(network, norm, K)
    key = (id(network), norm)
    fingerprint = tuple((id(getattr(l, "weight", None)), id(getattr(l, "bias", None)), id(getattr(l, "groups", None)))
                        for l in network.layers)
    hit = _PREPARED.get(key)
    if hit is not None and hit[0]() is network and hit[1] == fingerprint:
        return hit[2]
    prep = _Prepared(network, norm)
    prep.network = None  # the cache must not keep the network alive
    if len(_PREPARED) > 16:
        _PREPARED.clear()
    _PREPARED[key] = (weakref.ref(network), fingerprint, prep)
    return prep


def _groups_matrix(groups, n_out: int) -> np.ndarray:
    """Membership matrix (n_groups x n_out); classes in no group become singleton groups."""
    if groups is None:
        raise ValueError("mode 'affinity' needs groups (a list of lists of class indices)")
    rows, seen = [], set()
    for g in groups:
        idx = [int(c) for c in g]
        if not idx:
            continue
        if min(idx) < 0 or max(idx) >= n_out:
            raise ValueError(f"group {idx} names a class outside 0..{n_out - 1}")
        r = np.zeros(n_out, dtype=bool)
        r[idx] = True
        rows.append(r)
        seen.update(idx)
    for c in range(n_out):
        if c not in seen:
            r = np.zeros(n_out, dtype=bool)
            r[c] = True
            rows.append(r)
    return np.array(rows)


def _check_args(eps, mode, k, n_out):
    eps = float(eps)
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    if mode == "topk":
        if k is None or int(k) < 1:
            raise ValueError("mode 'topk' needs k >= 1")
        k = min(int(k), n_out)
    return eps, k


def certify_batch(network: Network, X, eps: float, norm: str = "2", mode: str = "standard", k: int | None = None,
                  groups=None, K=None, chunk: int = 4096) -> BatchCertificate:
    """Certify every row of X in one forward pass (see the module docstring for the three modes).

    K: the margin Lipschitz matrix, if already computed (else margin_lipschitz, cached per network).
    """
    t0 = time.perf_counter()
    norm = normalize_norm(norm)
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    n_out = network.output_size
    eps, k = _check_args(eps, mode, k, n_out)
    if X.shape[1] != network.input_size:
        raise ValueError(f"X has {X.shape[1]} columns, the network takes {network.input_size} inputs")
    prep = _prepared(network, norm, K)
    Kmat = prep.K
    gm = _groups_matrix(groups, n_out) if mode == "affinity" else None
    N = len(X)
    certified = np.zeros(N, dtype=bool)
    kk = np.zeros(N, dtype=np.int64)
    margins = np.full((N, n_out), np.inf)
    logits = np.zeros((N, n_out))
    errs = np.zeros(N)
    pred_all = np.zeros(N, dtype=np.int64)
    order_all = np.full((N, n_out), -1, dtype=np.int64)
    step = max(1, min(chunk, 4_000_000 // max(n_out * n_out, 1)))
    for s in range(0, N, step):
        Y, err = prep.forward(X[s:s + step])
        sl = slice(s, s + len(Y))
        logits[sl], errs[sl] = Y, err
        n = len(Y)
        rows = np.arange(n)
        if mode == "standard":
            pred = np.argmax(Y, axis=1)
            yi = Y[rows, pred][:, None]
            ek = eps * Kmat[pred]  # (n, n_out)
            pad = 2 * err[:, None] + 4 * EPS * (np.abs(yi) + np.abs(Y) + ek) + 1e-300
            slack = (yi - Y) - ek - pad
            slack[rows, pred] = np.inf
            ok = np.all(slack > 0, axis=1)
            certified[sl], kk[sl], margins[sl], pred_all[sl] = ok, ok.astype(np.int64), slack, pred
            order_all[sl, 0] = pred  # the rest of the order is not needed (stays -1)
            continue
        order = np.argsort(-Y, axis=1, kind="stable")
        pred = order[:, 0]
        pred_all[sl], order_all[sl] = pred, order
        # the largest set size that could count: K (topk) or the largest group (affinity)
        kmax = k if mode == "topk" else int(gm.sum(axis=1).max())
        rows_a = max(1, min(kmax, n_out - 1))  # only classes ranked a < kmax can be inside a set
        Ys = np.take_along_axis(Y, order, axis=1)  # logits in decreasing order
        Ks = Kmat[order[:, :rows_a, None], order[:, None, :]]  # K in rank order, (n, A, C)
        ek = eps * Ks
        absY = np.abs(Ys)
        # Ps[n, a, b]: certified slack of the class ranked a over the class ranked b
        Ps = Ys[:, :rows_a, None] - Ys[:, None, :] - ek - (2 * err[:, None, None] + 4 * EPS * (
            absY[:, :rows_a, None] + absY[:, None, :] + ek) + 1e-300)
        # M[n, k] = min_{a < k <= b} Ps[n, a, b]: the slack of the top-k set
        R = np.minimum.accumulate(Ps[:, :, ::-1], axis=2)[:, :, ::-1]  # R[a, c] = min_{b >= c} Ps[a, b]
        Q = np.minimum.accumulate(R, axis=1)  # Q[a, c] = min_{a' <= a} R[a', c]
        M = np.full((n, n_out + 1), -np.inf)  # k = 0..C; k = C (every class) is trivially stable
        top = min(rows_a, n_out - 1)
        M[:, 1:top + 1] = Q[:, np.arange(top), np.arange(1, top + 1)]
        M[:, n_out] = np.inf
        sizes = np.arange(n_out + 1)
        allowed = (sizes >= 1) & (sizes <= kmax)
        allowed = np.broadcast_to(allowed, (n, n_out + 1))
        if mode == "affinity":
            # the top-k set lies inside group g iff the first k classes in rank order all belong to g
            member = gm[:, order].astype(np.int64)  # (G, n, C)
            count = np.concatenate([np.zeros(member.shape[:2] + (1,), np.int64), np.cumsum(member, axis=2)], axis=2)
            allowed = allowed & np.any(count == sizes[None, None, :], axis=0)
        good = allowed & (M > 0)
        ok = good.any(axis=1)
        kbest = np.where(ok, np.argmax(good, axis=1), 0)
        certified[sl], kk[sl] = ok, kbest
        # margins against each class for the set checked: the certified one, else {predicted}
        kset = np.where(ok, kbest, 1)
        inS = sizes[None, :n_out] < kset[:, None]  # in rank order
        pair = inS[:, :rows_a, None] & ~inS[:, None, :]
        per_b = np.where(pair, Ps, np.inf).min(axis=1)  # (n, C) in rank order
        m = np.full((n, n_out), np.inf)
        np.put_along_axis(m, order, per_b, axis=1)
        margins[sl] = m
    return BatchCertificate(certified, pred_all, kk, margins, logits, errs, time.perf_counter() - t0, mode, norm,
                            eps, order_all)


def lipschitz_certificate(network: Network, x, eps: float, norm: str = "2", mode: str = "standard",
                          k: int | None = None, groups=None, K=None) -> Certificate:
    """The one-pass certificate at one point x (see certify_batch)."""
    t0 = time.perf_counter()
    batch = certify_batch(network, np.asarray(x, dtype=np.float64).reshape(1, -1), eps, norm=norm, mode=mode,
                          k=k, groups=groups, K=K)
    cert = batch.point(0)
    cert.seconds = time.perf_counter() - t0
    return cert
