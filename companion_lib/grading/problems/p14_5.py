"""§14.5 problems: the reparameterised sample, the ELBO term (14.13), the student's encoder/decoder and
loss (trained in the lesson), and the held-out bound of that training run."""
import math

import torch

from companion_lib import vae
from companion_lib.grading.compare import at_most
from companion_lib.grading.problems._autograd import compare_loss, loss_and_gradient
from companion_lib.grading.registry import Mistake, Problem, case_seed


def _reparam_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 145))
    f64 = dict(generator=g, dtype=torch.float64)
    cases = []
    # σ as (n,), n != d; σ as (n, 1); and n == d, where a wrong broadcast of σ (n,) goes unnoticed
    for n, d, col in ((5, 3, False), (4, 2, True), (6, 6, False)):
        mu = torch.randn(n, d, **f64)
        sigma = torch.rand(n, **f64) * 1.5 + 0.1
        eps = torch.randn(n, d, **f64)
        cases.append((mu, sigma[:, None] if col else sigma, eps))
    return cases


def _reparam_ref(mu, sigma, eps):
    return vae.reparameterize(mu, sigma, eps)


def _wrong_variance(mu, sigma, eps):            # scales ε by the variance σ² instead of σ
    s = sigma.reshape(-1, 1)
    return mu + s**2 * eps


def _wrong_broadcast(mu, sigma, eps):           # σ (n,) broadcast along the latent axis, not the rows
    return mu + sigma.reshape(-1) * eps


def _wrong_shared_noise(mu, sigma, eps):        # one ε for every row (the text's z_ij = μ + σ ε_i slip)
    return mu + sigma.reshape(-1, 1) * eps[:1]


def _wrong_log_sigma(mu, sigma, eps):           # treats σ as log σ
    return mu + torch.exp(sigma.reshape(-1, 1)) * eps


_REPARAMETERIZE = Problem(
    id="14.5.reparameterize",
    section="14.5",
    title="A reparameterised sample z = μ + σ·ε",
    statement=("Write reparameterize(mu, sigma, eps): mu (n, d) encoder means, sigma the encoder's scalar "
               "standard deviation per row, of shape (n,) or (n, 1), eps (n, d) standard normal noise. "
               "Return z (n, d), a sample of q(z|x_i) = N(μ_i, σ_i² I_d) for each row i."),
    kind="function",
    reference=_reparam_ref,
    reference_names=("companion_lib.vae.reparameterize",),
    cases=_reparam_cases,
    hint=("A sample of N(μ, σ² I) is the mean plus the standard deviation times standard normal noise; "
          "each row i has its own μ_i, σ_i and ε_i.",
          "σ_i is one number per row: before it multiplies the (n, d) noise it needs a shape that "
          "broadcasts along the latent axis, the same for σ given as (n,) or (n, 1). Test with n = d: a "
          "wrong broadcast is silent there."),
    mistakes=(
        Mistake(_wrong_variance, "ε is scaled by σ², the variance: a sample scales the noise by the "
                "standard deviation σ."),
        Mistake(_wrong_broadcast, "σ of shape (n,) was broadcast along the latent axis (column j got σ_j), "
                "not along the rows: give it shape (n, 1)."),
        Mistake(_wrong_shared_noise, "every row uses the first row's noise: each sample needs its own ε_i."),
        Mistake(_wrong_log_sigma, "σ is treated as log σ (exponentiated): here it already is the "
                "standard deviation."),
    ),
    rtol=1e-6, atol=1e-9,
)


def _elbo_term_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1451))
    f64 = dict(generator=g, dtype=torch.float64)
    cases = []
    for b, n, d, col in ((4, 64, 16, False), (3, 5, 2, True), (7, 10, 3, False)):
        x = torch.rand(b, n, **f64)
        mu_dec = torch.rand(b, n, **f64)
        sigma_dec = torch.rand(b, **f64) * 0.5 + 0.05
        mu_enc = torch.randn(b, d, **f64)
        sigma_enc = torch.rand(b, **f64) * 0.8 + 0.1
        z = mu_enc + sigma_enc[:, None] * torch.randn(b, d, **f64)
        if col:
            sigma_dec, sigma_enc = sigma_dec[:, None], sigma_enc[:, None]
        cases.append((x, mu_dec, sigma_dec, z, mu_enc, sigma_enc))
    return cases


def _elbo_term_ref(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc):
    return vae.elbo_term(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc)


