"""A transliteration of the M3DV/AlignShift DeepLesion code (github.com/M3DV/AlignShift, HEAD
d35e79f; mmdet 1.0rc1 vendored), the reference acsdet's converted models are tested against.

Names are the authors' (``DenseNetCustomTrunc3dA3D``, ``reductionz1.reduction_z_conv``,
``adaptive_align_weights``, ``rpn_head.rpn_conv``, ``bbox_head.shared_fcs``, ...), so a state
dict of these modules is laid out as their checkpoints are. Read from:

- ``nn/operators/{tsmconv,alignshiftconv,a3dconv}.py``, ``nn/utiles.py``;
- ``nn/models/truncated_densenet3d_{tsm,alignshift,a3d}.py``,
  ``deeplesion/models/truncated_densenet.py`` (2D; torchvision 0.4's ``_DenseBlock`` /
  ``_Transition`` transliterated here, torchvision is not installed);
- ``mmdet/core/anchor/anchor_generator.py`` and ``mmdet/models/anchor_heads/anchor_head.py``
  (``AnchorGenerator(base, scales, ratios, ctr=[0, 0])``), ``rpn_head.py``;
- ``mmdet/core/bbox/transforms.py`` (``delta2bbox``), ``mmdet/ops/roi_align/src/
  roi_align_kernel.cu`` (``ROIAlignForward``, ``bilinear_interpolate``);
- ``mmdet/models/bbox_heads/convfc_bbox_head.py`` (``SharedFCBBoxHead``),
  ``mmdet/models/mask_heads/fcn_mask_head.py``;
- ``deeplesion/dataset/DeepLesionDataset_{align,tsm,a3d,25d}.py``
  (``load_multislice_img_16bit_png``, ``get_slice_name``, ``windowing``).

Left out as having no effect on the test-time outputs compared here: SyncBN (``nn.BatchNorm``
in eval mode computes the same), gradient checkpointing (``memory_efficient``), in-place
shift variants (same forward values), ImageNet loading (downloads).
"""
import collections.abc
import os

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.conv import _ConvNd


# nn/utiles.py
def as_triple(x, d_value=1):
    if isinstance(x, collections.abc.Iterable):
        x = list(x)
        if len(x) == 2:
            x = [d_value] + x
        return x
    return [d_value] + [x] * 2


def _pair_same(x):
    if isinstance(x, int):
        return (x, x)
    assert len(set(x)) == 1
    return (x[0], x[0])


