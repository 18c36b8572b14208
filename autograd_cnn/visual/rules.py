"""The local derivative rule of each op, written out for the backward pictures.

Each entry lists one line per tensor input, in the order of the op's ``forward``
arguments. ``y`` is the op's output and ``∂L/∂y`` the gradient arriving from above.
Ops without an entry get a generic chain-rule line naming their ``backward``.
"""
from __future__ import annotations

G = "∂L/∂y"

RULES: dict[str, tuple[str, ...]] = {
    # elementwise
    "Add": (f"∂L/∂a = {G}", f"∂L/∂b = {G}"),
    "Sub": (f"∂L/∂a = {G}", f"∂L/∂b = −{G}"),
    "Mul": (f"∂L/∂a = {G} · b", f"∂L/∂b = {G} · a"),
    "Div": (f"∂L/∂a = {G} / b", f"∂L/∂b = −{G} · a / b²"),
    "Pow": (f"∂L/∂a = {G} · b · a^(b−1)", f"∂L/∂b = {G} · y · ln a"),
    "Neg": (f"∂L/∂a = −{G}",),
    "Exp": (f"∂L/∂a = {G} · y",),
    "Log": (f"∂L/∂a = {G} / a",),
    "Sqrt": (f"∂L/∂a = {G} / (2y)",),
    "Abs": (f"∂L/∂a = {G} · sign(a)",),
    "Where": ("cond gets no gradient", f"∂L/∂a = {G} where cond, else 0",
              f"∂L/∂b = {G} where not cond, else 0"),
    "Maximum": (f"∂L/∂a = {G} where a ≥ b, else 0", f"∂L/∂b = {G} where a < b, else 0"),
    "Minimum": (f"∂L/∂a = {G} where a ≤ b, else 0", f"∂L/∂b = {G} where a > b, else 0"),
    "AsType": (f"∂L/∂a = {G} cast back to a's dtype",),
    # activations
    "ReLU": (f"∂L/∂x = {G} · [y > 0]",),
    "ReLUGrad": (f"∂L/∂gy = {G} · [x > 0]", "the mask gets no gradient"),
    "LeakyReLU": (f"∂L/∂x = {G} · (1 if x > 0 else slope)",),
    "Sigmoid": (f"∂L/∂x = {G} · y(1 − y)",),
    "Tanh": (f"∂L/∂x = {G} · (1 − y²)",),
    "Gelu": (f"∂L/∂x = {G} · (Φ(x) + x·φ(x))",),
    "Erf": (f"∂L/∂x = {G} · 2/√π · e^(−x²)",),
    "Softmax": (f"∂L/∂x = y ⊙ ({G} − Σ {G} ⊙ y)",),
    "LogSoftmax": (f"∂L/∂x = {G} − softmax(x) · Σ {G}",),
    # losses
    "SoftmaxCrossEntropy": (f"∂L/∂z = (softmax(z) − onehot) · {G}   (z − z*)", f"∂L/∂q = −log softmax(z) · {G}"),
    "SoftmaxCrossEntropyGrad": (f"∂L/∂z = g · s · p ⊙ ({G} − Σ {G} ⊙ p), p = softmax(z), s = Σ q (1 for labels)",
                                f"∂L/∂q = g · (Σ {G} ⊙ p − {G}), only −g · {G} for labels",
                                f"∂L/∂g = Σ {G} ⊙ (s · p − q)"),
    "BCEWithLogits": (f"∂L/∂z = (sigmoid(z) − t) · {G}", f"∂L/∂t = −z · {G}"),
    # reductions
    "Sum": (f"∂L/∂a = {G} copied to every summed element",),
    "Mean": (f"∂L/∂a = {G} / n, copied to every element",),
    "Max": (f"∂L/∂a = {G} at the largest elements (ties share), 0 elsewhere",),
    "Min": (f"∂L/∂a = {G} at the smallest elements (ties share), 0 elsewhere",),
    "Var": (f"∂L/∂a = {G} · 2(a − mean a) / (n − ddof)",),
    "BroadcastTo": (f"∂L/∂a = {G} summed over the broadcast axes",),
    "SumTo": (f"∂L/∂a = {G} copied along the summed axes",),
    # matrix products
    "MatMul": (f"∂L/∂a = {G} @ bᵀ", f"∂L/∂b = aᵀ @ {G}"),
    "Linear": (f"∂L/∂x = {G} @ W", f"∂L/∂W = {G}ᵀ @ x", f"∂L/∂bias = Σₙ {G}"),
    # shapes
    "Reshape": (f"∂L/∂a = {G} reshaped to a's shape",),
    "Transpose": (f"∂L/∂a = {G} with the axes permuted back",),
    "GetItem": (f"∂L/∂a = zeros with {G} added at the index",),
    "ScatterAdd": (f"∂L/∂a = {G} read back at the index",),
    "Concat": (f"∂L/∂each = its slice of {G}",),
    "Stack": (f"∂L/∂each = its slice of {G}",),
    "Pad": (f"∂L/∂a = {G} without the padding",),
    "ToBackend": (f"∂L/∂a = {G} moved back to a's backend",),
    "Flatten": (f"∂L/∂x = {G} reshaped to x's shape",),
    # convolution, pooling, normalisation, dropout
    "Conv1d": (f"∂L/∂x = conv_transpose1d({G}, W)", f"∂L/∂W = correlate(x, {G})", f"∂L/∂b = Σ {G} over N, W"),
    "Conv2d": (f"∂L/∂x = conv_transpose2d({G}, W)", f"∂L/∂W = correlate(x, {G})",
               f"∂L/∂b = Σ {G} over N, H, W"),
    "ConvTranspose2d": (f"∂L/∂x = conv2d({G}, W)", f"∂L/∂W = correlate({G}, x)", f"∂L/∂b = Σ {G} over N, H, W"),
    "MaxPool2d": (f"∂L/∂x = {G} routed to each window's largest element",),
    "MaxPool1d": (f"∂L/∂x = {G} routed to each window's largest element",),
    "AvgPool2d": (f"∂L/∂x = {G} / window size, spread over each window",),
    "AvgPool1d": (f"∂L/∂x = {G} / window size, spread over each window",),
    "Dropout": (f"∂L/∂x = {G} · mask / (1 − p)",),
    "BatchNorm": (f"∂L/∂x = γ/σ · ({G} − mean {G} − x̂ · mean({G} · x̂))", f"∂L/∂γ = Σ {G} · x̂",
                  f"∂L/∂β = Σ {G}"),
}


def rule_lines(op_name: str, arg_names: list[str], needs: tuple) -> list[str]:
    """The rule lines of ``op_name`` for the inputs that need a gradient."""
    lines = RULES.get(op_name)
    out = []
    for i, arg in enumerate(arg_names):
        if i < len(needs) and not needs[i]:
            continue
        if lines is not None and i < len(lines):
            out.append(lines[i])
        elif lines is not None and len(lines) == 1 and op_name in ("Concat", "Stack"):
            out.append(lines[0])
        else:
            out.append(f"∂L/∂{arg} = {G} · ∂y/∂{arg}   ({op_name}.backward)")
    return list(dict.fromkeys(out))  # Concat's inputs share one line
