"""§14.3 problems: the score of a Gaussian-mixture energy, one Langevin step, the denoising
score-matching loss the lesson trains its energy network with, and the contrastive-divergence loss
it trains another with by maximum likelihood's Monte Carlo gradient."""
import math

import torch

from companion_lib import ebm
from companion_lib.grading.compare import float32_aware
from companion_lib.grading.problems._autograd import compare_loss, loss_and_gradient, without_autograd
from companion_lib.grading.registry import Mistake, Problem, case_seed


def _score_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 143))
    f64 = torch.float64
    cases = [(torch.tensor([[0.0, 0.0], [1.0, -0.5], [-2.0, 3.0]], dtype=f64),
              torch.tensor([0.3, 0.3, 0.4], dtype=f64),
              torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 0.9]], dtype=f64),
              torch.tensor([0.25, 0.15, 0.2], dtype=f64))]
    w = torch.rand(4, generator=g, dtype=f64) + 0.1
    cases.append((torch.randn(30, 2, generator=g, dtype=f64) * 2, w / w.sum(),
                  torch.randn(4, 2, generator=g, dtype=f64) * 1.5,
                  torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=f64)))
    cases.append((torch.randn(5, 2, generator=g, dtype=f64), torch.tensor([1.0], dtype=f64),
                  torch.tensor([[0.5, -0.5]], dtype=f64), torch.tensor([0.7], dtype=f64)))
    return cases


def _wrong_energy_gradient(x, w, m, v):      # returns ∇E (the sign of footnote 3), not −∇E
    return -ebm.gmm_score(x, w, m, v)


def _wrong_unnormalised(x, w, m, v):         # drops the 1/σ_k^d of each Gaussian in r_k(x)
    d = x.shape[1]
    return ebm.gmm_score(x, w * v ** (d / 2), m, v)


def _wrong_no_weights(x, w, m, v):           # forgets the mixing weights ρ_k
    return ebm.gmm_score(x, torch.ones_like(w), m, v)


def _wrong_std(x, w, m, v):                  # divides by σ_k instead of σ_k²
    resp = torch.softmax(torch.log(w) - 0.5 * ((x[:, None] - m[None]) ** 2).sum(-1) / v
                         - torch.log(v) * x.shape[1] / 2, dim=1)
    return torch.einsum("nk,nkd->nd", resp / v.sqrt(), m[None] - x[:, None])


def _wrong_autograd(x, w, m, v):             # the score by autograd: right values, not the closed form asked for
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(ebm.gmm_energy(x, w, m, v).sum(), x)
    return -grad


_GMM_SCORE = Problem(
    id="14.3.gmm_score",
    section="14.3",
    title="Score of a Gaussian-mixture energy",
    statement=("Write gmm_score(x, weights, means, variances) for the energy E(x) = −log Σ_k ρ_k "
               "N(x; μ_k, σ_k² I): x (n, 2), weights (K,), means (K, 2), variances (K,). Return the score "
               "−∇_x E(x) (eq. 15.1), shape (n, 2), in closed form with ordinary tensor operations (no "
               "autograd: the check rejects an answer that records a gradient graph)."),
    kind="function",
    reference=ebm.gmm_score,
    cases=_score_cases,
    harness=without_autograd,
    hint=("Differentiate log Σ_k ρ_k N(x; μ_k, σ_k² I) by the chain rule: the gradient of each Gaussian's "
          "log-density, weighted by how responsible that component is for x (the E-step of §14.1).",
          "The gradient of log N(x; μ_k, σ_k² I) in x points from x to μ_k, divided by a variance. The "
          "responsibilities need each component's full density, normaliser (2πσ_k²)^(−d/2) included: it "
          "differs between components. Compute them from log terms (softmax) so they do not underflow."),
    mistakes=(
        Mistake(_wrong_energy_gradient, "the sign is flipped: this is ∇E; the score is −∇E = ∇ log p, "
                "pointing toward the data."),
        Mistake(_wrong_unnormalised, "the responsibilities drop each Gaussian's normaliser σ_k^(−d): it "
                "differs between components, so it does not cancel."),
        Mistake(_wrong_no_weights, "the mixing weights ρ_k are missing from the responsibilities."),
        Mistake(_wrong_std, "each pull toward μ_k is divided by σ_k, a standard deviation: the gradient "
                "of a Gaussian's log-density divides by the variance σ_k²."),
        Mistake(_wrong_autograd, "the values may be right, but they came from autograd (grad, backward, "
                "torch.func or a library score): this exercise asks you to derive −∇E yourself and write "
                "it with ordinary tensor operations. Autograd is the check of §3, not the answer."),
    ),
    rtol=1e-6, atol=1e-9, compare=float32_aware(1e-6, 1e-9, rtol32=1e-4, atol32=1e-5),
)


