"""Figures and widgets, by chapter: the one home of the companion's drawing code.

- ``viz.common``: figures both chapters use (``image_grid``, ``training_curves``);
- ``viz.ch14``: the figures of §14.1–14.5, in section order;
- ``viz.ch15``: the figures of §15.2–15.3 and the scoreboard's bar chart (§15.9);
- ``viz.widgets``: every ipywidgets builder, in section order.

The lessons import ``from companion_lib.viz import common, ch14, ch15, widgets``. Every public function
rejects bad input with a ``ValueError``/``TypeError`` naming the argument. Matplotlib only; no
computation a lesson should show happens here (the lesson computes, viz draws).

What it may import: ``companion_lib._layers``.
"""
from companion_lib.viz import ch14, ch15, common, widgets

__all__ = ["common", "ch14", "ch15", "widgets"]
