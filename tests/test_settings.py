"""settings: device and mode defaults, seeding, threads, the dtype rule and its no-float64 stand-in."""
import copy
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from companion_lib import settings


# ------------------------------------------------------------------ device and mode
def _machine(monkeypatch, *, cuda: bool, mps: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.delenv("COMPANION_DEVICE", raising=False)
    monkeypatch.delenv("COMPANION_MODE", raising=False)


def test_mode_follows_the_chosen_device_on_a_cuda_machine(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=False)
    assert settings.get_device() == torch.device("cuda") and settings.get_mode() == "full"
    monkeypatch.setenv("COMPANION_DEVICE", "cpu")  # was full mode before issue 8
    assert settings.get_device() == torch.device("cpu") and settings.get_mode() == "quick"
    monkeypatch.setenv("COMPANION_DEVICE", "cuda:1")
    assert settings.get_mode() == "full"
    monkeypatch.setenv("COMPANION_MODE", "quick")
    assert settings.get_mode() == "quick" and settings.budget(quick=1, full=2) == 1


def test_mac_defaults_to_cpu_in_quick_mode_and_mps_when_asked(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=True)
    assert settings.get_device() == torch.device("cpu") and settings.get_mode() == "quick"
    monkeypatch.setenv("COMPANION_MODE", "full")
    assert settings.get_device() == torch.device("mps") and settings.get_mode() == "full"
    monkeypatch.delenv("COMPANION_MODE")
    monkeypatch.setenv("COMPANION_DEVICE", "mps")
    assert settings.get_device() == torch.device("mps") and settings.get_mode() == "quick"


def test_cpu_only_machine(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    assert settings.get_device() == torch.device("cpu") and settings.get_mode() == "quick"
    monkeypatch.setenv("COMPANION_MODE", "full")
    assert settings.get_device() == torch.device("cpu") and settings.get_mode() == "full"
    assert settings.budget(quick=1, full=2) == 2
    monkeypatch.setenv("COMPANION_MODE", "fast")
    with pytest.raises(ValueError, match="quick"):
        settings.get_mode()


def test_device_override_errors(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    monkeypatch.setenv("COMPANION_DEVICE", "banana")
    with pytest.raises(ValueError, match="COMPANION_DEVICE"):
        settings.get_device()
    for name in ("cuda", "mps"):
        monkeypatch.setenv("COMPANION_DEVICE", name)
        with pytest.raises(ValueError, match="not available"):
            settings.get_device()
    monkeypatch.setenv("COMPANION_DEVICE", "meta")
    with pytest.raises(ValueError, match="expected 'cpu'"):
        settings.get_device()


def test_setup_seeds_and_sets_threads(monkeypatch, capsys):
    monkeypatch.setenv("COMPANION_MODE", "quick")
    monkeypatch.setenv("COMPANION_DEVICE", "cpu")
    monkeypatch.delenv("COMPANION_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        run = settings.setup(seed=7)
        a = torch.rand(3)
        settings.setup(seed=7)
        assert torch.equal(a, torch.rand(3))
        assert run.threads == 1 == torch.get_num_threads()
        assert "mode: quick" in capsys.readouterr().out
        assert run.budget(quick="q", full="f") == "q"
        assert torch.equal(torch.rand(2, generator=run.generator),
                           torch.rand(2, generator=torch.Generator().manual_seed(7)))
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="seed"):
        settings.seed_everything(-1)
    monkeypatch.setenv("COMPANION_THREADS", "two")
    with pytest.raises(ValueError, match="COMPANION_THREADS"):
        settings.set_threads()


# ------------------------------------------------------------------ the no-float64 stand-in
def _f64(*shape):
    with settings.cpu_float64():
        return torch.arange(math.prod(shape) or 1, dtype=torch.float64).reshape(shape) / 4


def test_float64_raises_outside_cpu_float64():
    x64, x32 = _f64(3), torch.ones(3)
    cases = {
        "factory": lambda: torch.zeros(2, dtype=torch.float64),
        "factory (like)": lambda: torch.ones_like(x32, dtype=torch.double),
        "numpy float64 in": lambda: torch.as_tensor(np.ones(2)),
        "cast up": lambda: x32.double(),
        "to(float64)": lambda: x32.to(torch.float64),
        "compute": lambda: x64.sum(),
        "mixed": lambda: torch.maximum(x32, x64),
        "move": lambda: x64.to("cpu"),
        "copy": lambda: x64.clone(),
    }
    with settings.no_float64():
        for what, call in cases.items():
            with pytest.raises(TypeError, match=r"outside settings.cpu_float64\(\): MPS has no float64"):
                call()
                pytest.fail(what)
        # operators: torch turns a TypeError into NotImplemented there, so they raise ArithmeticError
        for call in (lambda: x64 + 1, lambda: 1 - x64, lambda: x32 * x64, lambda: x64 < 0):
            with pytest.raises(ArithmeticError, match="MPS has no float64"):
                call()


def test_read_outs_and_casts_are_allowed():
    x64 = _f64(2, 3)
    with settings.no_float64():
        assert x64.numpy().dtype == np.float64 and x64.cpu().numpy()[1, 2] == 1.25
        assert x64[1, 2].item() == 1.25 and x64.tolist()[0] == [0.0, 0.25, 0.5]
        assert f"{x64[0, 1]:.2f}" == "0.25" and "float64" in repr(x64)
        assert x64.shape == (2, 3) and x64.size(1) == 3 and x64.dim() == 2 and x64.numel() == 6
        assert x64.dtype == torch.float64 and x64.device.type == "cpu" and len(x64) == 2
        assert [row.tolist() for row in x64][1][0] == 0.75 and np.asarray(x64).sum() == 3.75
        assert float(x64[1, 0]) == 0.75 and bool(x64.detach()[0, 1])
        y = x64.float() * 2  # a cast, then float32 work
        assert y.dtype == torch.float32 and y[1, 2].item() == 2.5
        assert x64.to(torch.float32).dtype == torch.float32 and x64.long().dtype == torch.int64
        assert copy.deepcopy(x64).dtype == torch.float64
        with settings.cpu_float64():  # exact work on the CPU is the exemption
            assert (x64 + 1).sum().item() == 9.75
            assert torch.as_tensor(np.ones(2)).dtype == torch.float64


def test_cpu_float64_checks_the_device_of_float64_results():
    # on a CUDA machine this is what catches float64 sent to run.device from inside a block; the
    # meta device (no data) stands in for any device that is not the CPU
    with settings.no_float64(), settings.cpu_float64():
        torch.zeros(2, dtype=torch.float64)
        with pytest.raises(TypeError, match="float64 on meta inside settings.cpu_float64"):
            torch.zeros(2, dtype=torch.float64, device="meta")
        torch.zeros(2, device="meta")  # float32 on the device is fine


def test_cpu_float64_as_decorator_and_float64_allowed():
    @settings.cpu_float64()
    def exact_mean(x):
        return torch.as_tensor(x, dtype=torch.float64).mean()

    assert settings.float64_allowed()  # stand-in off
    with settings.no_float64():
        assert not settings.float64_allowed()
        assert exact_mean([1.0, 2.0]).item() == 1.5
        with settings.cpu_float64():
            assert settings.float64_allowed()
        assert not settings.float64_allowed()
        with pytest.raises(ValueError), settings.cpu_float64():  # the depth is restored on errors
            raise ValueError
        assert not settings.float64_allowed()


def test_float32_torch_internals_do_not_trip_the_stand_in():
    """Optimisers, schedulers, clipping, distributions, autograd, torch.func: float32 code runs."""
    import torch.distributions as D
    g = torch.Generator().manual_seed(0)
    with settings.no_float64():
        net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.LayerNorm(8), torch.nn.SiLU(),
                                  torch.nn.Linear(8, 3))
        for opt_cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
            for foreach in (False, True):
                opt = opt_cls(net.parameters(), lr=1e-3, foreach=foreach)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(s)))
                for _ in range(2):
                    x = torch.randn(5, 3, generator=g)
                    loss = torch.nn.functional.mse_loss(net(x), x)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    opt.step()
                    sched.step()
        for dist in (D.Normal(torch.zeros(3), torch.ones(3)), D.Categorical(logits=torch.zeros(4)),
                     D.MultivariateNormal(torch.zeros(2), torch.eye(2)), D.Uniform(0.0, 1.0),
                     D.MixtureSameFamily(D.Categorical(logits=torch.zeros(2)),
                                         D.Normal(torch.zeros(2), torch.ones(2)))):
            assert dist.log_prob(dist.sample((4,))).dtype == torch.float32
        x = torch.randn(4, requires_grad=True)
        (gx,) = torch.autograd.grad((x ** 3).sum(), x, create_graph=True)
        assert torch.allclose(gx, 3 * x ** 2)
        assert torch.func.grad(lambda t: (t ** 2).sum())(torch.ones(2)).tolist() == [2.0, 2.0]
        assert copy.deepcopy(net).state_dict().keys() == net.state_dict().keys()
        assert torch.tensor(math.pi).dtype == torch.float32 and (torch.ones(2) * np.float64(2)).dtype == torch.float32


