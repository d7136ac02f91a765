"""companion_lib.viz: every figure draws on valid input (NumPy or tensors), every public function
rejects bad input with a ValueError/TypeError naming the argument, the widgets redraw when a slider
moves, and the deprecated homes (plots, widgets, bench.bar_chart) still hand out the same functions."""
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from companion_lib import data, mixture, viz  # noqa: E402
from companion_lib.viz import ch14, ch15, common, widgets  # noqa: E402

NAN = float("nan")
RNG = np.random.default_rng(0)
IMGS = RNG.random((10, 64))
C = np.linspace(-2, 2, 9)
LOGP = -0.5 * (C[None] ** 2 + C[:, None] ** 2)
PTS = RNG.normal(size=(20, 2))
HISTORY = {"step": [1, 2, 3], "train": [1.0, 0.6, 0.5], "val": [1.1, 0.7, 0.8]}
TRACE = {"log_lik": np.array([-3.0, -2.0, -2.0, -1.5, -1.5]), "elbo": np.array([-3.5, -2.0, -2.4, -1.5, -1.6])}
Q1 = np.linspace(0, 1, 11)
ELBO_Q = -1 - (Q1 - 0.3) ** 2
ROWS = [dict(model="uniform", bits_per_dim=4.09, bound="exact", confident_share=0.1),
        dict(model="real held-out digits", bits_per_dim=None, bound=None, confident_share=0.95),
        dict(model="ddpm", bits_per_dim=1.5, bound="upper", confident_share=0.7)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _ax():
    return plt.subplots()[1]


# ---------------------------------------------------------------- valid input draws
VALID = {
    "common.image_grid": lambda: common.image_grid(IMGS, nrow=5),
    "common.training_curves": lambda: common.training_curves(HISTORY, title="t"),
    "ch14.mixture_density_1d": lambda: ch14.mixture_density_1d(_ax(), C, [0.4, 0.6], [[-1.0], [1.0]], [[[0.5]], [[0.8]]]),
    "ch14.kl_fits": lambda: ch14.kl_fits(C, -0.5 * C ** 2, {"a": (0.0, 1.0), "b": (0.5, 0.2)}),
    "ch14.energy_and_density": lambda: ch14.energy_and_density(C, -LOGP, LOGP, title="E"),
    "ch14.score_field": lambda: ch14.score_field(C, LOGP, PTS, -PTS),
    "ch14.samples_vs_density": lambda: ch14.samples_vs_density(C, LOGP, PTS, data=PTS + 0.1),
    "ch14.elbo_sweep": lambda: ch14.elbo_sweep(Q1, -1.0, ELBO_Q, q_post=0.3, q_now=0.5),
    "ch14.elbo_bars": lambda: ch14.elbo_bars(-1.0, -1.2, title="bars"),
    "ch14.elbo_contour": lambda: ch14.elbo_contour(C, C[:5], -np.abs(C[None] + C[:5, None]), post=(0.0, 0.0)),
    "ch14.em_staircase": lambda: ch14.em_staircase(TRACE, zoom_from=2, optimum=-1.4),
    "ch14.latent_scatter": lambda: ch14.latent_scatter(PTS, np.arange(20) % 3),
    "ch14.variance_vs_samples": lambda: ch14.variance_vs_samples([1, 2, 4], {"score": [4.0, 2.0, 1.0]}),
    "ch15.binned_densities": lambda: ch15.binned_densities([np.ones((4, 4)) / 16, np.eye(4) / 4], 2.0, ["a", "b"]),
    "ch15.point_clouds": lambda: ch15.point_clouds([PTS, PTS * 2], ["a", "b"], 3.0, background=PTS, colors=PTS[:, 0]),
    "ch15.bar_chart": lambda: ch15.bar_chart(ROWS, title="board"),
}


def test_every_public_function_has_a_valid_call():
    public = {f"{m}.{n}" for m in ("common", "ch14", "ch15") for n in getattr(viz, m).__all__}
    assert public == set(VALID)
    assert set(viz.__all__) == {"common", "ch14", "ch15", "widgets"}
    for m in (common, ch14, ch15, widgets):
        assert all(callable(getattr(m, n)) for n in m.__all__)


@pytest.mark.parametrize("name", sorted(VALID))
def test_draws_on_valid_input(name):
    out = VALID[name]()
    axes = out.axes if isinstance(out, Figure) else np.ravel(np.asarray(out, dtype=object))
    drawn = sum(len(a.lines) + len(a.collections) + len(a.patches) + len(a.images) for a in axes)
    assert drawn > 0, f"{name} drew nothing"


def test_image_grid_layout_tensor_and_numpy_alike():
    ax = common.image_grid(IMGS, nrow=5)
    img = ax.get_images()[0].get_array()
    assert img.shape == (2 * 9 - 1, 5 * 9 - 1)
    ax2 = common.image_grid(torch.tensor(IMGS, dtype=torch.float32).reshape(10, 8, 8), nrow=5)
    np.testing.assert_allclose(ax2.get_images()[0].get_array(), img, atol=1e-6)
    assert np.isclose(img[0, 0], IMGS[0, 0]) and np.ma.is_masked(img[8, 0]) or np.isnan(img.data[8, 0])


def test_image_grid_layout_and_errors():
    ax = common.image_grid(np.random.default_rng(0).random((10, 64)), nrow=5)
    img = ax.get_images()[0].get_array()
    assert img.shape == (2 * 9 - 1, 5 * 9 - 1)
    with pytest.raises(ValueError, match="64"):
        common.image_grid(np.zeros((3, 10)))


def test_training_curves_marks_the_best_validation_step_and_allows_nan_val():
    ax = common.training_curves(HISTORY)
    assert any("best (step 2)" in t.get_text() for t in ax.get_legend().get_texts())
    ax = common.training_curves({"step": [1, 2], "train": [1.0, 0.5], "val": [NAN, NAN]})
    assert len(ax.lines) == 1                                          # no validation curve, no best line


def test_bar_chart_hatches_upper_bounds_and_greys_the_real_digits():
    fig = ch15.bar_chart(ROWS, reference="real held-out digits")
    ax1, ax2 = fig.axes
    assert [p.get_hatch() for p in ax1.patches] == [None, "//"]        # uniform exact, ddpm an upper bound
    grey = matplotlib.colors.to_rgba("C7")
    assert sum(p.get_facecolor() == grey for p in ax2.patches) == 1


def test_point_clouds_and_binned_densities_share_limits_and_scale():
    axes = ch15.point_clouds([PTS, PTS], ["a", "b"], 3.0, background=PTS)
    assert axes[1].get_xlim() == (-3.0, 3.0) and len(axes[0].collections) == 2
    axes = ch15.binned_densities([np.eye(4) / 4, np.ones((4, 4))], 2.0, ["a", "b"])
    assert all(a.get_images()[0].get_clim()[1] == pytest.approx(0.275) for a in axes)   # 1.1 × first max


# ---------------------------------------------------------------- bad input: ValueError/TypeError naming it
BAD = {
    "image_grid None": (lambda: common.image_grid(None), "images"),
    "image_grid NaN": (lambda: common.image_grid(np.full((2, 64), NAN)), "images"),
    "image_grid 1-D": (lambda: common.image_grid(np.zeros(64)), "images"),
    "image_grid empty": (lambda: common.image_grid(np.zeros((0, 64))), "images"),
    "image_grid nrow": (lambda: common.image_grid(IMGS, nrow=0), "nrow"),
    "image_grid nrow float": (lambda: common.image_grid(IMGS, nrow=2.5), "nrow"),
    "image_grid shape": (lambda: common.image_grid(IMGS, shape=(8,)), "shape"),
    "image_grid vmin": (lambda: common.image_grid(IMGS, vmin=NAN), "vmin"),
    "image_grid ax": (lambda: common.image_grid(IMGS, ax="left"), "ax"),
    "image_grid cmap": (lambda: common.image_grid(IMGS, cmap="no-such-map"), "cmap"),
    "image_grid title": (lambda: common.image_grid(IMGS, title=3), "title"),
    "training_curves None": (lambda: common.training_curves(None), "history"),
    "training_curves lengths": (lambda: common.training_curves({"step": [1], "train": [1.0, 2.0], "val": [1.0]}), "history"),
    "training_curves empty": (lambda: common.training_curves({"step": [], "train": [], "val": []}), "history"),
    "training_curves inf": (lambda: common.training_curves({"step": [1], "train": [math.inf], "val": [1.0]}), "history"),
    "training_curves strings": (lambda: common.training_curves({"step": ["a"], "train": [1.0], "val": [1.0]}), "history"),
    "mixture ax None": (lambda: ch14.mixture_density_1d(None, C, [1.0], [0.0], [1.0]), "ax"),
    "mixture K": (lambda: ch14.mixture_density_1d(_ax(), C, [0.5, 0.5], [0.0], [1.0]), "weights"),
    "mixture variance": (lambda: ch14.mixture_density_1d(_ax(), C, [1.0], [0.0], [-1.0]), "variances"),
    "mixture grid NaN": (lambda: ch14.mixture_density_1d(_ax(), [NAN, 1.0], [1.0], [0.0], [1.0]), "grid"),
    "mixture empty": (lambda: ch14.mixture_density_1d(_ax(), C, [], [], []), "weights"),
    "mixture components": (lambda: ch14.mixture_density_1d(_ax(), C, [1.0], [0.0], [1.0], components="yes"), "components"),
    "kl_fits shape": (lambda: ch14.kl_fits(C, C[:3], {"a": (0.0, 1.0)}), "log_p"),
    "kl_fits fits": (lambda: ch14.kl_fits(C, C, None), "fits"),
    "kl_fits var": (lambda: ch14.kl_fits(C, C, {"a": (0.0, 0.0)}), "var"),
    "energy shape": (lambda: ch14.energy_and_density(C, np.zeros((3, 3)), LOGP), "energy"),
    "energy log_p NaN": (lambda: ch14.energy_and_density(C, -LOGP, np.full_like(LOGP, NAN)), "log_p"),
    "energy centres": (lambda: ch14.energy_and_density(C[::-1], -LOGP, LOGP), "centres"),
    "energy axes": (lambda: ch14.energy_and_density(C, -LOGP, LOGP, axes=[_ax()]), "axes"),
    "energy levels": (lambda: ch14.energy_and_density(C, -LOGP, LOGP, levels=0), "levels"),
    "score_field points": (lambda: ch14.score_field(C, LOGP, np.zeros((4, 3)), np.zeros((4, 3))), "points"),
    "score_field scores": (lambda: ch14.score_field(C, LOGP, PTS, PTS[:3]), "scores"),
    "samples None": (lambda: ch14.samples_vs_density(C, LOGP, None), "samples"),
    "samples data": (lambda: ch14.samples_vs_density(C, LOGP, PTS, data=np.zeros(3)), "data"),
    "samples max_points": (lambda: ch14.samples_vs_density(C, LOGP, PTS, max_points=0), "max_points"),
    "elbo_sweep q1": (lambda: ch14.elbo_sweep(Q1 * 2, -1.0, ELBO_Q), "q1"),
    "elbo_sweep values": (lambda: ch14.elbo_sweep(Q1, -1.0, ELBO_Q[:3]), "elbo_values"),
    "elbo_sweep log_px": (lambda: ch14.elbo_sweep(Q1, None, ELBO_Q), "log_px"),
    "elbo_sweep q_now": (lambda: ch14.elbo_sweep(Q1, -1.0, ELBO_Q, q_now=1.5), "q_now"),
    "elbo_bars NaN": (lambda: ch14.elbo_bars(NAN, -1.0), "log_px"),
    "elbo_bars vector": (lambda: ch14.elbo_bars(-1.0, [1.0, 2.0]), "elbo_value"),
    "elbo_contour shape": (lambda: ch14.elbo_contour(C, C[:5], np.zeros((9, 5))), "elbo_grid"),
    "elbo_contour post": (lambda: ch14.elbo_contour(C, C[:5], np.zeros((5, 9)), post=1.0), "post"),
    "em_staircase None": (lambda: ch14.em_staircase(None), "trace"),
    "em_staircase lengths": (lambda: ch14.em_staircase({"log_lik": [1.0, 2.0], "elbo": [1.0]}), "elbo"),
    "em_staircase zoom": (lambda: ch14.em_staircase(TRACE, zoom_from=9), "zoom_from"),
    "latent_scatter labels": (lambda: ch14.latent_scatter(np.zeros((3, 2)), [0, 1]), "labels"),
    "latent_scatter z": (lambda: ch14.latent_scatter(np.zeros((3, 3)), [0, 1, 2]), "z"),
    "latent_scatter negative": (lambda: ch14.latent_scatter(np.zeros((2, 2)), [-1, 0]), "labels"),
    "variance s": (lambda: ch14.variance_vs_samples([0, 1], {"a": [1.0, 1.0]}), "s_values"),
    "variance dict": (lambda: ch14.variance_vs_samples([1, 2], [1.0, 2.0]), "variances"),
    "variance shape": (lambda: ch14.variance_vs_samples([1, 2], {"a": [1.0]}), "variances"),
    "binned list": (lambda: ch15.binned_densities(np.eye(3), 1.0, ["a"]), "images"),
    "binned negative": (lambda: ch15.binned_densities([-np.eye(3)], 1.0, ["a"]), "images"),
    "binned titles": (lambda: ch15.binned_densities([np.eye(3)], 1.0, ["a", "b"]), "titles"),
    "binned lim": (lambda: ch15.binned_densities([np.eye(3)], 0.0, ["a"]), "lim"),
    "clouds shape": (lambda: ch15.point_clouds([np.zeros((3, 3))], ["a"], 1.0), "clouds"),
    "clouds colors": (lambda: ch15.point_clouds([PTS], ["a"], 1.0, colors=[1.0, 2.0]), "colors"),
    "clouds alpha": (lambda: ch15.point_clouds([PTS], ["a"], 1.0, alpha=2.0), "alpha"),
    "bar_chart None": (lambda: ch15.bar_chart(None), "rows"),
    "bar_chart bound": (lambda: ch15.bar_chart([dict(ROWS[0], bound="lower")]), "bound"),
    "bar_chart reference": (lambda: ch15.bar_chart(ROWS, reference=1), "reference"),
    "bar_chart NaN": (lambda: ch15.bar_chart([dict(ROWS[0], bits_per_dim=NAN)]), "bits_per_dim"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_clear_error(case):
    call, argument = BAD[case]
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert argument in str(err.value), f"{case}: the message should name {argument!r}: {err.value}"
    assert not plt.gcf().axes or all(not a.lines and not a.collections and not a.images for a in plt.gcf().axes) \
        or case.startswith(("mixture", "energy axes")), f"{case} drew before failing"


# ---------------------------------------------------------------- widgets
def test_sliders_with_figure_redraws_on_every_slider_change():
    import ipywidgets

    calls = []

    def draw(a, b):
        calls.append((a, b))
        fig, ax = plt.subplots()
        ax.plot([a, b])
        return fig

    a, b = ipywidgets.IntSlider(value=1, min=0, max=5), ipywidgets.FloatSlider(value=0.5, min=0, max=1)
    box = widgets.sliders_with_figure({"a": a, "b": b}, draw)
    assert calls == [(1, 0.5)]                                          # drawn once at the start
    a.value = 3
    b.value = 0.25
    assert calls == [(1, 0.5), (3, 0.5), (3, 0.25)]
    assert isinstance(box.children[0], ipywidgets.HBox) and isinstance(box.children[1], ipywidgets.Output)
    one = widgets.sliders_with_figure({"a": ipywidgets.IntSlider(value=2)}, lambda a: calls.append(a))
    assert one.children[0].value == 2 and calls[-1] == 2                # one slider sits above the output
    plt.close("all")
    assert not plt.get_fignums()                                         # returned figures are closed


@pytest.mark.parametrize("sliders, draw", [({}, print), ({"a": 3}, print), ({"a": None}, print)])
def test_sliders_with_figure_rejects_non_widgets(sliders, draw):
    with pytest.raises(TypeError, match="sliders"):
        widgets.sliders_with_figure(sliders, draw)


def test_sliders_with_figure_rejects_a_non_callable():
    import ipywidgets
    with pytest.raises(TypeError, match="draw"):
        widgets.sliders_with_figure({"a": ipywidgets.IntSlider()}, None)


def _em_path():
    return mixture.em_path(torch.randn(30, 1, generator=torch.Generator().manual_seed(1)), [0.5, 0.5],
                           [[-1.0], [1.0]], [[[1.0]], [[1.0]]], n_iter=3)


def test_every_widget_builds_and_its_slider_redraws():
    """Each builder: the first child holds its slider(s); moving one changes what is drawn."""
    path = _em_path()
    built = {
        "em_stepper": (lambda: widgets.em_stepper(None, np.linspace(-2, 2, 6), np.ones(5), path), "iteration", 2),
        "flow_layers": (lambda: widgets.flow_layers([torch.randn(20, 2), torch.randn(20, 2)]), "layers", 1),
        "gaussian_overlap": (lambda: widgets.gaussian_overlap(1.0), "t / σ", 3.0),
    }
    for name, (build, description, new) in built.items():
        ui, draw = build()
        sliders = [ui.children[0]] if hasattr(ui.children[0], "value") else list(ui.children[0].children)
        slider = next(s for s in sliders if s.description == description)
        before = plt.get_fignums()
        slider.value = new
        assert plt.get_fignums() == before or name == "gaussian_overlap", name   # returned figures closed
    assert widgets.flow_layers([PTS, PTS * 0.5])[1](1).axes[0].get_title() == "after 1 of 1 layers"
    assert widgets.gaussian_overlap()[1](0.0)["error"] == pytest.approx(0.5)


def test_em_stepper_redraws_for_each_iteration():
    crabs = data.load_pearson_crabs()
    path = mixture.em_path(crabs.data, [0.5, 0.5], [[0.60], [0.62]], [4e-4, 4e-4], n_iter=10,
                           covariance_type="spherical")
    box, draw = widgets.em_stepper(crabs.data, crabs.bin_edges, crabs.count, path)
    slider = box.children[0]
    assert slider.max == 10
    first, last = draw(0), draw(10)
    y0 = first.axes[0].lines[-1].get_ydata()
    y1 = last.axes[0].lines[-1].get_ydata()
    assert not np.allclose(y0, y1)
    assert "iteration 10" in last.axes[0].get_title()
    slider.value = 5  # the observer redraws without error


WIDGET_BAD = {
    "em_stepper path": (lambda: widgets.em_stepper(None, [0.0, 1.0, 2.0], [1, 1], []), "path"),
    "em_stepper xlim": (lambda: widgets.em_stepper(None, [0.0, 1.0, 2.0], [1, 1], _em_path(), xlim=(1, 0)), "xlim"),
    "em_stepper iteration": (lambda: widgets.em_stepper(None, [0.0, 1.0, 2.0], [1, 1], _em_path())[1](99), "iteration"),
    "kl_asymmetry weight": (lambda: widgets.kl_asymmetry(weight=1.5), "weight"),
    "kl_asymmetry std": (lambda: widgets.kl_asymmetry(std=None), "std"),
    "langevin score_fn": (lambda: widgets.langevin_explorer(None, PTS, np.ones((3, 3)), 3.0), "score_fn"),
    "langevin step_size": (lambda: widgets.langevin_explorer(lambda z: -z, PTS, np.ones((3, 3)), 3.0, step_size=NAN),
                           "step_size"),
    "langevin seed": (lambda: widgets.langevin_explorer(lambda z: -z, PTS, np.ones((3, 3)), 3.0, seed="a"), "seed"),
    "elbo_q_slider q_init": (lambda: widgets.elbo_q_slider(torch.tensor([-1.0, -2.0]), q_init=2.0), "q_init"),
    "elbo_q_slider n_grid": (lambda: widgets.elbo_q_slider(torch.tensor([-1.0, -2.0]), n_grid=1), "n_grid"),
    "elbo_q_slider NaN": (lambda: widgets.elbo_q_slider(torch.tensor([NAN, -2.0])), "log_joint"),
    "latent decode": (lambda: widgets.latent_explorer_2d(None), "decode"),
    "latent points alone": (lambda: widgets.latent_explorer_2d(lambda z: z, points=PTS), "labels"),
    "latent decode output": (lambda: widgets.latent_explorer_2d(lambda z: None)[1](0.0, 0.0), "decode"),
    "latent z1": (lambda: widgets.latent_explorer_2d(lambda z: torch.rand(1, 64))[1](NAN, 0.0), "z1"),
    "flow_layers None": (lambda: widgets.flow_layers(None), "stages"),
    "flow_layers ndim": (lambda: widgets.flow_layers([np.zeros(3)]), "stages"),
    "flow_layers names": (lambda: widgets.flow_layers([PTS], names=["a", "b"]), "names"),
    "flow_layers k": (lambda: widgets.flow_layers([PTS])[1](3), "k"),
    "schedule x0": (lambda: widgets.forward_schedule_explorer(np.zeros((2, 10))), "x0"),
    "schedule noise": (lambda: widgets.forward_schedule_explorer(np.zeros((2, 64)), noise=np.zeros((2, 64))), "noise"),
    "schedule fractions": (lambda: widgets.forward_schedule_explorer(np.zeros((2, 64)), fractions=(0.0, 2.0)),
                           "fractions"),
    "schedule T": (lambda: widgets.forward_schedule_explorer(np.zeros((2, 64)), T=None), "T"),
    "overlap ratio": (lambda: widgets.gaussian_overlap(-1.0), "ratio"),
    "overlap update": (lambda: widgets.gaussian_overlap()[1]("wide"), "ratio"),
}


@pytest.mark.parametrize("case", sorted(WIDGET_BAD))
def test_widget_bad_input_is_a_clear_error(case):
    call, argument = WIDGET_BAD[case]
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert argument in str(err.value), f"{case}: the message should name {argument!r}: {err.value}"


# ---------------------------------------------------------------- the old homes, and the lessons
def test_deprecated_modules_hand_out_the_viz_functions():
    from companion_lib import bench, plots
    from companion_lib import widgets as old_widgets

    assert all(getattr(plots, n) is getattr(ch14 if hasattr(ch14, n) else common, n) for n in plots.__all__)
    assert all(getattr(old_widgets, n) is getattr(widgets, n) for n in old_widgets.__all__)
    assert "deprecated" in plots.__doc__.lower() and "deprecated" in old_widgets.__doc__.lower()
    assert len(bench.bar_chart(ROWS and [dict(r, min_class_share=None, nearest_train_ratio=None,
                                              train_seconds=None) for r in ROWS]).axes) == 2


def test_lessons_import_figures_from_viz():
    root = Path(__file__).resolve().parents[1]
    for nb in sorted((root / "chapters").glob("*.py")) + sorted((root / "solutions").glob("*.py")):
        text = nb.read_text()
        assert not re.search(r"\bplots\.\w|from companion_lib(\.\w+)* import [^\n]*\b(plots|widgets)\b(?!\.)",
                             text.replace("companion_lib.viz import", "VIZ")), nb.name
