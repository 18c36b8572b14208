"""Optimizers: update rules equal PyTorch's, in-place updates, state saving, schedules, backend moves."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import nn, optim

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, alpha=0.99, eps=1e-8)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("Adadelta", dict(lr=1.0)),
    ("Adadelta", dict(lr=0.5, rho=0.9, eps=1e-6, weight_decay=0.01)),
]


def _grads(step, shape):
    return np.random.default_rng(step).standard_normal(shape)


def _run_ours(name, kwargs, w0, steps=5):
    p = nn.Parameter(ag.tensor(w0.copy()))
    opt = getattr(optim, name)([p], **kwargs)
    for step in range(steps):
        p.grad = ag.tensor(_grads(step, w0.shape))
        opt.step()
    return p.numpy()


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    w0 = np.random.default_rng(0).standard_normal((3, 4))
    t = torch.tensor(w0.copy(), requires_grad=True)
    torch_kwargs = dict(kwargs)
    if name == "RMSprop":
        torch_kwargs.setdefault("alpha", 0.9)
        torch_kwargs.setdefault("eps", 1e-7)
    if name == "Adadelta":
        torch_kwargs.setdefault("rho", 0.95)
        torch_kwargs.setdefault("eps", 1e-7)
    opt = getattr(torch.optim, name)([t], **torch_kwargs)
    for step in range(5):
        t.grad = torch.tensor(_grads(step, w0.shape))
        opt.step()
    np.testing.assert_allclose(_run_ours(name, kwargs, w0), t.detach().numpy(), rtol=1e-12, atol=1e-12)



def _reference(name, kwargs, w0, steps=5):
    """The update rules as PyTorch documents them, in plain NumPy float64: one step at a time."""
    k = {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False, "dampening": 0.0, "alpha": 0.9,
         "eps": 1e-7 if name in ("RMSprop", "Adadelta") else 1e-8, "betas": (0.9, 0.999), "rho": 0.95, **kwargs}
    if name == "AdamW":
        k["weight_decay"] = kwargs.get("weight_decay", 1e-2)
    p, a, b, lr, wd = w0.copy(), np.zeros_like(w0), np.zeros_like(w0), k["lr"], k["weight_decay"]
    for t in range(1, steps + 1):
        g = _grads(t - 1, w0.shape)
        if name == "AdamW":
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        if name == "SGD":
            if k["momentum"]:
                a = g if t == 1 else k["momentum"] * a + (1 - k["dampening"]) * g
                g = g + k["momentum"] * a if k["nesterov"] else a
            p = p - lr * g
        elif name == "RMSprop":
            a = k["alpha"] * a + (1 - k["alpha"]) * g * g
            step = g / (np.sqrt(a) + k["eps"])
            if k["momentum"]:
                b = k["momentum"] * b + step
                step = b
            p = p - lr * step
        elif name in ("Adam", "AdamW"):
            (b1, b2) = k["betas"]
            a, b = b1 * a + (1 - b1) * g, b2 * b + (1 - b2) * g * g
            p = p - lr * (a / (1 - b1 ** t)) / (np.sqrt(b / (1 - b2 ** t)) + k["eps"])
        else:  # Adadelta: a the average of g^2, b the average of the squared steps
            a = k["rho"] * a + (1 - k["rho"]) * g * g
            delta = np.sqrt(b + k["eps"]) / np.sqrt(a + k["eps"]) * g
            b = k["rho"] * b + (1 - k["rho"]) * delta * delta
            p = p - lr * delta
    return p


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_update_rules_match_a_plain_reference(backend, name, kwargs):
    """Every optimizer's backend update rule (fused or not) against the documented algorithm."""
    w0 = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(_run_ours(name, kwargs, w0), _reference(name, kwargs, w0), rtol=1e-10, atol=1e-12)

@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_a_large_parameter_updated_in_parts_matches_the_reference(backend, monkeypatch, name, kwargs):
    """A parameter over half of part_bytes is updated a part at a time (parts of 16 KiB here, many
    of them): the same numbers as the whole-array rule."""
    cpu = ag.get_backend()
    monkeypatch.setattr(type(cpu), "part_bytes", 1 << 14)
    seen = []
    in_parts = cpu.in_parts
    monkeypatch.setattr(cpu, "in_parts", lambda rule, *arrays: (seen.append(arrays[0].shape), in_parts(rule, *arrays)))
    w0 = np.random.default_rng(1).standard_normal((37, 61))
    np.testing.assert_allclose(_run_ours(name, kwargs, w0), _reference(name, kwargs, w0), rtol=1e-10, atol=1e-12)
    if cpu.name == "numpy":  # a GPU's fused kernels, numba's compiled ones, take the whole array in one pass
        assert seen, f"{name} updated its parameter without in_parts"


