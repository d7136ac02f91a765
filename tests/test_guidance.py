"""Classifier-free guidance (15.12): the combination, the guided two-pass denoiser, label dropout."""
import pytest
import torch

from companion_lib import ddpm, forward_diffusion, guidance
from companion_lib.denoisers import ResidualDenoiser


def test_cfg_combine_endpoints_and_linearity():
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.equal(guidance.cfg_combine(c, u, 0.0), u)
    assert torch.allclose(guidance.cfg_combine(c, u, 1.0), c)
    w3 = guidance.cfg_combine(c, u, 3.0)
    assert torch.allclose(w3 - u, 3 * (c - u), atol=1e-6)                 # (15.12)
    per_row = guidance.cfg_combine(c, u, torch.tensor([0.0, 1.0, 3.0, 0.0, 1.0]).reshape(5, 1))
    assert torch.allclose(per_row[2], w3[2]) and torch.equal(per_row[0], u[0])


def test_guided_eps_uses_labels_and_the_null_label():
    calls = []

    def model(x, t, c):
        calls.append(c.clone())
        return x * 0 + c[:, None].float()                                  # ε = the label, to see which went where

    labels = torch.tensor([2, 0, 1])
    eps_fn = guidance.guided_eps(model, labels, 2.0, null_label=10)
    out = eps_fn(torch.zeros(3, 4), torch.full((3,), 7))
    assert torch.equal(calls[0], torch.tensor([2, 0, 1, 10, 10, 10]))
    assert torch.allclose(out[:, 0], 10 + 2.0 * (labels.float() - 10))


def test_guided_sampling_on_gaussian_classes_sharpens_toward_the_class():
    """Two classes N(±1, 0.5²) in 1-D with exact conditional and unconditional ε: guidance w > 1 moves
    class-1 samples further from the other class than w = 1 does."""
    s = forward_diffusion.NoiseSchedule.cosine(200, max_beta=0.2)
    means, var0 = torch.tensor([-1.0, 1.0]), 0.25

    def model(x, t, c):
        ab = s.at("alpha_bars", t, x)
        var = ab * var0 + 1 - ab
        logits = -(x - ab.sqrt() * means) ** 2 / (2 * var)                 # (b, 2)
        post = torch.softmax(logits, 1)
        score_k = -(x - ab.sqrt() * means) / var
        uncond = (post * score_k).sum(1, keepdim=True)
        cond = score_k.gather(1, c.clamp(max=1)[:, None])
        score = torch.where((c == 2)[:, None], uncond, cond)
        return -(1 - ab).sqrt() * score

    labels = torch.ones(3000, dtype=torch.long)
    out = {}
    for w in (0.0, 1.0, 4.0):
        x = ddpm.sample(s, guidance.guided_eps(model, labels, w, null_label=2), (3000, 1),
                             generator=torch.Generator().manual_seed(0))
        out[w] = x.squeeze(1)
    assert float((out[0.0] > 0).float().mean()) == pytest.approx(0.5, abs=0.05)   # unconditional
    assert float(out[1.0].mean()) == pytest.approx(1.0, abs=0.05)                  # the class itself
    assert float(out[1.0].std()) == pytest.approx(0.5, abs=0.05)
    assert float(out[4.0].std()) < 0.9 * float(out[1.0].std())                     # sharper (less diverse)
    assert float(out[4.0].mean()) > float(out[1.0].mean()) + 0.1                    # pushed from class 0
    assert float((out[4.0] < 0).float().mean()) <= float((out[1.0] < 0).float().mean())


def test_null_labels_rate_and_errors():
    labels = torch.arange(10).repeat(2000)
    dropped = guidance.null_labels(labels, 10, 0.15, generator=torch.Generator().manual_seed(0))
    share = float((dropped == 10).float().mean())
    assert share == pytest.approx(0.15, abs=0.01)
    kept = dropped != 10
    assert torch.equal(dropped[kept], labels[kept])
    with pytest.raises(ValueError, match="p must"):
        guidance.null_labels(labels, 10, 1.5)
    with pytest.raises(TypeError, match="labels must hold integer"):
        guidance.null_labels(labels.float(), 10, 0.1)


def test_cfg_rejects_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="one shape"):
        guidance.cfg_combine(x, torch.zeros(2, 4), 1.0)
    with pytest.raises(TypeError, match="floating"):
        guidance.cfg_combine(x.long(), x, 1.0)
    with pytest.raises(ValueError, match="w must"):
        guidance.cfg_combine(x, x, float("nan"))
    net = ResidualDenoiser(3, hidden=8, blocks=1, n_classes=2)
    with pytest.raises(ValueError, match="rows"):
        guidance.guided_eps(net, torch.tensor([0, 1, 0]), 1.0, 2)(x, torch.ones(2, dtype=torch.long))
