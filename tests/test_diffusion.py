"""companion_lib.diffusion, the deprecated façade: every name is the object of its new module
(forward_diffusion, ddpm)."""
from companion_lib import ddpm, diffusion, forward_diffusion


def test_every_name_is_re_exported_not_copied():
    for name in diffusion.__all__:
        home = forward_diffusion if name in forward_diffusion.__all__ else ddpm
        assert name in home.__all__, name
        assert getattr(diffusion, name) is getattr(home, name), name
    assert set(diffusion.__all__) == set(forward_diffusion.__all__) | set(ddpm.__all__)
