"""Optimizer steps and the Keras-style fit loop, against PyTorch CPU in the same run.

1. One optimizer step (SGD with momentum, RMSprop, Adam) over the parameters of the
   lecture CNN (104,202) and of the 800-400-10 MLP (952,410): the in-place xp updates
   against torch.optim (foreach off and on is torch's choice; its default is used).
2. One epoch of ``model.fit`` on the lecture MLP (784-512-10, RMSprop, batch 128,
   2,048 samples) against the same epoch as a hand-written PyTorch loop; and our own
   hand-written loop, so the row pair shows what fit's bookkeeping costs.

Each case and framework runs alone in its own process, ``--runs`` (3) of each taken in turn.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/optim_fit.py
"""
from __future__ import annotations

import argparse
import importlib.util

import numpy as np
from common import add_solo_arguments, machine, solo_child, solo_frameworks, solo_in_turn, solo_report, torch_or_none

import autograd_cnn as ag
from autograd_cnn import nn, optim

CNN = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 64, 3, 3), (128,), (10, 1152), (10,)]
MLP = [(800, 784), (800,), (400, 800), (400,), (10, 400), (10,)]
OPTIMIZERS = {
    "SGD momentum 0.9": ("SGD", dict(lr=0.01, momentum=0.9)),
    "RMSprop": ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-7)),
    "Adam": ("Adam", dict(lr=1e-3)),
}


MODELS = {"lecture CNN": CNN, "800-400-10 MLP": MLP}
SAMPLES, FEATURES, BATCH = 2048, 784, 128


def optimizer_step(torch, model_name: str, label: str):
    """One in-place step of ``label``'s optimizer over ``model_name``'s parameters (ours, or PyTorch's)."""
    rng = np.random.default_rng(0)
    shapes = MODELS[model_name]
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    name, kwargs = OPTIMIZERS[label]
    if torch is None:
        params = [nn.Parameter(ag.tensor(v.copy())) for v in values]
        for p, g in zip(params, grads):
            p.grad = ag.tensor(g)
        return getattr(optim, name)(params, **kwargs).step
    tparams = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    for p, g in zip(tparams, grads):
        p.grad = torch.tensor(g)
    return getattr(torch.optim, name)(tparams, **kwargs).step


def epoch(torch, how: str):
    """One epoch on the lecture MLP: ``fit`` or our hand-written loop ("hand"), or PyTorch's loop."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(SAMPLES, FEATURES)).astype(np.float32)
    y = rng.integers(0, 10, size=SAMPLES)
    if torch is not None:
        tmodel = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
        topt = torch.optim.RMSprop(tmodel.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def torch_loop():
            order = torch.tensor(np.random.default_rng(2).permutation(len(x)))
            for start in range(0, len(x), BATCH):
                index = order[start:start + BATCH]
                topt.zero_grad()
                torch.nn.functional.cross_entropy(tmodel(tx[index]), ty[index]).backward()
                topt.step()
        return torch_loop
    ag.manual_seed(0)
    if how == "fit":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10), nn.Softmax())
        model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
        return lambda: model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)

    import autograd_cnn.functional as F

    logits_model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = optim.RMSprop(logits_model.parameters())

    def hand_loop():
        order = np.random.default_rng(2).permutation(len(x))
        for start in range(0, len(x), BATCH):
            index = order[start:start + BATCH]
            opt.zero_grad()
            F.cross_entropy(logits_model(ag.tensor(x[index])), ag.tensor(y[index])).backward()
            opt.step()
    return hand_loop


STEP_CASES = {f"{label}|{model_name}": f"{label} step, {model_name}" for model_name in MODELS for label in OPTIMIZERS}
EPOCH_CASES = {"fit": f"fit(), 1 epoch of {SAMPLES // BATCH} steps, lecture MLP (PyTorch: its loop)",
               "hand": "hand-written loop, same epoch (PyTorch: its loop)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_solo_arguments(parser, runs=3)
    args = parser.parse_args()
    if args.solo:
        torch = torch_or_none() if args.solo == "torch" else None
        if args.case in EPOCH_CASES:
            solo_child(epoch(torch, args.case), repeat=5, warmup=1)
        else:
            label, model_name = args.case.split("|")
            solo_child(optimizer_step(torch, model_name, label), repeat=30)
        return
    print(machine())
    who = solo_frameworks(importlib.util.find_spec("torch") is not None, malloc_kept=False)
    solo_report(solo_in_turn(__file__, list(STEP_CASES), args.runs, who), STEP_CASES,
                "Optimizer steps (in place, float32)")
    solo_report(solo_in_turn(__file__, list(EPOCH_CASES), args.runs, who), EPOCH_CASES, "The fit loop")


if __name__ == "__main__":
    main()
