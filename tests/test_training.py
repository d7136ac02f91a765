"""training: the loop, its EMA (with warm-up), the learning-rate schedule and early stopping, by value."""
import math
import sys

import pytest
import torch

from companion_lib import training
from companion_lib.training import EMA, lr_factor, train


class Scalar(torch.nn.Module):
    """One parameter w (a toy model whose trajectory is known in closed form)."""

    def __init__(self, w=0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w)))


def push_up(m, x):
    """Gradient −1 on w at every step: Adam moves w by lr (1 − 1e-8) each step, exactly."""
    return -(m.w * x.mean())


# ------------------------------------------------------------------ EMA arithmetic
def test_ema_warmup_arithmetic_exact_values():
    model, ema = Scalar(0.0), None
    ema = EMA(model, decay=0.9)
    assert [ema.decay_at(t) for t in (0, 1, 2, 80, 81, 1000)] == pytest.approx(
        [0.1, 2 / 11, 0.25, 81 / 90, 0.9, 0.9])
    got = []
    for value in (1.0, 2.0, 3.0):
        model.w.data.fill_(value)
        ema.update(model)
        got.append(ema.model.w.item())
    # d_t = (1+t)/(10+t): 0.1·0 + 0.9·1 = 0.9; (2/11)·0.9 + (9/11)·2 = 1.8; 0.25·1.8 + 0.75·3 = 2.7
    assert got == pytest.approx([0.9, 1.8, 2.7], abs=1e-6)
    plain = EMA(Scalar(0.0), decay=0.9, warmup=False)
    m = Scalar()
    for value in (1.0, 2.0):
        m.w.data.fill_(value)
        plain.update(m)
    assert plain.model.w.item() == pytest.approx(0.9 * 0.1 + 0.1 * 2.0)  # 0.1, then 0.29
    assert not ema.model.w.requires_grad and ema.updates == 3


def test_ema_forgets_the_initialisation_after_a_quick_run():
    # the issue: after 1500 updates at decay 0.999 a fifth of the average was still the random init
    with_warmup = math.factorial(9) * math.factorial(1500) / math.factorial(1509)  # ∏ (1+t)/(10+t)
    assert with_warmup < 1e-23
    for warmup, expected in ((False, 0.999 ** 1500), (True, with_warmup)):
        model = Scalar(1.0)
        ema = EMA(model, decay=0.999, warmup=warmup)
        model.w.data.zero_()
        for _ in range(1500):
            ema.update(model)
        assert ema.model.w.item() == pytest.approx(expected, rel=1e-4, abs=1e-30)
    assert 0.999 ** 1500 == pytest.approx(0.2229, abs=1e-4)


def test_ema_copies_buffers_and_rejects_bad_decay():
    net = torch.nn.BatchNorm1d(2)
    ema = EMA(net, 0.5)
    net.running_mean.fill_(3.0)
    ema.update(net)
    assert ema.model.running_mean.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="decay"):
        EMA(net, 1.0)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        EMA("net")


# ------------------------------------------------------------------ learning-rate schedule
def test_lr_factor_values():
    f = [lr_factor(s, 12, warmup=4, cosine=True) for s in range(12)]
    assert f[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert f[8] == pytest.approx(0.5)                                   # half-way through the cosine
    assert f[11] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))  # 0.0381
    assert [lr_factor(s, 10) for s in (0, 9)] == [1.0, 1.0]
    assert lr_factor(0, 10, warmup=2) == 0.5 and lr_factor(5, 10, warmup=2) == 1.0
    with pytest.raises(ValueError, match="warmup"):
        lr_factor(0, 10, warmup=-1)


def test_train_uses_the_schedule_it_reports():
    res = train(torch.nn.Linear(2, 1), lambda m, x: m(x).pow(2).mean(), torch.randn(16, 2), steps=12,
                lr=0.1, warmup=4, cosine=True, eval_every=1, progress=False)
    expected = [0.1 * lr_factor(s, 12, 4, True) for s in range(12)]
    assert res.history["lr"] == pytest.approx(expected)
    assert res.history["step"] == list(range(1, 13))


# ------------------------------------------------------------------ best weights and early stopping
def test_best_weights_are_those_of_the_best_validation_step():
    model = Scalar(0.0)
    x = torch.ones(8, 1)
    res = train(model, push_up, x, val_data=x, val_fn=lambda m, _: float((m.w - 0.7) ** 2),
                steps=50, lr=0.1, batch_size=4, eval_every=1, patience=3, progress=False)
    assert res.best_step == 7 and res.steps_run == 10 and res.stopped_early
    assert model.w.item() == pytest.approx(0.7, abs=1e-5)      # restored: w was 1.0 at step 10
    assert res.history["val"][6] == res.best_val == pytest.approx(0.0, abs=1e-10)
    assert res.history["train"][:3] == pytest.approx([0.0, -0.1, -0.2], abs=1e-6)  # loss before each step