def _col(s):
    return s.reshape(-1)


def _wrong_no_n(x, md, sd, z, me, se):          # log σ_θ² once instead of n times
    sd, se = _col(sd), _col(se)
    d = z.shape[1]
    return -0.5 * (((x - md) ** 2).sum(1) / sd**2 + torch.log(sd**2) + (z**2).sum(1)
                   - ((z - me) ** 2).sum(1) / se**2 - d * torch.log(se**2))


def _wrong_q_sign(x, md, sd, z, me, se):        # adds log q instead of subtracting it
    sd, se = _col(sd), _col(se)
    n, d = x.shape[1], z.shape[1]
    return -0.5 * (((x - md) ** 2).sum(1) / sd**2 + n * torch.log(sd**2) + (z**2).sum(1)
                   + ((z - me) ** 2).sum(1) / se**2 + d * torch.log(se**2))


def _wrong_sigma_not_squared(x, md, sd, z, me, se):   # divides by σ where σ² belongs
    sd, se = _col(sd), _col(se)
    n, d = x.shape[1], z.shape[1]
    return -0.5 * (((x - md) ** 2).sum(1) / sd + n * torch.log(sd**2) + (z**2).sum(1)
                   - ((z - me) ** 2).sum(1) / se - d * torch.log(se**2))


def _wrong_with_constant(x, md, sd, z, me, se):  # keeps the −(n/2) log 2π the text drops
    return vae.elbo_term(x, md, sd, z, me, se) + vae.elbo_constant(x.shape[1])


def _wrong_no_prior(x, md, sd, z, me, se):       # forgets log p(z)
    return vae.elbo_term(x, md, sd, z, me, se) + 0.5 * (z**2).sum(1)


_ELBO_TERM = Problem(
    id="14.5.elbo_term",
    section="14.5",
    title="One term of the ELBO estimate, eq. (14.13)",
    statement=("Write elbo_term(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc) for a batch of b rows: x (b, n) "
               "data, mu_dec = μ_θ(z) (b, n), sigma_dec = σ_θ(z) of shape (b,) or (b, 1), z (b, d), "
               "mu_enc = μ_φ(x) (b, d), sigma_enc = σ_φ(x) of shape (b,) or (b, 1). Return the (b,) values "
               "of log p(x|z) + log p(z) − log q(z|x) written out as in (14.13), constants dropped."),
    kind="function",
    reference=_elbo_term_ref,
    reference_names=("companion_lib.vae.elbo_term",),
    cases=_elbo_term_cases,
    hint=("(14.13) is three isotropic Gaussian log-densities: the decoder's at x, the prior's at z, and "
          "minus the encoder's at z; the constants log 2π are dropped.",
          "An isotropic Gaussian log-density in D dimensions has a squared distance over the variance and "
          "D times the log-variance: D is n for the decoder and d for the prior and the encoder. The "
          "prior is the standard normal."),
    mistakes=(
        Mistake(_wrong_no_n, "log σ_θ² counted once: the decoder's density has n coordinates, so n log σ_θ²."),
        Mistake(_wrong_q_sign, "log q(z|x) is added: the ELBO subtracts it."),
        Mistake(_wrong_sigma_not_squared, "the squared distances are divided by σ, not by the variance σ²."),
        Mistake(_wrong_with_constant, "the −(n/2) log 2π is kept: (14.13) drops the constants."),
        Mistake(_wrong_no_prior, "log p(z) is missing (the standard normal prior's −½‖z‖²)."),
    ),
    rtol=1e-6, atol=1e-8,
)