def _run_python(code, **env):
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=120)


def test_setup_turns_the_stand_in_on_from_the_environment():
    code = ("import torch\nfrom companion_lib import settings\n"
            "settings.setup(seed=0, verbose=False)\nsettings.setup(seed=1, verbose=False)\n"
            "print(settings.no_float64_active(), len(torch.overrides._get_current_function_mode_stack()))\n"
            "try:\n    torch.ones(1, dtype=torch.float64)\nexcept TypeError as err:\n    print('raised', err)\n")
    on = _run_python(code, COMPANION_NO_FLOAT64="1", COMPANION_MODE="quick", COMPANION_DEVICE="cpu")
    assert on.returncode == 0, on.stderr
    assert on.stdout.startswith("True 1\nraised float64 outside settings.cpu_float64()")  # pushed once
    off = _run_python(code, COMPANION_NO_FLOAT64="0", COMPANION_MODE="quick", COMPANION_DEVICE="cpu")
    assert off.returncode == 0 and off.stdout == "False 0\n", off.stderr
    bad = _run_python(code, COMPANION_NO_FLOAT64="maybe", COMPANION_MODE="quick", COMPANION_DEVICE="cpu")
    assert bad.returncode != 0 and "COMPANION_NO_FLOAT64='maybe'" in bad.stderr


