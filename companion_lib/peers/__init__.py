"""Peers: companion_lib side by side with the libraries a student would otherwise use (issue 21).

``python -m companion_lib.bench peers`` runs them (``bench.peers``); nothing here is a student's API,
and the peer libraries are bench-only extras (``pip install -e ".[bench]"`` in a checkout; the test
requirements pin them too). One module per comparison, each with ``comparisons(device, ...) ->
list[Comparison]``:

* ``peers.gmm``: ``mixture.GaussianMixture`` (EM of §14.1) against scikit-learn's ``GaussianMixture``,
  the four covariance types on synthetic data and Pearson's crabs: same iterates, to round-off.
* ``peers.sampling``: ``ddpm.sample`` (ancestral, respaced, DDIM) against a loop over diffusers'
  schedulers with the same ε-network, batch and noise: same samples, to round-off.
* ``peers.flows``: ``flows.RealNVP`` against zuko's ``RealNVP`` (different models): held-out bits/dim
  at equal training steps, and time per step.

**Timing rule** (``peers._harness.measure``, one for all): one warm-up call of each side, then
``repeats`` rounds (5 by default), each round ours then theirs, interleaved, so a slow minute of a
shared machine hits both alike; each side's time is the median of its rounds, the ratio
``median(ours) / median(theirs)`` (> 1: companion_lib slower), its spread the smallest and largest
per-round ratio. Same process, same data and seeds; on the CPU one thread for torch and for NumPy's
BLAS (``bench peers --threads``); on CUDA each call is bracketed by ``torch.cuda.synchronize()``.
Timings are reported, never asserted.

A peer module imports its library inside ``comparisons``, so a missing one raises
``ModuleNotFoundError`` there and ``bench peers`` reports that row as skipped, with the reason.
"""
from __future__ import annotations

from companion_lib.peers._harness import ROW_KEYS, Comparison, measure  # noqa: F401  (the bench's names)

#: Nothing public for a student: the bench imports the harness's names from here and the peer modules by
#: name (``companion_lib.peers.flows``).
__all__: list[str] = []
