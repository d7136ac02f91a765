"""nets: the MLP builder's shapes and layers, the time embedding's convention and values."""
import math

import pytest
import torch
from torch import nn

from companion_lib import nets


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_mlp_shapes_and_layers(depth):
    torch.manual_seed(0)
    net = nets.mlp(5, 16, 3, depth)
    assert net(torch.randn(7, 5)).shape == (7, 3)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert len(linears) == depth + 1                                   # depth = number of hidden layers
    assert [(m.in_features, m.out_features) for m in linears] == \
        [(5, 16)] * (depth > 0) + [(16, 16)] * max(depth - 1, 0) + [(16 if depth else 5, 3)]
    assert sum(isinstance(m, nn.SiLU) for m in net) == depth
    assert isinstance(net[-1], nn.Linear)                              # no activation on the output


def test_mlp_depth_zero_is_one_affine_map():
    torch.manual_seed(0)
    net = nets.mlp(4, 99, 2, 0)
    x = torch.randn(3, 4)
    assert torch.allclose(net(x), x @ net[0].weight.T + net[0].bias)


def test_mlp_is_reproducible_under_a_seed():
    torch.manual_seed(3)
    a = nets.mlp(4, 8, 2, 2)
    torch.manual_seed(3)
    b = nets.mlp(4, 8, 2, 2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_time_embedding_known_values_at_t1_dim8():
    e = nets.time_embedding(torch.tensor([1]), 8)
    # h = 4 frequencies ω_k = 10000^(−k/4) = 1, 0.1, 0.01, 0.001
    w = [1.0, 0.1, 0.01, 0.001]
    expected = [math.sin(x) for x in w] + [math.cos(x) for x in w]
    assert e.shape == (1, 8) and e.dtype == torch.float32
    assert torch.allclose(e[0], torch.tensor(expected), atol=1e-6)


def test_time_embedding_columns_0_and_h_are_sin_and_cos_of_t():
    t = torch.arange(1, 1001)
    e = nets.time_embedding(t, 32)
    tf = t.double()
    assert torch.allclose(e[:, 0].double(), torch.sin(tf), atol=2e-4)
    assert torch.allclose(e[:, 16].double(), torch.cos(tf), atol=2e-4)
    # the slowest column at step t: sin(t · 10000^(−15/16))
    assert torch.allclose(e[:, 15].double(), torch.sin(tf * 10000 ** (-15 / 16)), atol=1e-5)
    # distinct steps get distinct embeddings; every row has norm √h (sin² + cos² per frequency)
    assert torch.allclose(e.norm(dim=1), torch.full((1000,), 4.0), atol=1e-4)
    assert torch.cdist(e[:50], e[:50]).add(torch.eye(50)).min() > 1e-2


def test_time_embedding_odd_dim_and_max_period():
    e = nets.time_embedding(torch.tensor([0, 5]), 7)
    assert e.shape == (2, 7) and torch.equal(e[:, -1], torch.zeros(2))
    assert torch.allclose(e[0], torch.tensor([0.0, 0, 0, 1, 1, 1, 0]))          # t = 0: sin 0, cos 0
    f = nets.time_embedding(torch.tensor([2]), 4, max_period=100.0)             # ω = 1, 0.1
    assert torch.allclose(f[0], torch.tensor([math.sin(2), math.sin(0.2), math.cos(2), math.cos(0.2)]))


@pytest.mark.parametrize("call, err, match", [
    (lambda: nets.mlp(0, 8, 2, 1), ValueError, "n_in must be >= 1"),
    (lambda: nets.mlp(4, 8, 2, -1), ValueError, "depth must be >= 0"),
    (lambda: nets.mlp(4, 8.0, 2, 1), ValueError, "hidden must be an integer"),
    (lambda: nets.time_embedding(torch.tensor([1.5]), 8), TypeError, "integer steps"),
    (lambda: nets.time_embedding([1, 2], 8), TypeError, "torch.Tensor"),
    (lambda: nets.time_embedding(torch.tensor([[1]]), 8), ValueError, r"shape \(batch,\)"),
    (lambda: nets.time_embedding(torch.tensor([-1]), 8), ValueError, ">= 0"),
    (lambda: nets.time_embedding(torch.tensor([1]), 1), ValueError, "dim must be >= 2"),
    (lambda: nets.time_embedding(torch.tensor([1]), 8, max_period=0.0), ValueError, "max_period"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
