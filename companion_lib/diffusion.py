"""§15.3 Diffusion models — a façade kept for this release (deprecated: import from the section's module).

The mathematics lives in one module per section of the text, as the lessons are:

* ``forward_diffusion`` (§15.3.1): ``NoiseSchedule``, ``q_sample`` (15.8), ``forward_chain`` (15.7),
  ``terminal_kl``, ``noisy_mixture``;
* ``ddpm`` (§15.3.3): ``posterior_mean_variance``, ``predict_x0``, ``reverse_mean``, ``reverse_variance``,
  ``ddpm_step`` (15.11), ``ddpm_loss`` (15.10), ``timesteps``, ``respace``, ``sample``,
  ``variational_bound``, ``SIGMAS``;
* ``recipes.fit_ddpm_digits``: the digits training recipe (was ``diffusion.fit_digits``; the recipes sit
  above the mathematics, so the old name is not re-exported here: ``recipes`` imports this, not the
  reverse).

Every name below is the same object as in its new module (re-exported, not copied), so
``diffusion.NoiseSchedule is forward_diffusion.NoiseSchedule``.
"""
from __future__ import annotations

from companion_lib.ddpm import (SIGMAS, ddpm_loss, ddpm_step, posterior_mean_variance, predict_x0, respace,
                                reverse_mean, reverse_variance, sample, timesteps, variational_bound)
from companion_lib._moved import moved_getattr
from companion_lib.forward_diffusion import NoiseSchedule, forward_chain, noisy_mixture, q_sample, terminal_kl

__all__ = ["NoiseSchedule", "q_sample", "forward_chain", "terminal_kl", "noisy_mixture",
           "SIGMAS", "posterior_mean_variance", "predict_x0", "reverse_mean", "reverse_variance", "ddpm_step",
           "ddpm_loss", "timesteps", "respace", "sample", "variational_bound"]

#: Names that moved out of this module, importable from here for this release (a DeprecationWarning
#: names the new home); listed in companion_lib._layers.DEPRECATED_ALIASES.
_MOVED = {'fit_digits': 'recipes.fit_ddpm_digits'}
__getattr__ = moved_getattr(__name__, _MOVED)