def test_best_ema_weights_are_restored_with_ema():
    # w_k = 0.1 k; with the warm-up the average of a line is 0.9 of its end: EMA w after k steps = 0.09 k
    model = Scalar(0.0)
    x = torch.ones(8, 1)
    res = train(model, push_up, x, val_data=x, val_fn=lambda m, _: float((m.w - 0.63) ** 2),
                steps=50, lr=0.1, eval_every=1, patience=3, ema_decay=0.99, progress=False)
    assert res.best_step == 7 and res.steps_run == 10
    assert res.ema.model.w.item() == pytest.approx(0.63, abs=1e-5)
    assert model.w.item() == pytest.approx(1.0, abs=1e-5)       # the raw model keeps its last step


def test_train_fits_linear_regression_and_early_stops():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(512, 3, generator=g)
    w = torch.tensor([1.0, -2.0, 0.5])
    Y = X @ w + 0.1 * torch.randn(512, generator=g)
    model = torch.nn.Linear(3, 1)

    def loss(m, batch):
        x, y = batch
        return ((m(x).squeeze(-1) - y) ** 2).mean()

    res = train(model, loss, (X[:400], Y[:400]), val_data=(X[400:], Y[400:]), steps=3000,
                lr=0.05, eval_every=20, patience=5, generator=g, progress=False)
    assert res.best_val < 0.02
    assert torch.allclose(model.weight.squeeze(), w, atol=0.05)
    assert res.stopped_early and res.steps_run < 3000
    assert len(res.history["step"]) == len(res.history["val"]) == len(res.history["train"])


# ------------------------------------------------------------------ batches, determinism, no host sync
def test_each_epoch_is_a_permutation():
    b = training._Batches(10, 3, torch.device("cpu"), torch.Generator().manual_seed(0))
    for _ in range(3):
        epoch = torch.cat([b.next() for _ in range(3)])
        assert len(set(epoch.tolist())) == 9
    whole = training._Batches(5, 64, torch.device("cpu"), None)
    assert sorted(whole.next().tolist()) == [0, 1, 2, 3, 4]


def test_seeded_runs_repeat_and_seeds_matter():
    X = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))

    def run(seed):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)
        return train(model, lambda m, x: (m(x) - x[:, :1]).pow(2).mean(), X, steps=30, batch_size=16,
                     eval_every=10, generator=torch.Generator().manual_seed(seed), progress=False)

    a, b, c = run(0), run(0), run(1)
    assert a.history["train"] == b.history["train"]
    assert a.history["train"] != c.history["train"]


class _CountReadOuts(torch.overrides.TorchFunctionMode):
    """Counts calls that copy a value to the host, except inside torch.optim: Adam keeps its step
    counter in a CPU tensor on every device (capturable=False), so reading it waits for nothing."""
    NAMES = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.NAMES:
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            self.count += "/torch/optim/" not in caller
        return func(*args, **(kwargs or {}))


def test_the_host_reads_the_device_only_at_evaluations():
    X = torch.randn(64, 2)
    model = torch.nn.Linear(2, 1)
    with _CountReadOuts() as counter:
        train(model, lambda m, x: m(x).pow(2).mean(), X, steps=40, eval_every=20, grad_clip=1.0,
              ema_decay=0.9, warmup=5, cosine=True, progress=False)
    assert counter.count == 3  # one seed for the batch generator, then one loss read per evaluation


# ------------------------------------------------------------------ errors
def test_train_reports_divergence_at_the_next_evaluation():
    def loss(m, x):
        return m(x).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="between steps 1 and 3; lower lr"):
        train(torch.nn.Linear(1, 1), loss, torch.ones(4, 1), steps=3, progress=False)


def test_bad_arguments_get_clear_errors():
    model, X = torch.nn.Linear(2, 1), torch.randn(8, 2)

    def loss(m, x):
        return m(x).pow(2).mean()

    with pytest.raises(ValueError, match="steps must be >= 1"):
        train(model, loss, X, steps=0)
    with pytest.raises(ValueError, match=r"the model is on cpu but train_data is on meta"):
        train(model, loss, X.to("meta"), steps=1)
    with pytest.raises(ValueError, match=r"val_data is on meta"):
        train(model, loss, X, val_data=X.to("meta"), steps=1)
    with pytest.raises(ValueError, match="same number of rows"):
        train(model, loss, (X, X[:3]), steps=1)
    with pytest.raises(TypeError, match="train_data must be a tensor"):
        train(model, loss, X.numpy(), steps=1)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        train(model, "mse", X, steps=1)
    with pytest.raises(ValueError, match="no parameters"):
        train(torch.nn.ReLU(), loss, X, steps=1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        train(model, loss, X, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="val_fn was given without val_data"):
        train(model, loss, X, steps=1, val_fn=lambda m, d: 0.0)
    with pytest.raises(ValueError, match="has no rows"):
        train(model, loss, X[:0], steps=1)
