"""Names that moved out of a module, kept importable from the old one for one release.

A module that lost names declares them in a literal dict ``_MOVED = {"old_name": "new_module.new_name"}``
and sets ``__getattr__ = moved_getattr(__name__, _MOVED)`` (PEP 562). On first use the new module is
imported, a ``DeprecationWarning`` names the new home, and the object itself is returned (never a
copy). This is how the training recipes, which sit above the mathematics (``recipes`` imports ``flows``,
``ddpm``, ``vae``), stay reachable as ``vae.train_vae``, ``flows.fit_digits`` and
``diffusion.fit_digits`` without those modules importing ``recipes`` when they are imported.

These late edges are declared, not hidden: ``companion_lib._layers.DEPRECATED_ALIASES`` lists every
(old module, new module) pair, and ``tests/test_architecture.py`` reads each ``_MOVED`` literal and
fails on a pair the table does not list.
"""
from __future__ import annotations

import importlib
import warnings

__all__ = ["moved_getattr"]


def moved_getattr(old_module: str, moved: dict):
    """A module-level ``__getattr__`` for ``old_module`` (its ``__name__``) that resolves each key of
    ``moved`` to the object at its value, a ``"module.name"`` path inside ``companion_lib``."""
    def __getattr__(name: str):
        if name not in moved:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        module, attr = moved[name].rsplit(".", 1)
        warnings.warn(f"{old_module.rsplit('.', 1)[-1]}.{name} moved to companion_lib.{moved[name]}; the old "
                      "name goes in the next release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("companion_lib." + module), attr)
    return __getattr__