def test_each_test_runs_with_one_torch_thread():
    """tests/conftest.py sets it for every test (and restores it after): no test file sets its own."""
    assert torch.get_num_threads() == 1

def test_env_flag_is_the_one_parser_of_on_off_variables(monkeypatch):
    from companion_lib import metrics
    for value, expected in (("", False), (" 0 ", False), ("No", False), ("1", True), ("TRUE", True), ("yes", True)):
        monkeypatch.setenv("COMPANION_RECORD", value)
        monkeypatch.setenv("COMPANION_NO_FLOAT64", value)
        assert settings._env_flag("COMPANION_RECORD") is expected
        assert metrics._recording() is expected and settings._no_float64_requested() is expected
    monkeypatch.delenv("COMPANION_RECORD")
    assert metrics._recording() is False
    monkeypatch.setenv("COMPANION_RECORD", "maybe")
    with pytest.raises(ValueError, match=r"COMPANION_RECORD='maybe'; expected 1 \(write results\) or 0 \(do not\)"):
        metrics._recording()
    monkeypatch.setenv("COMPANION_NO_FLOAT64", "2")
    with pytest.raises(ValueError, match=r"COMPANION_NO_FLOAT64='2'; expected 1 \(on\) or 0 \(off\)"):
        settings._no_float64_requested()


# ------------------------------------------------------------------ devices
def test_check_same_device_names_both_devices():
    model = torch.nn.Linear(2, 1)
    x = torch.zeros(3, 2)
    assert settings.check_same_device(model, x, (x, x)) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"the model is on cpu but batch\[1\] is on meta"):
        settings.check_same_device(model, (x, torch.zeros(3, device="meta")), names=["batch"])
    with pytest.raises(ValueError, match="input 0 is on meta"):
        settings.check_same_device(model, torch.zeros(3, 2, device="meta"))
    assert settings.check_same_device(torch.nn.ReLU(), torch.zeros(1, device="meta")) is None
    with pytest.raises(TypeError, match="torch.nn.Module"):
        settings.check_same_device(lambda x: x, x)