# --------------------------------------------------------------------------------------------------
# The student builds the VAE: its networks, its loss, and a short training run
def _state(n, d, h, seed):
    """The weights of a reference ``vae.VAE(n, d, h)`` (float64), seeded, as a plain state dict."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = vae.VAE(n, d, h).double()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _sizes(state):
    h, n = state["encoder.0.weight"].shape
    return n, state["decoder.0.weight"].shape[1], h


# Exercise 3 states a contract (shapes, what each output means), not an architecture: the harness
# builds the student's class, runs it, and reports each clause of the contract as 1.0 (kept) or 0.0.
_CONTRACT = {
    "encode_shapes": "encode(y) with y of shape (b, n) must return μ_φ of shape (b, d) and σ_φ of shape (b,)",
    "decode_shapes": "decode(z) with z of shape (..., d) must return μ_θ of shape (..., n) and σ_θ of shape "
                     "(...,), for any leading shape of z (here (2, 4, d))",
    "finite": "encode and decode must return finite numbers on ordinary inputs",
    "sigma_positive": "σ_φ and σ_θ are standard deviations: every value must be > 0",
    "mean_in_unit": "μ_θ is the mean of pixels in [0, 1): every value must lie in [0, 1], also for large z",
    "rowwise": "each row's outputs must depend on that row alone (the same as encoding or decoding it "
               "on its own)",
    "depends_on_input": "the outputs must depend on the input: two different images gave the same μ_φ, "
                        "or two different codes the same μ_θ",
    "trainable": "gradients must reach the module's parameters from all four outputs (μ_φ, σ_φ, μ_θ, σ_θ): "
                 "is one of them a constant or detached?",
}


def _net_cases(rng=None):
    seed = case_seed(rng, 1452)
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    return [(n, d, h, torch.rand(b, n, **f64), torch.randn(*zshape, **f64), seed + n)
            for n, d, h, b, zshape in ((64, 16, 32, 5, (2, 4, 16)), (10, 3, 8, 4, (2, 4, 3)))]


def _ok(flag) -> torch.Tensor:
    return torch.tensor(1.0 if bool(flag) else 0.0, dtype=torch.float64)


def _net_harness(cls, n, d, h, y, z, seed):
    """Build ``cls(n, d, h)`` (weights seeded), run encode and decode, and report each clause of the
    contract (``_CONTRACT``) as 1.0 or 0.0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(n, d, h)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the class must build a torch.nn.Module, got {type(model).__name__}")
    model = model.double()
    params = [p for p in model.parameters() if p.requires_grad]
    b, zb = y.shape[0], z.shape[:-1]
    mu_e, s_e = model.encode(y)
    mu_d, s_d = model.decode(z)
    outs = (mu_e, s_e, mu_d, s_d)
    if not all(isinstance(t, torch.Tensor) for t in outs):
        raise TypeError("encode and decode must each return a pair of tensors (mean, standard deviation)")
    enc_shapes = tuple(mu_e.shape) == (b, d) and tuple(s_e.shape) in ((b,), (b, 1))
    dec_shapes = tuple(mu_d.shape) == (*zb, n) and tuple(s_d.shape) in (tuple(zb), (*zb, 1))
    report = {"encode_shapes": _ok(enc_shapes), "decode_shapes": _ok(dec_shapes)}
    finite = all(bool(torch.isfinite(t).all()) for t in outs)
    report["finite"] = _ok(finite)
    report["sigma_positive"] = _ok(finite and bool((s_e > 0).all()) and bool((s_d > 0).all()))
    with torch.no_grad():
        mu_far = model.decode(40 * z)[0]
    report["mean_in_unit"] = _ok(finite and bool(((mu_d >= 0) & (mu_d <= 1)).all())
                                 and bool(((mu_far >= 0) & (mu_far <= 1)).all()))
    rowwise = enc_shapes and dec_shapes
    if rowwise:
        with torch.no_grad():
            one_e = [model.encode(y[i:i + 1]) for i in range(2)]
            one_d = model.decode(z[0, :2])
        rowwise = (all(torch.allclose(m[0], mu_e[i], rtol=1e-7, atol=1e-9)
                       and torch.allclose(sg.reshape(-1)[0], s_e.reshape(b)[i], rtol=1e-7, atol=1e-9)
                       for i, (m, sg) in enumerate(one_e))
                   and torch.allclose(one_d[0], mu_d[0, :2], rtol=1e-7, atol=1e-9))
    report["rowwise"] = _ok(rowwise)
    report["depends_on_input"] = _ok(enc_shapes and dec_shapes and not torch.allclose(mu_e[0], mu_e[1])
                                     and not torch.allclose(mu_d[0, 0], mu_d[0, 1]))
    reached = []
    for t in outs:
        if not t.requires_grad or not params:
            reached.append(False)
            continue
        grads = torch.autograd.grad(t.sum(), params, retain_graph=True, allow_unused=True)
        reached.append(any(g is not None and bool((g != 0).any()) for g in grads))
    report["trainable"] = _ok(all(reached))
    return report


