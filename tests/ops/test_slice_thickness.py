"""slice_thickness: AlignShift on any converted network, stateless between calls."""
import pytest
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from acsdet.converters import convert
from acsdet.ops import AlignShiftConv, slice_thickness


def _plain():
    torch.manual_seed(0)
    net2d = nn.Sequential(
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Sequential(nn.Conv2d(16, 16, 3, padding=1)))
    return convert(net2d, 'alignshift')


def _by_rule(net, x, t):
    """The converted network called layer by layer, the thickness passed as the argument."""
    return net[2][0](net[1](net[0](x, t)), t)


def test_a_converted_plain_network_runs_inside_the_block_and_not_after():
    net = _plain()
    assert isinstance(net[0], AlignShiftConv) and isinstance(net[2][0], AlignShiftConv)
    x = torch.randn(2, 16, 5, 8, 8)
    t = torch.tensor([1.0, 5.0])
    with slice_thickness(net, t):
        y = net(x)
    torch.testing.assert_close(y, _by_rule(net, x, t))
    assert not torch.allclose(y, _by_rule(net, x, torch.tensor([5.0, 5.0])))  # t matters
    with slice_thickness(net, 2.5):  # one number for the batch
        torch.testing.assert_close(net(x), _by_rule(net, x, torch.tensor([2.5, 2.5])))
    with pytest.raises(RuntimeError, match='slice_thickness'):
        net(x)  # nothing kept after the block
    with pytest.raises(ZeroDivisionError):
        with slice_thickness(net, t):
            1 / 0
    with pytest.raises(RuntimeError, match='needs the slice thickness'):
        net(x)  # nor after a block that raised


def test_nested_blocks_restore_the_outer_thickness():
    net = _plain()
    x = torch.randn(1, 16, 5, 8, 8)
    t1, t2 = torch.tensor([1.0]), torch.tensor([4.0])
    with slice_thickness(net, t1):
        with slice_thickness(net[2], t2):  # the inner submodule sees t2, the rest t1
            inner = net(x)
        outer = net(x)
    a = net[1](net[0](x, t1))
    torch.testing.assert_close(inner, net[2][0](a, t2))
    torch.testing.assert_close(outer, _by_rule(net, x, t1))


def test_gradient_checkpointing_sees_the_thickness_in_its_recomputation():
    net = _plain()
    x = torch.randn(2, 16, 5, 8, 8)
    t = torch.tensor([1.0, 3.0])
    with slice_thickness(net, t):
        net(x).square().sum().backward()
        plain = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        checkpoint(net, x, use_reentrant=False).square().sum().backward()
    for a, p in zip(plain, net.parameters()):
        torch.testing.assert_close(a, p.grad)
