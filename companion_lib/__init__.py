"""companion_lib: the PyTorch library behind the Chapter 14-15 companion notebooks.

Which module may import which: the table in ``companion_lib._layers`` (``tests/test_architecture.py``
checks every import against it).
"""
__version__ = "0.2.0"
