"""ops/roi_align: the separable RoIAlign against mmcv's own CPU kernel, in float64."""
import pytest
import torch
from mmcv.ops import RoIAlign, roi_align

from acsdet.ops.roi_align import SeparableRoIAlign, separable_roi_align, use_separable_roi_align


def _rois(n_img=2, size=(20, 24), scale=0.25, seed=0):
    """RoIs (image pixels) inside, across the borders, beyond them, and under a pixel."""
    g = torch.Generator().manual_seed(seed)
    h, w = size[0] / scale, size[1] / scale
    xy = torch.rand(40, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h])
    wh = torch.rand(40, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h]) * 0.6
    boxes = torch.cat([xy, xy + wh], 1)
    extra = torch.tensor([[-30, -20, w + 10, h + 25], [-50, -50, -10, -12], [w + 8, 3, w + 40, 30],
                          [10.2, 12.7, 10.4, 12.9], [-7, 5, 3, 6]],
                         dtype=torch.float64)
    boxes = torch.cat([boxes, extra])
    batch = torch.randint(0, n_img, (len(boxes), 1), generator=g).double()
    return torch.cat([batch, boxes], 1)


@pytest.mark.parametrize('out,ratio,aligned', [(7, 2, True), (14, 2, True), (7, 2, False),
                                               (5, 1, True), (3, 3, False)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_it_gives_mmcvs_roi_align(out, ratio, aligned, channels_last):
    torch.manual_seed(0)
    feat = torch.randn(2, 6, 20, 24, dtype=torch.float64)
    rois = _rois()
    ref = roi_align(feat, rois, out, 0.25, ratio, 'avg', aligned)
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    got = separable_roi_align(feat, rois, (out, out), 0.25, ratio, aligned)
    assert got.shape == ref.shape and got.is_contiguous()
    assert ref.abs().sum() > 0 and (ref[-4] == 0).all()  # a RoI beyond the map pools zeros
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_the_swapped_layers_keep_their_settings_and_autograd_goes_to_mmcv():
    model = torch.nn.ModuleDict(
        dict(a=torch.nn.ModuleList([RoIAlign(7, 0.25, 2, aligned=False)]), b=RoIAlign(14, 0.5, 0)))
    assert use_separable_roi_align(model) == 2
    layer = model['a'][0]
    assert type(layer) is SeparableRoIAlign and layer.output_size == (7, 7)
    assert (layer.spatial_scale, layer.sampling_ratio, layer.aligned) == (0.25, 2, False)
    feat = torch.randn(2, 6, 20, 24, dtype=torch.float64, requires_grad=True)
    rois = _rois()
    with torch.no_grad():
        fast = layer(feat, rois)
    slow = layer(feat, rois)  # autograd on: mmcv's kernel, which has a backward
    slow.sum().backward()
    assert feat.grad is not None and feat.grad.abs().sum() > 0
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # an adaptive sampling ratio (0) is mmcv's
        torch.testing.assert_close(model['b'](feat, rois), roi_align(feat, rois, 14, 0.5, 0))
        # on NCHW memory: mmcv's kernel reads a channels-last map as NCHW (wrong, no error)
        nhwc = feat.detach().contiguous(memory_format=torch.channels_last)
        assert not torch.allclose(roi_align(nhwc, rois, 14, 0.5, 0), model['b'](feat, rois))
        torch.testing.assert_close(model['b'](nhwc, rois), roi_align(feat, rois, 14, 0.5, 0))
