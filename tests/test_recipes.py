"""companion_lib.recipes: the training recipes' old names still resolve to them (with a warning), and
the mathematics modules do not import the recipes (no circle: recipes sit above them)."""
import subprocess
import sys

import pytest

from companion_lib import flows, recipes, vae


@pytest.mark.parametrize("module, old, new", [(flows, "fit_digits", "fit_realnvp_digits"),
                                              (vae, "train_vae", "train_vae")])
def test_old_names_are_the_recipes_with_a_warning(module, old, new):
    with pytest.warns(DeprecationWarning, match=f"recipes.{new}"):
        assert getattr(module, old) is getattr(recipes, new)
    assert old not in module.__all__


def test_the_mathematics_does_not_import_the_recipes():
    code = ("import sys; from companion_lib import flows, vae, diffusion, ddpm, forward_diffusion; "
            "print('companion_lib.recipes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
