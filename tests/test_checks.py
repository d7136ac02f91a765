"""_checks: the argument checks every public function uses; their errors name the argument and what
was expected."""
import numpy as np
import pytest
import torch

from companion_lib import _checks


def test_as_tensor_errors_name_what_was_expected():
    with pytest.raises(ValueError, match=r"x must be 2-D, got shape \(3,\)"):
        _checks.as_tensor([1, 2, 3], "x", ndim=2)
    with pytest.raises(ValueError, match=r"shape \(\*, 2\)"):
        _checks.as_tensor(np.zeros((4, 3)), "x", shape=(None, 2))
    with pytest.raises(ValueError, match="finite"):
        _checks.as_tensor([1.0, float("inf")], "x")
    with pytest.raises(ValueError, match="numeric"):
        _checks.as_tensor(["a", "b"], "x")
    with pytest.raises(ValueError, match="at least 5 rows"):
        _checks.as_tensor(np.zeros((2, 2)), "x", min_rows=5)
    with pytest.raises(ValueError, match=">= 1"):
        _checks.check_int(0, "k", low=1)
    with pytest.raises(ValueError, match="integer"):
        _checks.check_int(1.5, "k")
    with pytest.raises(ValueError, match="> 0"):
        _checks.check_float(0.0, "lr", low=0.0, low_open=True)
    assert _checks.as_tensor(np.arange(3), "x").dtype == torch.float64