def _net_compare(expected, got):
    """Name the first clause of the contract the answer breaks (the reference keeps them all)."""
    if not isinstance(got, dict) or set(got) != set(_CONTRACT):
        return "could not read the answer's report"
    broken = [key for key in _CONTRACT if float(got[key]) != float(expected[key])]
    return None if not broken else _CONTRACT[broken[0]]


class _Nets(torch.nn.Module):
    """A configurable wrong module: two SiLU MLPs, outputs split as the contract asks unless told."""

    sigma, mean, enc_sigma = torch.exp, torch.sigmoid, torch.exp

    def __init__(self, n_dims, latent_dims, hidden):
        super().__init__()

        def net(a, b):
            return torch.nn.Sequential(torch.nn.Linear(a, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
                                       torch.nn.SiLU(), torch.nn.Linear(hidden, b))
        self.encoder, self.decoder = net(n_dims, latent_dims + 1), net(latent_dims, n_dims + 1)

    def encode(self, y):
        out = self.encoder(y)
        return out[..., :-1], type(self).enc_sigma(out[..., -1])

    def decode(self, z):
        out = self.decoder(z)
        return type(self).mean(out[..., :-1]), type(self).sigma(out[..., -1])


class _WrongRawSigma(_Nets):                   # the last output used as σ itself (no exp): can be negative
    sigma = enc_sigma = staticmethod(lambda t: t)


class _WrongNoSigmoid(_Nets):                  # decoder mean left unsquashed
    mean = staticmethod(lambda t: t)


class _WrongConstantSigma(_Nets):              # σ_θ fixed to 1: not an output of the network
    sigma = staticmethod(lambda t: torch.ones_like(t))


class _WrongNoSplit(_Nets):                    # encode returns all d + 1 outputs as the mean
    def encode(self, y):
        out = self.encoder(y)
        return out, torch.exp(out[..., -1])


class _WrongFlatDecode(_Nets):                 # decode flattens the batch: (2, 4, d) -> (8, n)
    def decode(self, z):
        return super().decode(z.reshape(-1, z.shape[-1]))


_VAE_NETWORKS = Problem(
    id="14.5.vae_networks",
    section="14.5",
    title="The encoder and decoder of eqs. (14.10)–(14.11)",
    statement=("Write a torch.nn.Module class built as Cls(n_dims, latent_dims, hidden), hidden being the width "
               "of its hidden layers; the architecture is yours. Its contract: encode(y) with y (b, n) returns "
               "(μ_φ (b, d), σ_φ (b,)), the mean and the standard deviation of q_φ(z|y) = N(μ_φ, σ_φ² I_d), "
               "σ_φ > 0; decode(z) with z (..., d), any leading shape, returns (μ_θ (..., n), σ_θ (...,)), "
               "the mean and standard deviation of p_θ(y|z) = N(μ_θ, σ_θ² I_n), with μ_θ in [0, 1] (the "
               "pixels lie in [0, 1)) and σ_θ > 0. Each row's outputs depend on that row alone and on its "
               "values, and all four outputs are learned: gradients reach the module's parameters from each. "
               "The check builds your class at two sizes (n = 64, d = 16, hidden 32; n = 10, d = 3, hidden 8), "
               "in float64, and tests exactly these clauses, on ordinary inputs and on large z."),
    kind="function",
    reference=vae.VAE,
    cases=_net_cases,
    harness=_net_harness,
    compare=_net_compare,
    reference_names=("companion_lib.vae.VAE", "companion_lib.vae.wrap_networks"),
    hint=("Two small networks (a multilayer perceptron each) with one output more than the mean needs: "
          "the extra output, made positive, is the standard deviation.",
          "A Linear–SiLU–Linear–SiLU–Linear stack of width hidden works. Split the last output from the "
          "others along the last axis; exp makes it a positive σ; a sigmoid keeps the decoder's mean in "
          "[0, 1]. Indexing with ... keeps any leading shape."),
    mistakes=(
        Mistake(_WrongRawSigma, "is the network's raw output used as σ? It can be negative: make it "
                "positive (exp of it, for instance)."),
        Mistake(_WrongNoSigmoid, "the decoder's mean is left unsquashed: the pixels live in [0, 1)."),
        Mistake(_WrongConstantSigma, "σ_θ is a constant (ones): in (14.11) it is an output of the decoder, "
                "learned with the rest."),
        Mistake(_WrongNoSplit, "the encoder returns all its outputs as μ_φ: the last one is for σ_φ, split "
                "it off."),
        Mistake(_WrongFlatDecode, "decode flattens the leading dimensions of z: keep them (the lesson decodes "
                "(s, b, d) samples at once)."),
    ),
)


def _neg_elbo_cases(rng=None):
    seed = case_seed(rng, 1453)
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    cases = []
    for n, d, h, b in ((64, 16, 32, 6), (10, 3, 8, 4)):
        cases.append((_state(n, d, h, seed + d), torch.rand(b, n, **f64), torch.randn(b, d, **f64)))
    return cases


def _neg_elbo_harness(fn, state, y, eps):
    """Run ``fn(model, y, eps)`` on a reference ``vae.VAE`` holding the fixed weights; the values and
    the gradient of their sum in every weight (what training uses)."""
    model = vae.VAE(*_sizes(state)).double()
    model.load_state_dict(state)
    return loss_and_gradient(fn(model, y, eps), model.parameters())


def _neg_elbo_sign(model, y, eps):             # returns the ELBO term, not its negative
    return -vae.negative_elbo(model, y, eps)


def _neg_elbo_variance(model, y, eps):         # z = μ + σ²·ε
    mu, s = model.encode(y)
    z = mu + s[:, None] ** 2 * eps
    return -vae.elbo_term(y, *model.decode(z), z, mu, s)


def _neg_elbo_no_sample(model, y, eps):        # decodes the encoder mean: no sample, no reparameterisation
    mu, s = model.encode(y)
    return -vae.elbo_term(y, *model.decode(mu), mu, mu, s)


def _neg_elbo_no_q(model, y, eps):             # forgets −log q(z|y): the objective then collapses σ_φ
    mu, s = model.encode(y)
    z = mu + s[:, None] * eps
    d = z.shape[1]
    return vae.negative_elbo(model, y, eps) - 0.5 * (((z - mu) ** 2).sum(1) / s**2 + d * torch.log(s**2))


def _neg_elbo_no_grad(model, y, eps):          # right values, computed under torch.no_grad()
    with torch.no_grad():
        return vae.negative_elbo(model, y, eps)


def _neg_elbo_detached_sample(model, y, eps):  # z built from .detach()-ed μ, σ: no reparameterisation gradient
    mu, s = model.encode(y)
    z = (mu + s[:, None] * eps).detach()
    return -vae.elbo_term(y, *model.decode(z), z, mu, s)


def _neg_elbo_closed_form_kl(model, y, eps):  # Kingma & Welling's estimator: reconstruction + closed-form KL
    mu, s = model.encode(y)
    z = mu + s[:, None] * eps
    md, sd = model.decode(z)
    n = y.shape[1]
    return 0.5 * (((y - md) ** 2).sum(1) / sd**2 + n * torch.log(sd**2)) + vae.kl_to_prior(mu, s)


def _neg_elbo_closed_form_kl_2pi(model, y, eps):  # the same, with the decoder's log 2π kept
    return _neg_elbo_closed_form_kl(model, y, eps) - vae.elbo_constant(y.shape[1])


_KW_MESSAGE = ("this is Kingma & Welling's other estimator: reconstruction minus the KL in closed form. It "
               "has the same mean as −(14.13) (a correct ELBO estimate; the lesson compares the two after "
               "this exercise), but this exercise asks for (14.13) itself: log p(z) − log q(z|y) evaluated at the "
               "sample.")

_NEGATIVE_ELBO = Problem(
    id="14.5.negative_elbo",
    section="14.5",
    title="The VAE's loss: −(14.13) for a batch, one reparameterised sample each",
    statement=("Write negative_elbo(model, y, eps): model has encode(y) → (μ_φ (b, d), σ_φ (b,)) and "
               "decode(z) → (μ_θ (b, n), σ_θ (b,)); y (b, n) dequantised images; eps (b, d) standard normal "
               "noise. Draw each image's latent sample from q_φ(z|y_i) with the reparameterisation trick, "
               "using eps, decode it, and return the (b,) values of minus the summand (14.13) (constants "
               "dropped, as in the text): all three log-densities, the prior's and the encoder's included, "
               "evaluated at that sample (not the KL in closed form, which is another estimator with the same "
               "mean). The check uses the reference networks with fixed weights, in float64."),
    kind="function",
    reference=vae.negative_elbo,
    cases=_neg_elbo_cases,
    harness=_neg_elbo_harness,
    reference_names=("companion_lib.vae.negative_elbo", "companion_lib.vae.log_weights"),
    hint=("Encode, sample a latent with the reparameterisation trick, decode, and score the result with "
          "(14.13); a loss is minimised, the ELBO maximised. The gradient must reach the encoder through "
          "the sample.",
          "Your reparameterize and elbo_term from Exercises 1 and 2 do most of the work, with the "
          "encoder's σ as the sample's scale and the decoder's outputs at the sample; the loss is minus "
          "the term, and nothing in it may be detached."),
    mistakes=(
        Mistake(_neg_elbo_sign, "the sign: this is the ELBO term; the loss to minimise is its negative."),
        Mistake(_neg_elbo_variance, "the sample is μ + σ²ε: the reparameterisation scales ε by σ."),
        Mistake(_neg_elbo_no_sample, "the decoder gets the encoder's mean, not a sample: use eps."),
        Mistake(_neg_elbo_no_q, "−log q(z|y) is missing: without it the encoder's σ collapses."),
        Mistake(_neg_elbo_no_grad, "right values, but the loss has no gradient: computed under "
                "torch.no_grad() (or from .detach()-ed outputs)? Training would not move the networks."),
        Mistake(_neg_elbo_detached_sample, "right values, but the sample z is detached: the "
                "reparameterisation trick exists so that the gradient reaches the encoder through z."),
        Mistake(_neg_elbo_closed_form_kl, _KW_MESSAGE),
        Mistake(_neg_elbo_closed_form_kl_2pi, _KW_MESSAGE + " (The decoder's −(n/2) log 2π is kept here too: "
                "(14.13) drops it.)"),
    ),
    rtol=1e-6, atol=1e-8, compare=compare_loss(1e-6, 1e-8, grad_rtol=1e-6, grad_atol=1e-8),
)

def _number(value) -> float:
    """The one number a value answer holds (NaN when it is not one), for the mistakes' predicates."""
    try:
        return float(torch.as_tensor(value, dtype=torch.float64).reshape(()))
    except (TypeError, ValueError, RuntimeError):
        return math.nan


#: Pass mark of the short training run (held-out −ELBO, bits/dim, on ``data.heldout_digits()``).
TRAINED_BOUND_MARK = 3.45

_TRAINED_BOUND = Problem(
    id="14.5.trained_bound",
    section="14.5",
    title="A short training run of your VAE reaches a held-out bound",
    statement=("Train your networks with your negative_elbo (the lesson's cell does it: quick budget, early "
               "stopping on the validation split) and hand in the held-out negative ELBO in bits/dim on "
               f"data.heldout_digits(). Pass: at most {TRAINED_BOUND_MARK} bits/dim (uniform over 17 levels: "
               "4.09). The test-suite checks that the reference code reaches the mark with the same budget."),
    kind="value",
    reference=lambda: TRAINED_BOUND_MARK,
    compare=at_most(0.0),
    value_range=(0.0, None),
    self_reported=True,
    hint=("A bound far above the mark usually comes from the loss the networks were trained with, not "
          "from too few steps: recheck Exercises 3 and 4.",
          "Check the sign of your loss, that the sample scales ε by σ_φ (not σ_φ²), and that −log q(z|y) "
          "is in the loss; then that the number handed in is the held-out bound in bits per dimension."),
    mistakes=(
        Mistake(-1.0, "a bits/dim cannot be negative: did you hand in the ELBO (or its log-likelihood "
                "scale) instead of the negative ELBO in bits per dimension?", matches=lambda v: _number(v) < 0),
        Mistake(math.log2(17), "that is no better than the uniform distribution over 17 levels "
                "(log2 17 = 4.09 bits/dim): the networks did not learn; check the sign of your loss.",
                matches=lambda v: abs(_number(v) - math.log2(17)) < 0.02),
        Mistake(64 * 3.9, "far above any model's bits/dim: is it the negative ELBO per image? Divide by "
                "the 64 dimensions (and by ln 2 if it is in nats).", matches=lambda v: _number(v) > 8),
        Mistake(3.9, "above the mark: the usual cause is the loss (Exercise 4: sign, σ_φ vs σ_φ², "
                "−log q) rather than the budget.", matches=lambda v: TRAINED_BOUND_MARK < _number(v) <= 8),
    ),
    wrong_answers=(float("nan"),),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_REPARAMETERIZE, _ELBO_TERM, _VAE_NETWORKS, _NEGATIVE_ELBO, _TRAINED_BOUND)
