"""Which module of ``companion_lib`` may import which: the one table, checked by
``tests/test_architecture.py`` (it reads every import statement of every module, function-local ones
included, and fails on an edge this table does not allow, on a module it does not list, and on any
circle). Nothing here is imported at run time; the test is the only reader.

``LAYERS`` lists the layers bottom to top. A module may import any module on a lower layer; on its
own layer only along an edge listed in ``SAME_LAYER``; never upward. A package named here (``grading``,
``viz``, ``peers``) is one node to the rest of the package: what its submodules import counts as the package's
import, imports among them are its own business (but the test checks they have no circle either).

A new module: add it to the lowest layer whose modules it needs (and any same-layer edge it needs to
``SAME_LAYER``, with a reason); the test fails until it is listed.
"""

#: Layers, bottom to top: (name, modules). ``companion_lib`` is the package's own ``__init__``.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground: run settings, input validation, shipped files",
     ("settings", "_checks", "datasets", "_layers", "_moved", "colab")),
    ("building blocks that several sections share, no section's mathematics",
     ("gaussian", "gaussian_mixture", "nets", "data", "training", "scores", "two_sample", "moments",
      "guidance")),
    ("one section's mathematics per module",
     ("mixture", "divergences", "ebm", "elbo", "vae", "flows", "denoisers", "forward_diffusion", "ddpm",
      "diffusion", "distinguish", "autoregressive")),
    ("looking at results, the training recipes lessons and the scoreboard share, and the peer comparisons "
     "the bench times (``peers``: the sections' modules against scikit-learn, diffusers, zuko)",
     ("metrics", "recipes", "viz", "peers")),
    ("faces of the package: the scoreboard, the autograder, the old names kept for notebooks",
     ("bench", "grading", "grade", "plots", "widgets", "companion_lib")),
)

#: Allowed imports between two modules of one layer: (importer, imported).
SAME_LAYER: frozenset[tuple[str, str]] = frozenset({
    ("settings", "_checks"),               # ``Run`` validates its fields with the shared checks
    ("gaussian_mixture", "gaussian"),      # a mixture of Gaussians is built of Gaussians
    ("elbo", "mixture"),                   # §14.4 uses §14.1's mixture (a later section, an earlier one)
    ("ddpm", "forward_diffusion"),         # the reverse process runs on the forward process's schedule
    ("ddpm", "denoisers"),                 # ... and trains a denoiser
    ("diffusion", "forward_diffusion"),    # ``diffusion``: the façade over the two
    ("diffusion", "ddpm"),
    ("diffusion", "denoisers"),
    ("distinguish", "diffusion"),          # Problem 15.3.2 measures the forward steps
    ("distinguish", "forward_diffusion"),
    ("distinguish", "divergences"),        # ... with §14.2's KL divergence
    ("grade", "grading"),                  # ``python -m companion_lib.grade``: the instructor command's old name
})

#: Names that moved up a layer and stay importable from their old module for one release:
#: (old module, new module). The old module declares them in a literal ``_MOVED`` dict and resolves them
#: lazily on first attribute access (``companion_lib._moved``), so the edge is not an import of the old
#: module; the test reads every ``_MOVED`` literal and fails on a pair not listed here.
DEPRECATED_ALIASES: frozenset[tuple[str, str]] = frozenset({
    ("vae", "recipes"),                    # vae.train_vae -> recipes.train_vae
    ("flows", "recipes"),                  # flows.fit_digits -> recipes.fit_realnvp_digits
    ("diffusion", "recipes"),              # diffusion.fit_digits -> recipes.fit_ddpm_digits
})
