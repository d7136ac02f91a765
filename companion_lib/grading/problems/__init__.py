"""Problem definitions, one module per section (``p14_1.py``, ``p14_2.py``, ...).

Each module builds :class:`companion_lib.grading.registry.Problem` objects whose references call the
section's library module and lists them in its ``SECTION_PROBLEMS`` tuple; importing a module
registers nothing. ``companion_lib.grading`` registers the problems of every module in
``SECTION_MODULES`` (a new section's module must be added there).
"""
from companion_lib.grading.problems import (p14_1, p14_2, p14_3, p14_4, p14_5, p15_1, p15_2, p15_3_1,
                                            p15_3_2, p15_3_3, p15_3_4, p15_3_5)

SECTION_MODULES = (p14_1, p14_2, p14_3, p14_4, p14_5, p15_1, p15_2, p15_3_1, p15_3_2, p15_3_3, p15_3_4,
                   p15_3_5)