def _step_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1431))
    f64 = torch.float64
    cases = []
    for n, eta in ((4, 0.1), (50, 0.01), (7, 0.5)):
        cases.append((torch.randn(n, 2, generator=g, dtype=f64), torch.randn(n, 2, generator=g, dtype=f64) * 3,
                      eta, torch.randn(n, 2, generator=g, dtype=f64)))
    return cases


def _wrong_full_step(x, s, eta, xi):         # η·score instead of (η/2)·score
    return x + eta * s + math.sqrt(eta) * xi


def _wrong_noise_scale(x, s, eta, xi):       # η·ξ instead of √η·ξ
    return x + 0.5 * eta * s + eta * xi


def _wrong_descent_sign(x, s, eta, xi):      # walks down the log-density (treats the score as ∇E)
    return x - 0.5 * eta * s + math.sqrt(eta) * xi


def _wrong_no_noise(x, s, eta, xi):          # plain gradient ascent: finds a mode, never samples
    return x + 0.5 * eta * s


_LANGEVIN_STEP = Problem(
    id="14.3.langevin_step",
    section="14.3",
    title="One step of unadjusted Langevin dynamics",
    statement=("Write langevin_step(x, score, step_size, noise): x, score and noise are (n, 2) tensors "
               "(score = −∇E at x, noise ξ ~ N(0, I) drawn for you), step_size η > 0 a float. Return the "
               "(n, 2) positions after one step of unadjusted Langevin dynamics with step size η."),
    kind="function",
    reference=ebm.langevin_step,
    cases=_step_cases,
    hint=("A Langevin step drifts up the log-density (along the score) and adds Gaussian noise; the two "
          "are balanced so that the target distribution is left unchanged.",
          "With step size η the drift is half of η times the score and the noise has variance η: its "
          "standard deviation is √η."),
    mistakes=(
        Mistake(_wrong_full_step, "the drift is η·score: the Langevin drift is half of that, (η/2)·score."),
        Mistake(_wrong_noise_scale, "the noise is scaled by η: its variance is η, so its scale is √η."),
        Mistake(_wrong_descent_sign, "the step goes down the log-density: the score already is −∇E, add it."),
        Mistake(_wrong_no_noise, "no noise: that is gradient ascent, which finds a mode but never samples."),
    ),
    rtol=1e-9, atol=1e-12, compare=float32_aware(1e-9, 1e-12, rtol32=1e-5, atol32=1e-6),
)


