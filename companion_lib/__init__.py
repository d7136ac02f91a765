"""companion_lib: the PyTorch library behind the Chapter 14-15 companion notebooks.

Floors (each imports only from those below):
1. ``settings``, ``_checks``
2. one idea per module: ``data``, ``mixture``, ``divergences``, ``ebm``, ``elbo``, ``vae``, ``training``
3. ``metrics``, ``plots``, ``widgets``
4. ``grading`` (problem registry and ``check``)
"""
__version__ = "0.1.0"
