"""Deprecated: the ipywidgets builders moved to ``companion_lib.viz.widgets``. These names stay
importable from here for this release; new code and the lessons import
``from companion_lib.viz import widgets``.
"""
from companion_lib.viz.widgets import (elbo_q_slider, em_stepper, flow_layers, forward_schedule_explorer,
                                       gaussian_overlap, kl_asymmetry, langevin_explorer, latent_explorer_2d)

__all__ = ["em_stepper", "kl_asymmetry", "langevin_explorer", "elbo_q_slider", "latent_explorer_2d",
           "flow_layers", "forward_schedule_explorer", "gaussian_overlap"]
