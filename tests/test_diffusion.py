"""companion_lib.diffusion, the deprecated façade: every name is the object of its new module
(forward_diffusion, ddpm), and the moved recipe resolves to recipes with a DeprecationWarning."""
import pytest

from companion_lib import ddpm, diffusion, forward_diffusion, recipes


def test_every_name_is_re_exported_not_copied():
    for name in diffusion.__all__:
        home = forward_diffusion if name in forward_diffusion.__all__ else ddpm
        assert name in home.__all__, name
        assert getattr(diffusion, name) is getattr(home, name), name
    assert set(diffusion.__all__) == set(forward_diffusion.__all__) | set(ddpm.__all__)


def test_the_recipe_moved_with_a_warning():
    with pytest.warns(DeprecationWarning, match="recipes.fit_ddpm_digits"):
        assert diffusion.fit_digits is recipes.fit_ddpm_digits
    with pytest.raises(AttributeError, match="no attribute 'fit_digitz'"):
        diffusion.fit_digitz