def test_sgd_momentum_by_hand(backend):
    p = nn.Parameter(ag.tensor([1.0], dtype="float64"))
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for _ in range(3):
        p.grad = ag.tensor([2.0], dtype="float64")
        opt.step()
    # buffers 2, 3, 3.5: p = 1 - 0.1 * (2 + 3 + 3.5)
    assert p.numpy()[0] == pytest.approx(1 - 0.85)


def test_adam_first_step_is_lr_times_sign(backend):
    p = nn.Parameter(ag.tensor([1.0, -2.0, 3.0], dtype="float64"))
    opt = optim.Adam([p], lr=0.01)
    p.grad = ag.tensor([0.5, -4.0, 1e-3], dtype="float64")
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.99, -1.99, 2.99], rtol=1e-6)


def test_updates_in_place_and_skip_params_without_grad():
    a, b = nn.Parameter(ag.ones(3)), nn.Parameter(ag.ones(2))
    data = a.data
    opt = optim.RMSprop([a, b])
    a.grad = ag.ones(3)
    opt.step()
    assert a.data is data and (a.numpy() < 1).all()
    assert (b.numpy() == 1).all() and b not in opt.state
    opt.zero_grad()
    assert a.grad is None


def test_training_lowers_the_loss_plain_loop():
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = optim.Adam(model.parameters(), lr=0.05)
    x = ag.randn(64, 2)
    y = (x[:, :1] * x[:, 1:]).detach()
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_state_dict_round_trip_continues_identically(tmp_path):
    w0 = np.random.default_rng(2).standard_normal(5)

    def make():
        p = nn.Parameter(ag.tensor(w0.copy()))
        return p, optim.Adam([p], lr=0.1)

    p1, o1 = make()
    for step in range(3):
        p1.grad = ag.tensor(_grads(step, (5,)))
        o1.step()
    ag.save(o1.state_dict(), tmp_path / "opt.npz")
    p2, o2 = make()
    p2.data[...] = p1.data
    o2.load_state_dict(ag.load(tmp_path / "opt.npz"))
    assert o2.param_groups[0]["betas"] == (0.9, 0.999)
    for step in range(3, 5):
        for p, o in ((p1, o1), (p2, o2)):
            p.grad = ag.tensor(_grads(step, (5,)))
            o.step()
    np.testing.assert_array_equal(p1.numpy(), p2.numpy())
    with pytest.raises(ValueError, match="parameters"):
        optim.Adam([p1, p2]).load_state_dict(o1.state_dict())


def test_state_follows_a_dtype_change():
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(ag.ones(1, 2)).sum().backward()
    opt.step()
    model.double()
    opt.zero_grad()
    model(ag.ones(1, 2, dtype="float64")).sum().backward()
    opt.step()
    assert all(s["momentum_buffer"].dtype == np.float64 for s in opt.state.values())


def test_param_groups_and_lr_property():
    a, b = nn.Parameter(ag.ones(1)), nn.Parameter(ag.ones(1))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = ag.ones(1), ag.ones(1)
    opt.step()
    assert a.numpy()[0] == pytest.approx(0.9) and b.numpy()[0] == pytest.approx(0.0)
    opt.lr = 0.5
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])


def test_schedules():
    opt = optim.SGD([nn.Parameter(ag.ones(1))], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        sched.step()
        lrs.append(opt.lr)
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD([nn.Parameter(ag.ones(1))], lr=1.0)
    cos = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    values = []
    for _ in range(4):
        cos.step()
        values.append(cos.get_last_lr()[0])
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 5)]
    np.testing.assert_allclose(values, expected)


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")
    t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    t_sched = torch.optim.lr_scheduler.CosineAnnealingLR(t_opt, T_max=7, eta_min=0.01)
    opt = optim.SGD([nn.Parameter(ag.ones(1))], lr=0.3)
    sched = optim.CosineAnnealingLR(opt, T_max=7, eta_min=0.01)
    for _ in range(7):
        t_opt.step()
        t_sched.step()
        sched.step()
        assert opt.lr == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-9)


@pytest.mark.gpu
def test_state_follows_the_parameters_between_backends():
    if "cupy" not in ag.available_backends():
        pytest.skip("CuPy backend unusable on this machine")
    ag.manual_seed(0)
    with ag.use_backend("numpy"):  # both start on the host
        moving, staying = nn.Linear(3, 2), nn.Linear(3, 2)
    staying.load_state_dict(moving.state_dict())
    opt_moving, opt_staying = optim.Adam(moving.parameters(), lr=0.1), optim.Adam(staying.parameters(), lr=0.1)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    for where in ("numpy", "cupy", "numpy"):
        moving.to(where)
        for model, opt, backend in ((moving, opt_moving, where), (staying, opt_staying, "numpy")):
            opt.zero_grad()
            (model(ag.tensor(x, backend=backend)) ** 2).sum().backward()
            opt.step()
        assert all(s["exp_avg"].__class__.__module__.split(".")[0] == where for s in opt_moving.state.values())
    for a, b in zip(moving.parameters(), staying.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
