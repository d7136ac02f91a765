"""Names that moved out of a module, kept importable from the old one for a release (floor 0).

``module_getattr(old_module, {"old_name": "new_module.new_name"})`` returns a module-level
``__getattr__`` (PEP 562) that imports the new module on first use, warns with a ``DeprecationWarning``
naming the new home, and returns the object itself (never a copy). It is how the training recipes,
which sit above the mathematics (``recipes`` imports ``flows``, ``ddpm``, ``vae``), stay reachable as
``flows.fit_digits``, ``diffusion.fit_digits`` and ``vae.train_vae`` without those modules importing
``recipes`` (an import circle).
"""
from __future__ import annotations

import importlib
import warnings


def module_getattr(old_module: str, moved: dict):
    """A module ``__getattr__`` for ``old_module`` resolving each key of ``moved`` to its value, a
    ``"module.name"`` path inside ``companion_lib``."""
    def __getattr__(name: str):
        if name not in moved:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        module, attr = moved[name].rsplit(".", 1)
        warnings.warn(f"{old_module.rsplit('.', 1)[-1]}.{name} moved to {moved[name]}; the old name goes in the "
                      "next release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(f"companion_lib.{module}"), attr)
    return __getattr__
