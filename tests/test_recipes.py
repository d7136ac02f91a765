"""companion_lib.recipes: the training recipes sit above the mathematics they train: no module of the
mathematics imports them, and their old homes no longer hold them (one home for each)."""
import subprocess
import sys

from companion_lib import recipes


def test_the_mathematics_does_not_import_the_recipes():
    code = ("import sys; from companion_lib import flows, vae, diffusion, ddpm, forward_diffusion; "
            "print('companion_lib.recipes' in sys.modules, hasattr(flows, 'fit_digits'), "
            "hasattr(vae, 'train_vae'), hasattr(diffusion, 'fit_digits'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 4


def test_the_recipes_are_where_bench_finds_them():
    from companion_lib import bench
    assert set(recipes.__all__) == {"train_vae", "fit_realnvp_digits", "fit_ddpm_digits"}
    assert "recipes" in bench.__dict__ and bench.recipes is recipes
