"""§14.5 VAE: the estimator terms against torch.distributions, the bounds, the two gradient
estimators against each other and against autograd, training, input validation, the widget."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.distributions import Independent, Normal  # noqa: E402

from companion_lib import data, metrics, recipes, vae  # noqa: E402



@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = vae.VAE(n_dims=10, latent_dims=3, hidden=16).double()
    return m.eval()


@pytest.fixture(scope="module")
def y():
    return torch.rand(6, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_shapes(model, y):
    mu, sig = model.encode(y)
    assert mu.shape == (6, 3) and sig.shape == (6,) and (sig > 0).all()
    md, sd = model.decode(torch.randn(4, 6, 3, dtype=torch.float64))
    assert md.shape == (4, 6, 10) and sd.shape == (4, 6)
    assert model.sample(5, torch.Generator().manual_seed(0)).shape == (5, 10)
    assert vae.log_weights(model, y, 7, torch.Generator().manual_seed(0)).shape == (7, 6)


def test_reparameterize_accepts_both_sigma_shapes_and_sample_axis():
    mu = torch.randn(4, 2, dtype=torch.float64)
    sig = torch.rand(4, dtype=torch.float64) + 0.1
    eps = torch.randn(3, 4, 2, dtype=torch.float64)
    z1 = vae.reparameterize(mu, sig, eps)
    z2 = vae.reparameterize(mu, sig[:, None], eps)
    assert torch.equal(z1, z2) and z1.shape == (3, 4, 2)
    assert torch.allclose(z1[1, 2], mu[2] + sig[2] * eps[1, 2])


def test_log_weights_match_torch_distributions_and_14_13(model, y):
    s = 5
    eps = torch.randn(s, 6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        lw = vae.log_weights(model, y, s, eps=eps)
        mu_e, sig_e = model.encode(y)
        z = mu_e + sig_e[:, None] * eps
        mu_d, sig_d = model.decode(z)
        exact = (Independent(Normal(mu_d, sig_d[..., None].expand_as(mu_d)), 1).log_prob(y)
                 + Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
                 - Independent(Normal(mu_e, sig_e[:, None].expand_as(mu_e)), 1).log_prob(z))
        t = torch.stack([vae.elbo_term(y, mu_d[j], sig_d[j], z[j], mu_e, sig_e) for j in range(s)])
    assert torch.allclose(lw, exact, atol=1e-10)
    # (14.13) drops exactly -(n/2) log 2π, n = 10: the latent constants cancel
    assert torch.allclose(exact - t, torch.full_like(t, -5 * math.log(2 * math.pi)), atol=1e-10)
    assert vae.elbo_constant(10) == pytest.approx(-5 * math.log(2 * math.pi))


def test_sum_reduction_is_s_times_mean(model, y):
    a = vae.elbo_estimate(model, y, 4, torch.Generator().manual_seed(3), reduction="sum")
    b = vae.elbo_estimate(model, y, 4, torch.Generator().manual_seed(3), reduction="mean")
    assert torch.allclose(a, 4 * b)


def test_iwae_between_elbo_and_exact_log_likelihood():
    """d = 1 latent: log p(y) by quadrature over z is the oracle; ELBO ≤ IWAE ≤ log p(y)."""
    torch.manual_seed(4)
    m = vae.VAE(n_dims=3, latent_dims=1, hidden=8).double().eval()
    yy = torch.rand(4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    zg = torch.linspace(-10, 10, 20001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        mu_d, sig_d = m.decode(zg)                                        # (G, 3), (G,)
        lj = vae.log_normal(yy[:, None, :], mu_d[None], sig_d[None]) - 0.5 * zg[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
        log_p = torch.logsumexp(lj, 1) + math.log(zg[1, 0] - zg[0, 0])    # quadrature, (4,)
        elbo, iwae = vae.elbo_and_iwae(m, yy, k=4000, generator=torch.Generator().manual_seed(6), chunk=700)
        _, iwae_big = vae.elbo_and_iwae(m, yy, k=20000, generator=torch.Generator().manual_seed(7))
    assert (iwae >= elbo).all()
    assert (iwae <= log_p + 1e-2).all()      # a bound in expectation; 1e-2 leaves room for MC noise
    assert (elbo < log_p - 1e-3).all()      # the ELBO of an untrained encoder is strictly below
    assert torch.allclose(iwae_big, log_p, atol=2e-2)


def test_reparam_gradient_matches_autograd_and_score_function(model, y):
    """Reparameterised gradients w.r.t. (μ, σ) equal autograd through log_weights for the same ε; the
    score-function estimator has the same mean (within 4.5 standard errors) and larger variance."""
    y0 = y[0]
    g = torch.Generator().manual_seed(8)
    G = vae.encoder_gradients(model, y0, s=3, repeats=2, generator=g, estimator="reparam")
    # oracle: autograd on the same ε, through a leaf (μ, σ)
    g = torch.Generator().manual_seed(8)
    eps = torch.randn((3, 2, 3), generator=g, dtype=torch.float64)
    with torch.no_grad():
        mu0, sig0 = model.encode(y0[None])
    mu = mu0[0].clone().requires_grad_(True)
    sig = sig0[0].clone().requires_grad_(True)
    z = mu + sig * eps[:, 0]
    md, sd = model.decode(z)
    f = (vae.log_normal(y0, md, sd) + vae.log_normal(z, torch.zeros_like(z), torch.ones_like(sd))
         - vae.log_normal(z, mu, sig))
    gm, gs = torch.autograd.grad(f.mean(), (mu, sig))
    assert torch.allclose(G[0], torch.cat([gm, gs[None]]), atol=1e-10)

    R = 4000
    Gr = vae.encoder_gradients(model, y0, 2, R, torch.Generator().manual_seed(9), "reparam")
    Gs = vae.encoder_gradients(model, y0, 2, R, torch.Generator().manual_seed(10), "score")
    zsc = (Gr.mean(0) - Gs.mean(0)) / torch.sqrt(Gr.var(0) / R + Gs.var(0) / R)
    assert zsc.abs().max() < 4.5
    assert Gs.var(0).sum() > 5 * Gr.var(0).sum()


def test_elementwise_bits_per_dim_matches_metrics():
    lp = torch.tensor([-10.0, 30.0, 55.5])
    assert data.dequantized_bits_per_dim(lp, 64).mean().item() == pytest.approx(metrics.bits_per_dim(lp, 64))


def test_training_improves_on_uniform_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(200, 64)).astype(float)
    x[:, :32] = 0.0   # half the pixels are always 0: easy to beat the uniform baseline
    runs = [recipes.train_vae(x[:160], x[160:], latent_dims=2, hidden=16, steps=150, eval_every=50,
                          patience=None, generator=torch.Generator().manual_seed(0), progress=False)
            for _ in range(2)]
    assert runs[0].best_val < math.log2(17)
    assert runs[0].history["val"] == runs[1].history["val"]


@pytest.mark.parametrize("call, match", [
    (lambda: vae.reparameterize(torch.zeros(3, 2), torch.ones(2), torch.zeros(3, 2)), r"\(3,\) or \(3, 1\)"),
    (lambda: vae.reparameterize(torch.zeros(3, 2), -torch.ones(3), torch.zeros(3, 2)), "positive"),
    (lambda: vae.reparameterize(torch.zeros(3, 2), torch.ones(3), torch.zeros(3, 4)), r"eps must have shape"),
    (lambda: vae.reparameterize(torch.zeros(3), torch.ones(3), torch.zeros(3)), "2-D"),
    (lambda: vae.elbo_term(torch.zeros(2, 5), torch.zeros(2, 4), torch.ones(2), torch.zeros(2, 3),
                           torch.zeros(2, 3), torch.ones(2)), r"mu_dec must have shape \(2, 5\)"),
    (lambda: vae.elbo_term(torch.zeros(2, 5), torch.zeros(2, 5), torch.ones(2), torch.zeros(2, 3),
                           torch.zeros(2, 3), torch.tensor([1.0, float("nan")])), "finite"),
    (lambda: vae.elbo_estimate(vae.VAE(4, 2, 8), torch.zeros(3, 5)), r"\(\*, 4\)"),
    (lambda: vae.elbo_estimate(vae.VAE(4, 2, 8), torch.zeros(3, 4), reduction="avg"), "reduction"),
    (lambda: vae.elbo_and_iwae(vae.VAE(4, 2, 8), torch.zeros(3, 4), k=0), "k must be >= 1"),
    (lambda: vae.log_weights("model", torch.zeros(3, 4)), "VAE"),
    (lambda: vae.encoder_gradients(vae.VAE(4, 2, 8), torch.zeros(4), 1, 1, estimator="pathwise"), "estimator"),
    (lambda: vae.VAE(latent_dims=0), "latent_dims"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_latent_widget_update_changes_image():
    from companion_lib import widgets
    torch.manual_seed(0)
    m = vae.VAE(64, 2, 16).eval()
    pts = torch.randn(20, 2)
    ui, update = widgets.latent_explorer_2d(lambda z: m.decode(z)[0], points=pts,
                                            labels=np.arange(20) % 10)
    a, b = update(0.0, 0.0), update(2.0, -2.0)
    plt.close("all")
    assert a.shape == (64,) and not np.allclose(a, b)
    assert ui is not None


# ----------------------------------------------------------------------- the two other decoders
def test_categorical_decoder_is_a_normalised_density_on_the_cells():
    """n = 2 pixels, 3 levels: p(ℓ|z) sums to 1 over all 9 level pairs, and the density of a dequantised
    y is p(ℓ|z)·levels^n (constant on each cell of side 1/levels)."""
    torch.manual_seed(0)
    m = vae.VAE(n_dims=2, latent_dims=2, hidden=8, decoder="categorical", levels=3).double().eval()
    z = torch.randn(1, 2, dtype=torch.float64)
    pairs = torch.tensor([[a, b] for a in range(3) for b in range(3)], dtype=torch.float64)
    with torch.no_grad():
        centre = m.log_likelihood((pairs + 0.5) / 3, z.expand(9, 2))
        corner = m.log_likelihood((pairs + 0.01) / 3, z.expand(9, 2))
    probs = (centre - 2 * math.log(3)).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(centre, corner)                         # constant within a cell
    mean, logits = m.decode(z)
    assert logits.shape == (1, 2, 3) and mean.shape == (1, 2)
    expected = (torch.softmax(logits, -1) * (torch.arange(3.0, dtype=torch.float64) + 0.5) / 3).sum(-1)
    assert torch.allclose(mean, expected)
    assert m.sample(5, torch.Generator().manual_seed(1)).shape == (5, 2)


def test_per_pixel_decoder_matches_torch_distributions():
    torch.manual_seed(1)
    m = vae.VAE(n_dims=5, latent_dims=2, hidden=8, decoder="gaussian_per_pixel").double().eval()
    y = torch.rand(4, 5, dtype=torch.float64)
    z = torch.randn(3, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        mu, sig = m.decode(z)
        got = m.log_likelihood(y, z)
    assert sig.shape == (3, 4, 5)
    assert torch.allclose(got, Independent(Normal(mu, sig), 1).log_prob(y), atol=1e-10)


def test_leave_one_out_baseline_keeps_the_mean_and_cuts_the_variance(model, y):
    R = 4000
    Gr = vae.encoder_gradients(model, y[0], 4, R, torch.Generator().manual_seed(11), "reparam")
    Gs = vae.encoder_gradients(model, y[0], 4, R, torch.Generator().manual_seed(12), "score")
    Gl = vae.encoder_gradients(model, y[0], 4, R, torch.Generator().manual_seed(13), "score_loo")
    zsc = (Gr.mean(0) - Gl.mean(0)) / torch.sqrt(Gr.var(0) / R + Gl.var(0) / R)
    assert zsc.abs().max() < 4.5
    assert Gl.var(0).sum() < Gs.var(0).sum()
    with pytest.raises(ValueError, match="s must be >= 2"):
        vae.encoder_gradients(model, y[0], 1, 2, estimator="score_loo")


def test_negative_elbo_is_the_negated_1413_term_of_log_weights(model, y):
    eps = torch.randn(6, 3, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    with torch.no_grad():
        ours = vae.negative_elbo(model, y, eps)
        exact = vae.log_weights(model, y, 1, eps=eps[None])[0]
    assert ours.shape == (6,)
    assert torch.allclose(-ours + vae.elbo_constant(10), exact, atol=1e-10)


def test_train_vae_with_a_given_model_and_loss_matches_the_library_path():
    """The user-supplied path (model + negative_elbo) and the library path give the same training run
    for the same architecture and seeds: same loss values, same validation curve."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(120, 64)).astype(float)
    kw = dict(latent_dims=2, hidden=16, steps=60, eval_every=20, patience=None, progress=False)
    lib = recipes.train_vae(x[:100], x[100:], generator=torch.Generator().manual_seed(0), **kw)
    torch.manual_seed(5)
    net = vae.VAE(64, 2, 16)
    # the library initialises its own model from the generator; copy those initial weights
    g = torch.Generator().manual_seed(0)
    init_seed = recipes._init_seed(g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        net.load_state_dict(vae.VAE(64, 2, 16).state_dict())
    user = recipes.train_vae(x[:100], x[100:], generator=torch.Generator().manual_seed(0), model=net,
                         negative_elbo=vae.negative_elbo, **kw)
    np.testing.assert_allclose(user.history["val"], lib.history["val"], rtol=1e-5)
    with pytest.raises(TypeError, match="nn.Module"):
        recipes.train_vae(x[:100], x[100:], model="net", negative_elbo=vae.negative_elbo, **kw)


def test_decoder_choice_is_validated():
    with pytest.raises(ValueError, match="decoder must be one of"):
        vae.VAE(decoder="bernoulli")


# ---------------------------------------------------------------- rate, distortion, IWAE_k, amortisation
def test_kl_to_prior_matches_torch_distributions():
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(5, 4, generator=g, dtype=torch.float64)
    sigma = torch.rand(5, generator=g, dtype=torch.float64) + 0.2
    q = Independent(Normal(mu, sigma[:, None].expand_as(mu)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    torch.testing.assert_close(vae.kl_to_prior(mu, sigma), torch.distributions.kl_divergence(q, p))
    with pytest.raises(ValueError, match="sigma"):
        vae.kl_to_prior(mu, sigma[:, None])


def test_rate_plus_distortion_is_minus_the_elbo(model, y):
    """ELBO = −(D + R) (Kingma & Welling 2014, eq. 7): the closed-form KL and (14.12) agree in mean."""
    rate, distortion = vae.rate_distortion(model, y, k=20000, generator=torch.Generator().manual_seed(4))
    elbo = vae.elbo_and_iwae(model, y, k=20000, generator=torch.Generator().manual_seed(5))[0]
    torch.testing.assert_close(-(rate + distortion), elbo, atol=0.05, rtol=0)
    assert (rate >= 0).all()


def test_iwae_bounds_rise_with_k_and_k1_is_the_elbo(model, y):
    lw = vae.sample_log_weights(model, y, 400, torch.Generator().manual_seed(6))
    bounds = vae.iwae_bounds(lw, [1, 10, 400])
    torch.testing.assert_close(bounds[1], lw.mean(0))
    assert (bounds[400] >= bounds[1]).all() and bounds[10].mean() >= bounds[1].mean()
    with pytest.raises(ValueError, match="k"):
        vae.iwae_bounds(lw, [401])


def test_fitted_posterior_beats_the_encoder_and_keeps_the_weights(model, y):
    before = [p.detach().clone() for p in model.parameters()]
    q = vae.fit_posterior(model, y, steps=100, lr=0.05, s=8, generator=torch.Generator().manual_seed(7))
    assert q[0].shape == (6, 3) and q[1].shape == (6,) and (q[1] > 0).all()
    assert all(torch.equal(a, b) and b.requires_grad for a, b in zip(before, model.parameters()))
    enc = vae.elbo_and_iwae(model, y, k=4000, generator=torch.Generator().manual_seed(8))[0]
    fitted = vae.elbo_and_iwae(model, y, k=4000, generator=torch.Generator().manual_seed(8), posterior=q)[0]
    assert fitted.mean() > enc.mean()
    with pytest.raises(ValueError, match="posterior mu"):
        vae.log_weights(model, y, 2, posterior=(q[0][:2], q[1]))


def test_beta_one_trains_the_closed_form_elbo_and_beta_is_validated():
    x = torch.randint(0, 17, (64, 8)).float()
    fit = recipes.train_vae(x, x[:16], latent_dims=2, hidden=8, steps=20, eval_every=10, beta=0.5,
                            generator=torch.Generator().manual_seed(0), progress=False)
    assert fit.steps_run == 20
    with pytest.raises(ValueError, match="beta"):
        vae.make_loss(beta=-1.0)
    with pytest.raises(ValueError, match="beta"):
        vae.make_loss(beta=1.0, negative_elbo=vae.negative_elbo, latent_dims=2)


def test_wrap_networks_gives_the_library_vae_the_same_function(model, y):
    class Nets(torch.nn.Module):             # another module with the text's encode/decode, σ as (..., 1)
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def encode(self, v):
            mu, s = self.inner.encode(v)
            return mu, s[..., None]

        def decode(self, z):
            mu, s = self.inner.decode(z)
            return mu, s[..., None]

    wrapped = vae.wrap_networks(Nets(model), 10, 3)
    eps = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(vae.log_weights(wrapped, y, 3, eps=eps), vae.log_weights(model, y, 3, eps=eps))
    with pytest.raises(TypeError, match="networks"):
        vae.wrap_networks(torch.nn.Linear(2, 2), 10, 3)