class _Conv25d(_ConvNd):
    """The authors' operators' common constructor: a 2D weight, 3D stride/padding."""

    def __init__(self,
                 in_channels,
                 out_channels,
                 kernel_size,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups=1,
                 bias=True,
                 padding_mode='zeros'):
        super().__init__(in_channels, out_channels, _pair_same(kernel_size), as_triple(stride),
                         as_triple(padding, 0), as_triple(dilation), False, as_triple(0, 0), groups,
                         bias, padding_mode)

    def _conv(self, input):
        return F.conv3d(input, self.weight.unsqueeze(2), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class TSMConv(_Conv25d):

    def __init__(self, *args, n_fold=8, tsm=True, inplace=False, shift_padding_zero=True, **kw):
        super().__init__(*args, **kw)
        self.n_fold, self.enable_tsm = n_fold, tsm

    def tsm(self, input, fold):
        out = torch.zeros_like(input)
        out[:, :fold, :-1] = input[:, :fold, 1:]
        out[:, fold:2 * fold, 1:] = input[:, fold:2 * fold, :-1]
        out[:, 2 * fold:, :] = input[:, 2 * fold:, :]
        return out

    def forward(self, input):
        if self.enable_tsm:
            input = self.tsm(input, input.size(1) // self.n_fold)
        return self._conv(input)


class AlignShiftConv(_Conv25d):

    def __init__(self,
                 *args,
                 n_fold=8,
                 alignshift=True,
                 inplace=True,
                 ref_thickness=2.,
                 shift_padding_zero=False,
                 **kw):
        super().__init__(*args, **kw)
        self.n_fold, self.enable_align = n_fold, alignshift
        self.ref_thickness, self.shift_padding_zero = ref_thickness, shift_padding_zero

    def alignshift(self, input, fold, ref_thickness, thickness, padding_zero=True):
        alph = 1 - (ref_thickness / thickness).view(-1, 1, 1, 1, 1).clamp_(0., 1.)
        out = torch.zeros_like(input)
        out[:, :fold, :-1] = input[:, :fold, :-1] * alph + input[:, :fold, 1:] * (1 - alph)
        out[:, fold:2 * fold, 1:] = input[:, fold:2 * fold, 1:] * alph + \
            input[:, fold:2 * fold, :-1] * (1 - alph)
        out[:, 2 * fold:, :] = input[:, 2 * fold:, :]
        pad_alph = alph if padding_zero else 1.0
        out[:, :fold, -1:] = pad_alph * input[:, :fold, -1:]
        out[:, fold:2 * fold, :1] = pad_alph * input[:, fold:2 * fold, :1]
        return out

    def forward(self, input, thickness=None):
        if self.enable_align:
            input = self.alignshift(input,
                                    input.size(1) // self.n_fold, self.ref_thickness, thickness,
                                    self.shift_padding_zero)
        return self._conv(input)


class A3DConv(_Conv25d):

    def __init__(self, in_channels, *args, dimension=3, enable_shift=True, inplace=False, **kw):
        super().__init__(in_channels, *args, **kw)
        self.enable_shift = enable_shift
        aw = torch.eye(dimension).unsqueeze(-1).repeat((1, 1, in_channels))
        self.adaptive_align_weights = nn.Parameter(aw + torch.empty_like(aw).uniform_(-0.1, 0.1))

    def forward(self, input):
        if self.enable_shift:
            input = torch.einsum('bcdhw,dkc->bckhw', [input, self.adaptive_align_weights])
        return self._conv(input)


# torchvision 0.4 densenet (the 2D model) --------------------------------------------------------
class _DenseLayer2d(nn.Sequential):

    def __init__(self, num_input_features, growth_rate, bn_size):
        super().__init__()
        self.add_module('norm1', nn.BatchNorm2d(num_input_features))
        self.add_module('relu1', nn.ReLU(inplace=True))
        self.add_module('conv1',
                        nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False))
        self.add_module('norm2', nn.BatchNorm2d(bn_size * growth_rate))
        self.add_module('relu2', nn.ReLU(inplace=True))
        self.add_module('conv2',
                        nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False))

    def forward(self, *prev_features):
        bottleneck_output = self.conv1(self.relu1(self.norm1(torch.cat(prev_features, 1))))
        return self.conv2(self.relu2(self.norm2(bottleneck_output)))


class _DenseBlock(nn.Module):

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, make_layer):
        super().__init__()
        for i in range(num_layers):
            self.add_module('denselayer%d' % (i + 1),
                            make_layer(num_input_features + i * growth_rate, growth_rate, bn_size))

    def forward(self, init_features, **kw):
        features = [init_features]
        for name, layer in self.named_children():
            features.append(layer(*features, **kw))
        return torch.cat(features, 1)


class _Transition2d(nn.Sequential):

    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.add_module('norm', nn.BatchNorm2d(num_input_features))
        self.add_module('relu', nn.ReLU(inplace=True))
        self.add_module('conv', nn.Conv2d(num_input_features, num_output_features, 1, bias=False))
        self.add_module('pool', nn.AvgPool2d(kernel_size=2, stride=2))


def _laterals(module, in_dim, out_dim, fpn_finest_layer):
    for p in range(4, fpn_finest_layer - 1, -1):
        module.add_module('lateral%d' % p, nn.Conv2d(in_dim[p - 1], out_dim, 1))