def _energy_weights(seed: int, hidden: int, depth: int) -> dict:
    """The state dict of a float64 2-D ``EnergyMLP`` initialised from ``seed`` (the caller's RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ebm.EnergyMLP(dim=2, hidden=hidden, depth=depth).double()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _energy_net(hidden: int, depth: int, state: dict):
    """The network of ``_energy_weights``, rebuilt from its state dict."""
    net = ebm.EnergyMLP(dim=2, hidden=hidden, depth=depth).double()
    net.load_state_dict(state)
    return net


# --------------------------------------------------------------------------------------------------
# The student's denoising score-matching loss (the lesson trains the energy network with it)
def _dsm_cases(rng=None):
    seed = case_seed(rng, 1432)
    g = torch.Generator().manual_seed(seed)
    cases = []
    for hidden, depth, n, sigma in ((16, 2, 32, 0.1), (8, 3, 10, 0.5)):
        state = _energy_weights(seed + hidden, hidden, depth)
        cases.append((hidden, depth, state, torch.randn(n, 2, generator=g, dtype=torch.float64), sigma, seed + n))
    return cases


def _dsm_harness(fn, hidden, depth, state, x, sigma, seed):
    """Run ``fn(energy_net, x, sigma, generator)`` on an ``EnergyMLP`` with fixed weights; return the loss
    and its gradient with respect to every weight (what training uses)."""
    net = _energy_net(hidden, depth, state)
    loss = fn(net, x, sigma, torch.Generator().manual_seed(seed))
    return loss_and_gradient(loss, net.parameters(), scalar=True)


def _dsm_ref(energy_fn, x, sigma, generator):
    return ebm.dsm_loss(energy_fn, x, sigma, generator=generator)


def _dsm_noise(x, generator):
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def _grad_energy(energy_fn, x_tilde, create_graph=True):
    x_tilde = x_tilde.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(energy_fn(x_tilde).sum(), x_tilde, create_graph=create_graph)
    return g


def _dsm_no_graph(energy_fn, x, sigma, generator):      # the score without create_graph: no gradient in θ
    eps = _dsm_noise(x, generator)
    s = -_grad_energy(energy_fn, x + sigma * eps, create_graph=False)
    return 0.5 * ((sigma * s + eps) ** 2).sum(1).mean()


def _dsm_energy_gradient(energy_fn, x, sigma, generator):  # ∇E where the score −∇E belongs
    eps = _dsm_noise(x, generator)
    s = _grad_energy(energy_fn, x + sigma * eps)
    return 0.5 * ((sigma * s + eps) ** 2).sum(1).mean()


def _dsm_no_sigma(energy_fn, x, sigma, generator):      # ‖s + ε‖²: drops the σ that weights the score
    eps = _dsm_noise(x, generator)
    s = -_grad_energy(energy_fn, x + sigma * eps)
    return 0.5 * ((s + eps) ** 2).sum(1).mean()


def _dsm_clean_point(energy_fn, x, sigma, generator):   # the score at the clean x, not at x̃
    eps = _dsm_noise(x, generator)
    s = -_grad_energy(energy_fn, x)
    return 0.5 * ((sigma * s + eps) ** 2).sum(1).mean()


_DSM_LOSS = Problem(
    id="14.3.dsm_loss",
    section="14.3",
    title="The denoising score-matching loss",
    statement=("Write dsm_loss(energy_fn, x, sigma, generator): energy_fn maps (n, 2) points to (n,) energies "
               "(a network with weights θ); x (n, 2) data; sigma > 0. Draw the noise once as "
               "eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device), perturb the data "
               "to x̃ = x + σ·ε, and return the scalar loss of the section: the batch mean of "
               "½‖σ·s_θ(x̃) + ε‖², where s_θ = −∇_x E_θ by autograd. The loss must stay differentiable in θ "
               "(the check compares the loss and its gradient in every weight, on fixed weights and noise)."),
    kind="function",
    reference=_dsm_ref,
    cases=_dsm_cases,
    harness=_dsm_harness,
    reference_names=("companion_lib.ebm.dsm_loss", "companion_lib.scores.dsm_loss"),
    hint=("The network's score at the noised point should point back to the clean one: the loss compares "
          "σ times the score at x̃ with −ε. The score is itself a gradient (of the energy in x), and "
          "training takes a gradient of the loss, so the first gradient must stay differentiable.",
          "Autograd's grad function gives ∇_x E at every point at once when you differentiate the summed "
          "energies with respect to an x̃ that requires grad; ask it to build a graph of that gradient "
          "(its create_graph option). The score is minus that gradient."),
    mistakes=(
        Mistake(_dsm_no_graph, "right value, but the loss has no gradient in the weights: the score was "
                "computed without a graph (torch.autograd.grad(..., create_graph=True))."),
        Mistake(_dsm_energy_gradient, "the score's sign is flipped: ∇E where the score −∇E belongs."),
        Mistake(_dsm_no_sigma, "‖s + ε‖²: the score must be multiplied by σ before it meets ε."),
        Mistake(_dsm_clean_point, "the score is taken at the clean x: it belongs at the noised x̃ = x + σε."),
    ),
    rtol=1e-6, atol=1e-9, compare=compare_loss(1e-6, 1e-9, grad_rtol=1e-6, grad_atol=1e-9),
)

# --------------------------------------------------------------------------------------------------
# The contrastive-divergence loss (the lesson trains an energy network with it, by persistent chains)
def _cd_cases(rng=None):
    seed = case_seed(rng, 1433)
    g = torch.Generator().manual_seed(seed)
    cases = []
    for hidden, depth, n, m in ((16, 2, 32, 20), (8, 3, 10, 25)):
        state = _energy_weights(seed + hidden, hidden, depth)
        cases.append((hidden, depth, state, torch.randn(n, 2, generator=g, dtype=torch.float64),
                      torch.randn(m, 2, generator=g, dtype=torch.float64) * 1.5,
                      torch.randn(m, 2, generator=g, dtype=torch.float64)))
    return cases


def _cd_harness(fn, hidden, depth, state, x_data, x_start, xi):
    """Run ``fn(energy_net, x_data, x_model)`` on an ``EnergyMLP`` with fixed weights. The model samples
    come from one Langevin step on that network kept in the graph (as a sampler's output can be), so a
    loss that lets the gradient flow back through them is caught. Returns the loss and its gradient."""
    net = _energy_net(hidden, depth, state)
    x_model = ebm.langevin_step(x_start, ebm.score(net, x_start, create_graph=True), 0.2, xi)
    loss = fn(net, x_data, x_model)
    return loss_and_gradient(loss, net.parameters(), scalar=True)


def _cd_swapped(energy_fn, x_data, x_model):        # model − data: descends toward the samples
    return energy_fn(x_model.detach()).mean() - energy_fn(x_data).mean()


def _cd_through_sampler(energy_fn, x_data, x_model):  # no detach: differentiates through the sampler
    return energy_fn(x_data).mean() - energy_fn(x_model).mean()


def _cd_logsumexp(energy_fn, x_data, x_model):      # log Z "estimated" by a log-sum-exp over the samples
    return energy_fn(x_data).mean() + torch.logsumexp(-energy_fn(x_model.detach()), 0)


def _cd_sums(energy_fn, x_data, x_model):           # sums instead of means (n ≠ m: the balance is lost)
    return energy_fn(x_data).sum() - energy_fn(x_model.detach()).sum()


def _cd_no_model_term(energy_fn, x_data, x_model):  # the data term alone: ∇ log Z forgotten
    return energy_fn(x_data).mean()


_CD_LOSS = Problem(
    id="14.3.cd_loss",
    section="14.3",
    title="The contrastive-divergence loss",
    statement=("Write cd_loss(energy_fn, x_data, x_model): energy_fn maps (n, 2) points to (n,) energies E_θ "
               "(a network with weights θ); x_data (n, 2) a batch of data; x_model (m, 2) samples from the model "
               "(m may differ from n; they were produced by a sampler that ran on the same network and may "
               "still carry its graph). Return a scalar tensor whose gradient in θ is the contrastive-divergence "
               "estimate of the gradient of the negative log-likelihood (the expectation under P_θ replaced by "
               "the sample average, the samples held fixed), and whose value is the data's mean energy minus the "
               "samples' mean energy. The check compares the value and its gradient in every weight."),
    kind="function",
    reference=ebm.cd_loss,
    cases=_cd_cases,
    harness=_cd_harness,
    reference_names=("companion_lib.ebm.cd_loss",),
    hint=("The gradient of −log P_θ(x) is ∇_θ E_θ(x) minus the expectation of ∇_θ E_θ under the model "
          "(that is ∇_θ log Z). A loss made of energies has such a gradient if each set enters with the "
          "right sign, averaged.",
          "Lower the data's energy, raise the samples': average each set's energies and subtract. The samples "
          "are constants of this step: cut them off from the graph before the network sees them (a tensor "
          "method does exactly that), or the gradient also runs back through the sampler."),
    mistakes=(
        Mistake(_cd_swapped, "the signs are swapped: this gradient raises the data's energy and lowers the "
                "samples'. The data term enters with +, the model term with −."),
        Mistake(_cd_through_sampler, "right value, but the gradient also flows back through the sampler that "
                "made x_model: the CD estimate treats the samples as fixed (detach them)."),
        Mistake(_cd_logsumexp, "a log-sum-exp over the samples is not log Z (the samples are already drawn "
                "from P_θ, not spread uniformly): ∇_θ log Z is estimated by the plain average of −∇_θ E over "
                "them."),
        Mistake(_cd_sums, "sums instead of means: with n data points and m samples the two terms no longer "
                "balance (the expectations are averages)."),
        Mistake(_cd_no_model_term, "only the data term: that lowers every energy near the data and never "
                "raises the model's, the ∇_θ log Z part of the gradient is missing."),
    ),
    # float32 answers pass: their value and gradient are within float32's precision of these (energies
    # and weights of order 1); every catalogued mistake is orders of magnitude further off
    rtol=1e-6, atol=1e-6, compare=compare_loss(1e-6, 1e-6, grad_rtol=1e-5, grad_atol=1e-6),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_GMM_SCORE, _LANGEVIN_STEP, _DSM_LOSS, _CD_LOSS)
