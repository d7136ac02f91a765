"""Problem definitions, one module per section (``p14_1.py``, ``p14_2.py``, ...).

Each module builds :class:`companion_lib.grading.Problem` objects whose references call the
section's library module, and registers them with ``companion_lib.grading.register``.
"""
