"""Mixed precision: acsdet's operators under torch.autocast behave as nn.Conv3d does there
(output dtype) and match their float32 results within the dtype's precision, forward and
backward. CPU bfloat16 always; CUDA float16 where a GPU is present."""
import pytest
import torch
from torch import nn

from acsdet.ops import ACSConv
from acsdet.ops.a3d import A3DConv
from acsdet.ops.acs_conv import ACSConvTranspose
from acsdet.ops.conv2_5d import Conv2_5d
from acsdet.ops.shift import AlignShiftConv, TSMConv

DEVICES = [('cpu', torch.bfloat16)]
if torch.cuda.is_available():
    DEVICES.append(('cuda', torch.float16))

OPS = {
    'acs': lambda: ACSConv(8, 10, 3, padding=1),
    'acs_strided': lambda: ACSConv(8, 9, 3, stride=2, padding=1, bias=False),
    'acs_transpose': lambda: ACSConvTranspose(8, 10, 3, stride=2, padding=1, output_padding=1),
    '2.5d': lambda: Conv2_5d(8, 10, 3, padding=1),
    'a3d': lambda: A3DConv(8, 10, 3, num_slices=5, padding=1),
    'tsm': lambda: TSMConv(8, 10, 3, padding=1, n_fold=4),
    'alignshift': lambda: _WithThickness(8, 10, 3, padding=1, n_fold=4),
}


class _WithThickness(AlignShiftConv):
    """AlignShift with a fixed thickness for a batch of 2 (as a backbone hands it down)."""

    def forward(self, x, thickness=None):
        return super().forward(x, torch.tensor([1.0, 5.0], device=x.device))


@pytest.mark.parametrize('device, dtype', DEVICES)
@pytest.mark.parametrize('name', list(OPS))
def test_operator_under_autocast_matches_float32(name, device, dtype):
    op = OPS[name]().to(device)
    x = torch.randn(2, 8, 5, 12, 12, device=device)
    x32 = x.clone().requires_grad_()
    y32 = op(x32)
    y32.square().mean().backward()
    grads32 = [p.grad.clone() for p in op.parameters()]
    op.zero_grad()

    xa = x.clone().requires_grad_()
    with torch.autocast(device, dtype=dtype):
        y = op(xa)
        ref = nn.Conv3d(8, 10, 3, padding=1).to(device)(xa)  # what autocast does to a conv
    assert y.dtype == ref.dtype == dtype
    y.float().square().mean().backward()
    tol = dict(rtol=0.05, atol=0.05 * y32.abs().max().item())
    torch.testing.assert_close(y.float(), y32.detach(), **tol)
    assert xa.grad.dtype == torch.float32  # gradients reach the float32 input and parameters
    torch.testing.assert_close(xa.grad, x32.grad, rtol=0.1, atol=0.1 * x32.grad.abs().max().item())
    for p, g32 in zip(op.parameters(), grads32):
        assert p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
        torch.testing.assert_close(p.grad, g32, rtol=0.1, atol=0.1 * g32.abs().max().item())