def _decode(module, ftmaps, fpn_finest_layer):
    x = module.lateral4(ftmaps[-1])
    for p in range(3, fpn_finest_layer - 1, -1):
        x = F.interpolate(x, scale_factor=2, mode='nearest')
        x += getattr(module, 'lateral%d' % p)(ftmaps[p - 1])
    return [x]


class DenseNetCustomTrunc(nn.Module):
    """deeplesion/models/truncated_densenet.py: slices as conv0's input channels."""

    def __init__(self, out_dim=256, in_channels=3, fpn_finest_layer=1):
        super().__init__()
        self.fpn_finest_layer = fpn_finest_layer
        self.in_dim = [64, 256, 512, 1024]
        self.conv0 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.norm0 = nn.BatchNorm2d(64)
        self.relu0 = nn.ReLU(inplace=True)
        self.pool0 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        num_features = 64
        for i, num_layers in enumerate((6, 12, 24)):
            self.add_module('denseblock%d' % (i + 1),
                            _DenseBlock(num_layers, num_features, 4, 32, _DenseLayer2d))
            num_features += num_layers * 32
            if i != 2:
                self.add_module('transition%d' % (i + 1),
                                _Transition2d(num_features, num_features // 2))
                num_features //= 2
        _laterals(self, self.in_dim, out_dim, fpn_finest_layer)

    def forward(self, x):
        relu0 = self.relu0(self.norm0(self.conv0(x)))
        db1 = self.denseblock1(self.pool0(relu0))
        db2 = self.denseblock2(self.transition1(db1))
        db3 = self.denseblock3(self.transition2(db2))
        return _decode(self, [relu0, db1, db2, db3], self.fpn_finest_layer)


# nn/models/truncated_densenet3d_{tsm,alignshift,a3d}.py ----------------------------------------
def _dense_layer_3d(conv):
    """The 3D models' ``_DenseLayer``: ``conv(in, out, **kw)`` builds conv1 (1x1) and conv2 (3x3)
    with shift / fusion on; ``thickness`` goes to AlignShift's."""

    class _DenseLayer(nn.Sequential):

        def __init__(self, num_input_features, growth_rate, bn_size):
            super().__init__()
            self.add_module('norm1', nn.BatchNorm3d(num_input_features))
            self.add_module('relu1', nn.ReLU(inplace=False))
            self.add_module(
                'conv1',
                conv(
                    num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False))
            self.add_module('norm2', nn.BatchNorm3d(bn_size * growth_rate))
            self.add_module('relu2', nn.ReLU(inplace=False))
            self.add_module(
                'conv2',
                conv(
                    bn_size * growth_rate,
                    growth_rate,
                    kernel_size=3,
                    stride=1,
                    padding=1,
                    bias=False))

        def _c(self, m, x, thickness):
            return m(x, thickness) if isinstance(m, AlignShiftConv) else m(x)

        def forward(self, *prev_features, thickness=None):
            b = self._c(self.conv1, self.relu1(self.norm1(torch.cat(prev_features, 1))), thickness)
            return self._c(self.conv2, self.relu2(self.norm2(b)), thickness)

    return _DenseLayer


class _Transition(nn.Sequential):

    def __init__(self, num_input_features, num_output_features, conv_off):
        super().__init__()
        self.add_module('norm', nn.BatchNorm3d(num_input_features))
        self.add_module('relu', nn.ReLU(inplace=True))
        self.add_module(
            'conv',
            conv_off(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False))
        self.add_module('pool', nn.AvgPool3d(kernel_size=[1, 2, 2], stride=[1, 2, 2]))


class _Reduction_z(nn.Sequential):

    def __init__(self, input_features, input_slice):
        super().__init__()
        self.add_module(
            'reduction_z_conv',
            nn.Conv3d(
                input_features,
                input_features,
                kernel_size=[input_slice, 1, 1],
                stride=1,
                bias=False))


class _DenseNetCustomTrunc3d(nn.Module):
    """The three 3D models: conv0 (shift / fusion off), blocks with ``reductionz{i}`` after each,
    transitions (off), laterals; ``conv_on`` / ``conv_off`` build the operator with it on / off."""
    conv_on = conv_off = None

    def __init__(self, out_dim=256, n_cts=3, fpn_finest_layer=1):
        super().__init__()
        self.fpn_finest_layer, self.n_cts = fpn_finest_layer, n_cts
        self.in_dim = [64, 256, 512, 1024]
        self.conv0 = self.conv_off(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.norm0 = nn.BatchNorm3d(64)
        self.relu0 = nn.ReLU(inplace=True)
        self.pool0 = nn.MaxPool3d(kernel_size=[1, 3, 3], stride=[1, 2, 2], padding=[0, 1, 1])
        num_features = 64
        layer = _dense_layer_3d(self.conv_on)
        for i, num_layers in enumerate((6, 12, 24)):
            self.add_module('denseblock%d' % (i + 1),
                            _DenseBlock(num_layers, num_features, 4, 32, layer))
            num_features += num_layers * 32
            self.add_module('reductionz%d' % (i + 1), _Reduction_z(num_features, n_cts))
            if i != 2:
                self.add_module('transition%d' % (i + 1),
                                _Transition(num_features, num_features // 2, self.conv_off))
                num_features //= 2
        _laterals(self, self.in_dim, out_dim, fpn_finest_layer)

    def forward(self, x, thickness=None):
        kw = dict(thickness=thickness) if isinstance(self, DenseNetCustomTrunc3dAlign) else {}
        x = self.pool0(self.relu0(self.norm0(self.conv0(x))))
        x = self.denseblock1(x, **kw)
        redc1 = self.reductionz1(x)
        x = self.denseblock2(self.transition1(x), **kw)
        redc2 = self.reductionz2(x)
        x = self.denseblock3(self.transition2(x), **kw)
        redc3 = self.reductionz3(x)
        ftmaps = [None, redc1.squeeze(2), redc2.squeeze(2), redc3.squeeze(2)]
        return _decode(self, ftmaps, self.fpn_finest_layer)


class DenseNetCustomTrunc3dTSM(_DenseNetCustomTrunc3d):

    def conv_on(self, *a, **kw):
        return TSMConv(*a, n_fold=8, **kw)

    def conv_off(self, *a, **kw):
        return TSMConv(*a, tsm=False, **kw)


class DenseNetCustomTrunc3dAlign(_DenseNetCustomTrunc3d):

    def conv_on(self, *a, **kw):
        return AlignShiftConv(*a, alignshift=True, ref_thickness=2.0, n_fold=8, **kw)

    def conv_off(self, *a, **kw):
        return AlignShiftConv(*a, alignshift=False, **kw)


class DenseNetCustomTrunc3dA3D(_DenseNetCustomTrunc3d):

    def conv_on(self, *a, **kw):
        return A3DConv(*a, enable_shift=True, dimension=self.n_cts, **kw)

    def conv_off(self, *a, **kw):
        return A3DConv(*a, enable_shift=False, **kw)  # dimension=3, the default


# mmdet 1.0rc1 heads ---------------------------------------------------------------------------
class AnchorGenerator:

    def __init__(self, base_size, scales, ratios, scale_major=True, ctr=None):
        self.base_size, self.scales, self.ratios = base_size, torch.Tensor(scales), torch.Tensor(
            ratios)
        self.scale_major, self.ctr = scale_major, ctr
        self.base_anchors = self.gen_base_anchors()

    def gen_base_anchors(self):
        w = h = self.base_size
        if self.ctr is None:
            x_ctr, y_ctr = 0.5 * (w - 1), 0.5 * (h - 1)
        else:
            x_ctr, y_ctr = self.ctr
        h_ratios = torch.sqrt(self.ratios)
        w_ratios = 1 / h_ratios
        ws = (w * w_ratios[:, None] * self.scales[None, :]).view(-1)
        hs = (h * h_ratios[:, None] * self.scales[None, :]).view(-1)
        return torch.stack([
            x_ctr - 0.5 * (ws - 1), y_ctr - 0.5 * (hs - 1), x_ctr + 0.5 * (ws - 1), y_ctr + 0.5 *
            (hs - 1)
        ],
                           dim=-1).round()

    def grid_anchors(self, featmap_size, stride=16, device='cpu'):
        base_anchors = self.base_anchors.to(device)
        feat_h, feat_w = featmap_size
        shift_x = torch.arange(0, feat_w, device=device) * stride
        shift_y = torch.arange(0, feat_h, device=device) * stride
        xx = shift_x.repeat(len(shift_y))
        yy = shift_y.view(-1, 1).repeat(1, len(shift_x)).view(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1).type_as(base_anchors)
        return (base_anchors[None, :, :] + shifts[:, None, :]).view(-1, 4)


def rpn_anchor_generator():
    """``AnchorHead.__init__``: ``AnchorGenerator(anchor_base, anchor_scales, anchor_ratios,
    ctr=[0, 0])`` with the configs' base 4, scales 4..48, ratios 0.5 / 1 / 2."""
    return AnchorGenerator(4, [4, 6, 8, 12, 24, 48], [0.5, 1., 2.0], ctr=[0, 0])


class RPNHead(nn.Module):

    def __init__(self, in_channels=512, feat_channels=512, num_anchors=18):
        super().__init__()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors * 1, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, num_anchors * 4, 1)

    def forward_single(self, x):
        x = F.relu(self.rpn_conv(x), inplace=True)
        return self.rpn_cls(x), self.rpn_reg(x)


def delta2bbox(rois,
               deltas,
               means=[0, 0, 0, 0],
               stds=[1, 1, 1, 1],
               max_shape=None,
               wh_ratio_clip=16 / 1000):
    means = deltas.new_tensor(means).repeat(1, deltas.size(1) // 4)
    stds = deltas.new_tensor(stds).repeat(1, deltas.size(1) // 4)
    denorm_deltas = deltas * stds + means
    dx, dy = denorm_deltas[:, 0::4], denorm_deltas[:, 1::4]
    dw, dh = denorm_deltas[:, 2::4], denorm_deltas[:, 3::4]
    max_ratio = np.abs(np.log(wh_ratio_clip))
    dw = dw.clamp(min=-max_ratio, max=max_ratio)
    dh = dh.clamp(min=-max_ratio, max=max_ratio)
    px = ((rois[:, 0] + rois[:, 2]) * 0.5).unsqueeze(1).expand_as(dx)
    py = ((rois[:, 1] + rois[:, 3]) * 0.5).unsqueeze(1).expand_as(dy)
    pw = (rois[:, 2] - rois[:, 0] + 1.0).unsqueeze(1).expand_as(dw)
    ph = (rois[:, 3] - rois[:, 1] + 1.0).unsqueeze(1).expand_as(dh)
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx = torch.addcmul(px, pw, dx)
    gy = torch.addcmul(py, ph, dy)
    x1, y1 = gx - gw * 0.5 + 0.5, gy - gh * 0.5 + 0.5
    x2, y2 = gx + gw * 0.5 - 0.5, gy + gh * 0.5 - 0.5
    if max_shape is not None:
        x1 = x1.clamp(min=0, max=max_shape[1] - 1)
        y1 = y1.clamp(min=0, max=max_shape[0] - 1)
        x2 = x2.clamp(min=0, max=max_shape[1] - 1)
        y2 = y2.clamp(min=0, max=max_shape[0] - 1)
    return torch.stack([x1, y1, x2, y2], dim=-1).view_as(deltas)


def roi_align(features, rois, out_size, spatial_scale, sample_num):
    """``ROIAlignForward`` of roi_align_kernel.cu, one output element at a time (vectorised over
    channels)."""
    n_rois, (_, c, height, width) = rois.shape[0], features.shape
    out = features.new_zeros(n_rois, c, out_size, out_size)

    def bilinear(data, y, x):
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return data.new_zeros(c)
        y, x = max(y, 0.0), max(x, 0.0)
        y_low, x_low = int(y), int(x)
        if y_low >= height - 1:
            y_high = y_low = height - 1
            y = float(y_low)
        else:
            y_high = y_low + 1
        if x_low >= width - 1:
            x_high = x_low = width - 1
            x = float(x_low)
        else:
            x_high = x_low + 1
        ly, lx = y - y_low, x - x_low
        hy, hx = 1. - ly, 1. - lx
        return (hy * hx * data[:, y_low, x_low] + hy * lx * data[:, y_low, x_high] +
                ly * hx * data[:, y_high, x_low] + ly * lx * data[:, y_high, x_high])

    for n in range(n_rois):
        b, x1, y1, x2, y2 = [float(v) for v in rois[n]]
        start_w, start_h = x1 * spatial_scale, y1 * spatial_scale
        end_w, end_h = (x2 + 1) * spatial_scale, (y2 + 1) * spatial_scale
        roi_w, roi_h = max(end_w - start_w, 0.), max(end_h - start_h, 0.)
        bin_h, bin_w = roi_h / out_size, roi_w / out_size
        data = features[int(b)]
        for ph in range(out_size):
            for pw in range(out_size):
                acc = features.new_zeros(c)
                for iy in range(sample_num):
                    y = start_h + ph * bin_h + (iy + .5) * bin_h / sample_num
                    for ix in range(sample_num):
                        x = start_w + pw * bin_w + (ix + .5) * bin_w / sample_num
                        acc = acc + bilinear(data, y, x)
                out[n, :, ph, pw] = acc / (sample_num * sample_num)
    return out


class SharedFCBBoxHead(nn.Module):

    def __init__(self, in_channels=512, roi_feat_size=7, fc_out_channels=2048, num_classes=2):
        super().__init__()
        self.shared_fcs = nn.ModuleList([
            nn.Linear(in_channels * roi_feat_size * roi_feat_size, fc_out_channels),
            nn.Linear(fc_out_channels, fc_out_channels)
        ])
        self.fc_cls = nn.Linear(fc_out_channels, num_classes)
        self.fc_reg = nn.Linear(fc_out_channels, 4 * num_classes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        for fc in self.shared_fcs:
            x = self.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class _ConvModule(nn.Module):

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return F.relu(self.conv(x))


class FCNMaskHead(nn.Module):

    def __init__(self, num_convs=4, in_channels=512, conv_out_channels=256, num_classes=2):
        super().__init__()
        self.convs = nn.ModuleList(
            _ConvModule(in_channels if i == 0 else conv_out_channels, conv_out_channels)
            for i in range(num_convs))
        self.upsample = nn.ConvTranspose2d(conv_out_channels, conv_out_channels, 2, stride=2)
        self.conv_logits = nn.Conv2d(conv_out_channels, num_classes, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(self.relu(self.upsample(x)))


BACKBONES = {
    '2d': lambda d: DenseNetCustomTrunc(out_dim=512, in_channels=d, fpn_finest_layer=2),
    'tsm': lambda d: DenseNetCustomTrunc3dTSM(out_dim=512, n_cts=d, fpn_finest_layer=2),
    'alignshift': lambda d: DenseNetCustomTrunc3dAlign(out_dim=512, n_cts=d, fpn_finest_layer=2),
    'a3d': lambda d: DenseNetCustomTrunc3dA3D(out_dim=512, n_cts=d, fpn_finest_layer=2),
}


class MaskRCNN(nn.Module):
    """The detector's modules with mmdet 1.x's attribute names (its state-dict layout)."""

    def __init__(self, arch, num_slices):
        super().__init__()
        self.backbone = BACKBONES[arch](num_slices)
        self.rpn_head = RPNHead()
        self.bbox_head = SharedFCBBoxHead()
        self.mask_head = FCNMaskHead()


# deeplesion/dataset/DeepLesionDataset_*.py ----------------------------------------------------
def get_slice_name(data_dir, imname, delta=0):
    if delta == 0:
        return imname
    delta = int(delta)
    dirname, slicename = imname.split(os.sep)
    slice_idx = int(slicename[:-4])
    imname1 = '%s%s%03d.png' % (dirname, os.sep, slice_idx + delta)
    while not os.path.exists(os.path.join(data_dir, imname1)):
        delta -= np.sign(delta)
        imname1 = '%s%s%03d.png' % (dirname, os.sep, slice_idx + delta)
        if delta == 0:
            break
    return imname1


def load_multislice_img_16bit_png(data_dir, imname, slice_intv, num_slice, norm_slice_intv, align):
    """``align``: ``DeepLesionDatasetAlign``'s rule (direct neighbours at 2 mm or thicker);
    otherwise TSM / A3D / 25d's (interpolate whenever 2 mm is not a multiple)."""

    def _load_data(imname, delta=0):
        return cv2.imread(os.path.join(data_dir, get_slice_name(data_dir, imname, delta)), -1)

    im_cur = _load_data(imname)
    ims = [im_cur]
    rel_pos = float(norm_slice_intv) / slice_intv
    a = rel_pos - np.floor(rel_pos)
    b = np.ceil(rel_pos) - rel_pos
    if align and rel_pos <= 1.0:
        for p in range(int((num_slice - 1) / 2)):
            ims = [_load_data(imname, -(p + 1))] + ims + [_load_data(imname, (p + 1))]
    elif a == 0:
        for p in range(int((num_slice - 1) / 2)):
            ims = [_load_data(imname, -rel_pos *
                              (p + 1))] + ims + [_load_data(imname, rel_pos * (p + 1))]
    else:
        for p in range(int((num_slice - 1) / 2)):
            intv1 = rel_pos * (p + 1)
            slice1 = _load_data(imname, -np.ceil(intv1))
            slice2 = _load_data(imname, -np.floor(intv1))
            im_prev = a * slice1 + b * slice2
            slice1 = _load_data(imname, np.ceil(intv1))
            slice2 = _load_data(imname, np.floor(intv1))
            im_next = a * slice1 + b * slice2
            ims = [im_prev] + ims + [im_next]
    ims = [im.astype(float) for im in ims]
    im = cv2.merge(ims)
    return im.astype(np.float32, copy=False) - 32768


def windowing(im, win):
    im1 = im.astype(float)
    im1 -= win[0]
    im1 /= win[1] - win[0]
    im1[im1 > 1] = 1
    im1[im1 < 0] = 0
    im1 *= 255
    im1 -= 50
    return im1


def model_input(data_dir, imname, slice_intv, num_slice, align):
    """``load_prep_img`` then ``Normalize`` (mean 0, std 1: float32) as the test pipeline runs
    them on a 512 x 512 slice (``Resize`` to 512 keeps it, ``Pad`` 32 adds nothing):
    ``(H, W, D)``."""
    im = load_multislice_img_16bit_png(data_dir, imname, slice_intv, num_slice, 2.0, align)
    return windowing(im, [-1024, 2050]).astype(np.float32)


#: The authors' backbone class of each architecture (as their configs name it).
BACKBONE_NAMES = {
    '2d': 'DenseNetCustomTrunc',
    'tsm': 'DenseNetCustomTrunc3dTSM',
    'alignshift': 'DenseNetCustomTrunc3dAlign',
    'a3d': 'DenseNetCustomTrunc3dA3D',
}
