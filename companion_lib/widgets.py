"""ipywidgets builders the notebooks use: each returns a widget whose callback redraws a figure.

Floor 3. Each builder also works without a browser: calling its ``update``-style function directly
(as the tests and nbval do) draws the same figure, so a lesson never depends on a slider moving.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
