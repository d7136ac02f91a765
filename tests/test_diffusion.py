"""companion_lib.diffusion, the deprecated façade: every name it had is the object of its new module
(forward_diffusion, ddpm). Names added to ddpm since (elbo_weight, ddim_step, …) are not re-exported:
the façade keeps the old names for one release, it does not grow."""
from companion_lib import ddpm, diffusion, forward_diffusion


def test_every_name_is_re_exported_not_copied():
    for name in diffusion.__all__:
        home = forward_diffusion if name in forward_diffusion.__all__ else ddpm
        assert name in home.__all__, name
        assert getattr(diffusion, name) is getattr(home, name), name
    assert set(diffusion.__all__) <= set(forward_diffusion.__all__) | set(ddpm.__all__)
    # the names the façade had when it was made (the lessons of the previous release import these)
    old = {"NoiseSchedule", "q_sample", "forward_chain", "terminal_kl", "noisy_mixture", "posterior_mean_variance",
           "predict_x0", "reverse_mean", "reverse_variance", "ddpm_step", "ddpm_loss", "timesteps", "respace",
           "sample", "variational_bound"}
    assert old <= set(diffusion.__all__), old - set(diffusion.__all__)
