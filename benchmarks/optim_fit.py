"""Optimizer steps and the Keras-style fit loop, against PyTorch CPU in the same run.

1. One optimizer step (SGD with momentum, RMSprop, Adam) over the parameters of the
   lecture CNN (104,202) and of the 800-400-10 MLP (952,410): the in-place xp updates
   against torch.optim (foreach off and on is torch's choice; its default is used).
2. One epoch of ``model.fit`` on the lecture MLP (784-512-10, RMSprop, batch 128,
   2,048 samples) against the same epoch as a hand-written PyTorch loop; and our own
   hand-written loop, so the row pair shows what fit's bookkeeping costs.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/optim_fit.py
"""
from __future__ import annotations

import numpy as np
from common import machine, median_time, report, torch_or_none

import autograd_cnn as ag
from autograd_cnn import nn, optim

CNN = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 64, 3, 3), (128,), (10, 1152), (10,)]
MLP = [(800, 784), (800,), (400, 800), (400,), (10, 400), (10,)]
OPTIMIZERS = {
    "SGD momentum 0.9": ("SGD", dict(lr=0.01, momentum=0.9)),
    "RMSprop": ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-7)),
    "Adam": ("Adam", dict(lr=1e-3)),
}


def optimizer_rows(torch) -> list:
    rows = []
    for model_name, shapes in (("lecture CNN", CNN), ("800-400-10 MLP", MLP)):
        rng = np.random.default_rng(0)
        values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        for label, (name, kwargs) in OPTIMIZERS.items():
            params = [nn.Parameter(ag.tensor(v.copy())) for v in values]
            for p, g in zip(params, grads):
                p.grad = ag.tensor(g)
            ours = median_time(getattr(optim, name)(params, **kwargs).step, repeat=30)
            theirs = None
            if torch is not None:
                tparams = [torch.tensor(v.copy(), requires_grad=True) for v in values]
                for p, g in zip(tparams, grads):
                    p.grad = torch.tensor(g)
                theirs = median_time(getattr(torch.optim, name)(tparams, **kwargs).step, repeat=30)
            rows.append((f"{label} step, {model_name}", ours, theirs))
    return rows


def fit_rows(torch) -> list:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(2048, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=2048)
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10), nn.Softmax())
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    fit = median_time(lambda: model.fit(x, y, epochs=1, batch_size=128, verbose=0), repeat=5, warmup=1)

    import autograd_cnn.functional as F

    logits_model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = optim.RMSprop(logits_model.parameters())

    def hand_loop():
        order = np.random.default_rng(2).permutation(len(x))
        for start in range(0, len(x), 128):
            index = order[start:start + 128]
            opt.zero_grad()
            loss = F.cross_entropy(logits_model(ag.tensor(x[index])), ag.tensor(y[index]))
            loss.backward()
            opt.step()

    hand = median_time(hand_loop, repeat=5, warmup=1)
    theirs = None
    if torch is not None:
        tmodel = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
        topt = torch.optim.RMSprop(tmodel.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def torch_loop():
            order = torch.tensor(np.random.default_rng(2).permutation(len(x)))
            for start in range(0, len(x), 128):
                index = order[start:start + 128]
                topt.zero_grad()
                loss = torch.nn.functional.cross_entropy(tmodel(tx[index]), ty[index])
                loss.backward()
                topt.step()

        theirs = median_time(torch_loop, repeat=5, warmup=1)
    return [("fit(), 1 epoch of 16 steps, lecture MLP", fit, theirs),
            ("hand-written loop, same epoch", hand, theirs)]


def main() -> None:
    torch = torch_or_none()
    print(machine())
    report(optimizer_rows(torch), "Optimizer steps (in place, float32)")
    report(fit_rows(torch), "The fit loop")


if __name__ == "__main__":
    main()
