"""Deprecated: the figures moved to ``companion_lib.viz`` (``viz.common``: image_grid, training_curves;
``viz.ch14``: the Chapter 14 figures). These names stay importable from here for this release; new
code and the lessons import ``from companion_lib.viz import common, ch14, ch15``.
"""
from companion_lib.viz.ch14 import (elbo_bars, elbo_contour, elbo_sweep, em_staircase, energy_and_density,
                                    kl_fits, latent_scatter, mixture_density_1d, samples_vs_density,
                                    score_field, variance_vs_samples)
from companion_lib.viz.common import image_grid, training_curves

__all__ = ["image_grid", "training_curves", "mixture_density_1d", "kl_fits", "energy_and_density",
           "score_field", "samples_vs_density", "elbo_sweep", "elbo_bars", "elbo_contour", "em_staircase",
           "latent_scatter", "variance_vs_samples"]
