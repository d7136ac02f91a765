"""Loss problems: a loss is only right if training can use it. A harness hands the student's loss to
:func:`loss_and_gradient`, which returns plain data (the loss values, their gradient in the model's
parameters by autograd, and whether the loss carries a graph at all); :func:`compare_loss` compares
that with the reference's, autograd being the oracle, and says which part is wrong.

A loss returned with ``.item()`` (a Python number), computed under ``torch.no_grad()`` or from
``.detach()``-ed outputs has the right value and no gradient: training with it dies (or learns nothing).

The other way round, :func:`without_autograd` is the harness of an exercise whose statement asks for a
closed form ("no autograd"): it runs the answer while watching for a recorded graph.
"""
from __future__ import annotations

import torch

from companion_lib.grading.compare import ATOL32, RTOL32, Mismatch, compare_values, holds_float32

#: What an answer that used autograd raises under :func:`without_autograd` (one line for every route).
USED_AUTOGRAD = "autograd was used (a graph was recorded): the exercise asks for the closed form"


class UsedAutograd(RuntimeError):
    """Raised by :func:`without_autograd` when the answer differentiated by autograd."""


def without_autograd(fn, *args):
    """``fn(*args)``, raising :class:`UsedAutograd` if ``fn`` recorded an autograd graph.

    The test inputs never require a gradient, so a closed form saves no tensor for a backward pass;
    an answer that differentiates by autograd (``torch.autograd.grad``, ``.backward()``,
    ``torch.autograd.functional``, a library score by autograd) must, and ``torch.func``'s transforms
    refuse to run under the saved-tensor hook altogether. Either way the outcome is the same raised
    line, so a catalogued "used autograd" mistake is recognised whichever route was taken.
    """
    recorded = []

    def pack(t):
        recorded.append(1)
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn(*args)
    except RuntimeError as err:
        if "saved tensor hooks" in str(err):                 # torch.func.grad / jacrev / vjp
            raise UsedAutograd(USED_AUTOGRAD) from None
        raise
    if recorded or (isinstance(out, torch.Tensor) and out.requires_grad):
        raise UsedAutograd(USED_AUTOGRAD)
    return out


#: ``graph`` codes: the loss is a tensor with a graph; a plain number or array; a tensor without one.
_GRAPH, _NOT_A_TENSOR, _NO_GRAPH = 0, 1, 2


def loss_and_gradient(loss, params, scalar: bool = False) -> dict:
    """``{"loss", "gradient", "graph"}`` for ``loss`` (the student's or the reference's): the values,
    the gradient of their sum in ``params`` (flattened, zeros for parameters it does not reach), and
    the graph code. ``scalar``: the loss must be one number (a ``TypeError`` otherwise)."""
    params = list(params)
    size = sum(p.numel() for p in params)
    if isinstance(loss, torch.Tensor) and scalar and loss.numel() != 1:
        raise TypeError(f"the loss must be one number (a 0-d tensor), got shape {tuple(loss.shape)}")
    if not isinstance(loss, torch.Tensor):
        return {"loss": loss, "gradient": torch.zeros(size, dtype=torch.float64),
                "graph": torch.tensor(float(_NOT_A_TENSOR))}
    if not loss.requires_grad or loss.grad_fn is None:
        return {"loss": loss.detach(), "gradient": torch.zeros(size, dtype=torch.float64),
                "graph": torch.tensor(float(_NO_GRAPH))}
    grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                      for g, p in zip(grads, params)])
    return {"loss": loss.detach(), "gradient": flat, "graph": torch.tensor(float(_GRAPH))}


def compare_loss(rtol: float, atol: float, grad_rtol: float, grad_atol: float):
    """``compare=`` for a harness that returns :func:`loss_and_gradient`: the value within
    (rtol, atol), a graph, and the gradient within (grad_rtol, grad_atol) of the reference's."""

    def compare(expected, got):
        if not isinstance(got, dict) or not {"loss", "gradient", "graph"} <= set(got):
            return "could not read the loss"  # only a harness that is not loss_and_gradient's
        try:
            compare_values(expected["loss"], got["loss"], rtol, atol)
            value = None
        except Mismatch as err:
            value = str(err)
        graph = int(float(got["graph"]))
        if graph != _GRAPH and graph == int(float(expected["graph"])):
            return value  # both without a graph (a catalogued mistake's output): the values decide
        same = "right value, but" if value is None else f"the value is wrong ({value}), and"
        if graph == _NOT_A_TENSOR:
            return (f"{same} the loss is a plain number, which has no gradient: did you call .item() "
                    "(or .numpy(), float(...))? Training needs the tensor.")
        if graph == _NO_GRAPH:
            return (f"{same} the loss has no gradient in the model's parameters: computed under "
                    "torch.no_grad(), or from .detach()-ed outputs?")
        if value is not None:
            return value
        # a float32 loss from float64 parameters: the gradient is float64 but carries float32 round-off
        low = holds_float32(got["loss"])
        try:
            compare_values(expected["gradient"], got["gradient"], max(grad_rtol, RTOL32) if low else grad_rtol,
                           max(grad_atol, ATOL32) if low else grad_atol)
        except Mismatch as err:
            return (f"right value, but its gradient in the model's parameters is not the reference's "
                    f"({err}): is part of the computation detached, or done outside torch?"
                    + (" (Your loss is float32: compute in the inputs' dtype.)" if low else ""))
        return None

    compare.__qualname__ = f"compare_loss(rtol={rtol:g}, atol={atol:g})"
    return compare
