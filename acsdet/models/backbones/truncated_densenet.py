"""Truncated DenseNet-121 3D-to-2D backbone (paper section IV-D; the MULAN/AlignShift design).

conv0 7x7/2 - norm0 - relu0 - pool0 3x3/2 - denseblock1 (256 ch, stride 4) - transition1 (/8) -
denseblock2 (512 ch, /8) - transition2 (/16) - denseblock3 (1024 ch, /16), built in 2D and
converted by :func:`acsdet.converters.convert` with ``conv_mode`` (any registered mode; built in:
'acs', 'mean-acs', 'soft-acs', '2.5d', '3d', 'a3d', 'tsm', 'alignshift') and that mode's own
options, or left 2D
(``'2d'``: the D slices are conv0's input channels, the 3DCE / MULAN / AlignShift-"25d"
baseline, the authors' ``DenseNetCustomTrunc``; no depth, no depth-collapsing convs). Depth
is kept throughout: strides and pooling act in-plane (``pool_depth=1``, ``conv_depth_stride=1``).
After each dense block a ``Conv3d(C, C, (D, 1, 1))`` without padding collapses depth to 1, giving
three 2D maps (strides 4, 8, 16; 256, 512, 1024 channels) for the 2D decoder neck
(:class:`~acsdet.models.necks.TopDownDecoder`). The decoder is a neck rather than part of the
backbone so that it can be swapped (one stride-4 level as in the paper, or an FPN-style pyramid).

Input ``(N, D, H, W)``: the D slices as channels, as MMDetection's data pipeline delivers them;
the backbone adds the depth axis itself (``(N, 1, D, H, W)``, grey scale).

Pretrained weights (``init_cfg=dict(type='Pretrained', checkpoint=PATH)``): a torchvision-format
DenseNet-121 ImageNet state dict (``features.denseblock1.denselayer1.norm1.weight``, legacy
``norm.1``-style names too). conv0's three RGB kernels are summed into one grey kernel, which
keeps the response to a grey image (R = G = B) unchanged; ``'3d'`` inflates every K x K kernel
I3D-style (repeat along depth, divide by K). Loaded and skipped keys are logged and kept in
``self.pretrained_report``.
"""
import os.path as osp
import re
from dataclasses import fields
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import _load_checkpoint
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet.registry import MODELS

from ...converters import convert, inflate_i3d, mode_options
from ...defaults import NUM_SLICES
from ...ops.a3d import A3DConv
from ...ops.shift import ShiftConv
from .densenet import (DenseLayer, dense_block_channels, densenet_features, in_plane_pool,
                       memory_format_of)
from .depth_stream import (BackboneOutput, LayerNode, VolumeNode, WindowNode, depth_reach,
                           each_window, in_depth_pieces, stream_steps)

#: About how many slices the volumetric pass's stem computes at once: its full-resolution
#: intermediates (64 channels at H/2 x W/2) over a step's window set the pass's peak (100 x 5
#: mm, bf16: 4051 MiB with pieces of 32 slices, 3874 with 16, at the same speed).
STEM_PIECE = 16
#: The volumetric pass collapses depth, and yields, a step's key slices in pieces spanning
#: fewer than this many slices: dense block 1's 256 channels at H/4 x W/4 are concatenated over
#: a piece's windows rather than the step's (at 300 x 1 mm that concatenation was the peak).
KEY_PIECE = 8

# torchvision's rule for its legacy DenseNet keys ('norm.1' -> 'norm1'), the pattern of
# torchvision.models.densenet._load_state_dict (BSD-3-Clause), as MULAN and AlignShift reuse it
LEGACY_DENSENET_KEY = re.compile(
    r'^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$'
)


def _norm_factory(norm_cfg: dict):
    """A 2D norm constructor from an MMDetection ``norm_cfg`` (BN, SyncBN or GN)."""
    cfg = dict(norm_cfg)
    kind = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)

    def make(c: int) -> nn.Module:
        if kind == 'BN':
            m = nn.BatchNorm2d(c, **cfg)
        elif kind == 'SyncBN':
            m = nn.SyncBatchNorm(c, **cfg)
        elif kind == 'GN':
            m = nn.GroupNorm(num_channels=c, **cfg)
        else:
            raise ValueError(f"norm_cfg type must be 'BN', 'SyncBN' or 'GN', got {kind!r}")
        for p in m.parameters():
            p.requires_grad = requires_grad
        return m

    return make


def torchvision_densenet_to_backbone(state_dict: Dict[str, torch.Tensor],
                                     target: Dict[str, torch.Tensor]) -> Tuple[Dict, List[str]]:
    """Map a torchvision DenseNet state dict onto a converted backbone's ``features.*`` keys.

    Handles ``module.``/``state_dict`` wrapping, legacy ``norm.1`` names, RGB -> grey conv0 (sum
    of the three kernels) and I3D inflation where the target kernel is 3D. Returns the mapped
    dict (only keys the target has, with matching shapes) and the source keys left unused.
    """
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'], dict):
        state_dict = state_dict['state_dict']
    mapped, unused = {}, []
    for key, value in state_dict.items():
        k = key[7:] if key.startswith('module.') else key
        m = LEGACY_DENSENET_KEY.match(k)
        if m:
            k = m.group(1) + m.group(2)
        if k not in target:
            unused.append(key)
            continue
        want = target[k].shape
        if k == 'features.conv0.weight' and value.shape[1] != want[1]:
            # RGB -> grey; '2d' with D slices as channels: the grey kernel / D on each
            value = value.sum(1, keepdim=True).repeat(1, want[1], 1, 1) / want[1]
        if value.dim() == 4 and len(want) == 5:  # '3d': inflate (K, K) -> (K, K, K) / K
            value = inflate_i3d(value, want[2])
        if tuple(value.shape) != tuple(want):
            unused.append(key)
            continue
        mapped[k] = value
    return mapped, unused


def collapse_windows(conv: nn.Conv3d, x: torch.Tensor, starts: Sequence[int]) -> torch.Tensor:
    """A depth-collapsing ``Conv3d(C, C', (D, 1, 1))`` on the D-slice windows of ``x`` ``(1, C,
    n, h, w)`` starting at ``starts``: ``(len(starts), C', h, w)``. On a channels-last-3d map
    with fewer pixels than the product's inner size ``D * C`` (dense block 3: 32 x 32 pixels,
    7 x 1024), as one matrix product per window, which oneDNN's 3D convolution runs at a third
    of the speed there; else the convolution on each window."""
    d, c = conv.kernel_size[0], x.shape[1]
    h, w = x.shape[-2:]
    plain = (
        conv.kernel_size[1:] == (1, 1) and conv.stride == (1, 1, 1) and conv.groups == 1
        and conv.padding == (0, 0, 0) and conv.dilation == (1, 1, 1))
    if not (plain and h * w < d * c and memory_format_of(x) == torch.channels_last_3d):
        return each_window(conv, d, x, starts)
    weight = conv.weight[:, :, :, 0, 0].permute(2, 1, 0).reshape(d * c, -1)  # (D * C, C')
    weight = weight.to(x.dtype)  # cast once for all windows (autocast would cast per product)
    bias = None if conv.bias is None else conv.bias.to(x.dtype)
    out = x.new_empty(len(starts), h, w, weight.shape[1])
    for i, j in enumerate(starts):
        cols = x[0, :, j:j + d].permute(2, 3, 1, 0).reshape(h * w, d * c)  # (h w, D C): a copy
        y = cols @ weight if bias is None else torch.addmm(bias, cols, weight)
        out[i] = y.view(h, w, -1)
    return out.permute(0, 3, 1, 2)  # (k, C', h, w), channels-last


@MODELS.register_module()
class TruncatedDenseNet(BaseModule):
    """DenseNet-121 truncated after dense block 3, converted to 3D, collapsing depth per block.

    Args:
        conv_mode: 'acs', 'mean-acs', 'soft-acs', '2.5d', '3d' (I3D when pretrained), 'a3d', 'tsm',
            'alignshift', or '2d' (slices as conv0's input channels, no 3D layer). The shift and
            fusion modes shift / fuse the inputs of the dense layers' 1x1 and 3x3 convolutions,
            not the stem's or the transitions' (as the authors' backbones); 'alignshift' needs the
            per-sample slice thickness in ``forward`` (``ThicknessAwareMaskRCNN`` passes it).
        num_slices: D, the number of input slices (odd, >= 1).
        train_context_slices: c >= 0: training stacks may carry c more slices each side
            (``(N, D + 2c, H, W)``, the pipeline's ``num_slices``); the dense blocks see them and
            only the centre key slice's D-window is collapsed, so the 3D layers learn with real
            neighbours where a D-slice stack ends, as in a volumetric pass. Testing takes D.
        out_indices: which dense blocks (0, 1, 2) to output.
        frozen_stages: -1 none; 0 the stem (conv0, norm0); i >= 1 also dense blocks 1..i (with
            the transitions before them and their depth-collapsing convs).
        norm_cfg: BN, SyncBN or GN (MMDetection style).
        norm_eval: keep BatchNorm layers in eval mode (frozen statistics) while training.
        with_cp: gradient checkpointing of every dense layer's bottleneck (less memory).
        collapse_init: 'centre' initialises each depth-collapsing conv to pass the key slice
            through (the pretrained 2D behaviour at the start); 'kaiming' draws it at random.
        growth_rate, block_config, num_init_features, bn_size: the DenseNet; default DenseNet-121.
        conv_options: the options of ``conv_mode`` (:func:`acsdet.converters.mode_options`),
            e.g. ``n_fold`` ('tsm', 'alignshift'), ``ref_thickness`` and ``zero_pad``
            ('alignshift'), ``inflate`` ('3d'); ``'a3d'``'s ``num_slices`` is ``num_slices``.
            An option the mode does not take is an error naming the ones it does.
    """

    def __init__(self,
                 conv_mode: str = 'acs',
                 num_slices: int = NUM_SLICES,
                 train_context_slices: int = 0,
                 out_indices: Sequence[int] = (0, 1, 2),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 collapse_init: str = 'centre',
                 growth_rate: int = 32,
                 block_config: Sequence[int] = (6, 12, 24),
                 num_init_features: int = 64,
                 bn_size: int = 4,
                 init_cfg: Optional[dict] = None,
                 **conv_options):
        super().__init__(init_cfg=init_cfg)
        if num_slices < 1 or num_slices % 2 == 0:
            raise ValueError(f'num_slices must be an odd number >= 1, got {num_slices}')
        if train_context_slices < 0:
            raise ValueError(f'train_context_slices must be >= 0, got {train_context_slices}')
        if collapse_init not in ('centre', 'kaiming'):
            raise ValueError(f"collapse_init must be 'centre' or 'kaiming', got {collapse_init!r}")
        self.conv_mode, self.num_slices = conv_mode, num_slices
        self.train_context_slices = train_context_slices
        self.out_indices, self.frozen_stages = tuple(out_indices), frozen_stages
        self.norm_eval, self.collapse_init = norm_eval, collapse_init
        self.is_2d = conv_mode == '2d'
        if self.is_2d and (conv_options or train_context_slices):
            raise ValueError("conv_mode '2d' takes no conv options and no train_context_slices, "
                             f'got {sorted(conv_options) or "train_context_slices"}')
        features2d = densenet_features(num_slices if self.is_2d else 1, growth_rate, block_config,
                                       num_init_features, bn_size, _norm_factory(norm_cfg))
        if self.is_2d:
            self.features = features2d
        else:
            if 'num_slices' in {f.name for f in fields(mode_options(conv_mode))}:
                conv_options = dict(conv_options, num_slices=num_slices)  # 'a3d': D
            self.features = convert(
                features2d, conv_mode, pool_depth=1, conv_depth_stride=1, **conv_options)
        for name, m in list(self.features.named_modules()):
            if '.denselayer' in f'.{name}':
                continue
            if isinstance(m, ShiftConv):
                m.shift = False  # stem and transitions: no shift
            elif isinstance(m, A3DConv):
                m.fusion = None  # nor slice fusion
        self._takes_thickness = any(
            getattr(m, 'takes_thickness', False) for m in self.features.modules())
        for m in self.features.modules():
            if isinstance(m, DenseLayer):
                m.with_cp = with_cp
        self.out_channels = dense_block_channels(growth_rate, block_config, num_init_features)
        self.depth_collapse = nn.ModuleList(() if self.is_2d else (
            nn.Conv3d(ch, ch, (num_slices, 1, 1), bias=False) for ch in self.out_channels))
        self.pretrained_report: Optional[dict] = None
        self._reset_collapse()
        self._freeze_stages()

    def _reset_collapse(self):
        for conv in self.depth_collapse:
            if self.collapse_init == 'centre':
                with torch.no_grad():
                    conv.weight.zero_()
                    idx = torch.arange(conv.weight.shape[0])
                    conv.weight[idx, idx, self.num_slices // 2, 0, 0] = 1.0
            else:
                nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')

    def _stage_modules(self, i: int) -> List[nn.Module]:
        f = self.features
        if i == 0:
            return [f.conv0, f.norm0]
        mods = [getattr(f, f'denseblock{i}')] + list(self.depth_collapse[i - 1:i])
        if i > 1:
            mods.append(getattr(f, f'transition{i - 1}'))
        return mods

    def _freeze_stages(self):
        for i in range(self.frozen_stages + 1):
            for m in self._stage_modules(i):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_pretrained(cfg['checkpoint'])
            self._is_init = True
            return
        super().init_weights()

    def load_pretrained(self, checkpoint: str) -> dict:
        """Load a torchvision-format DenseNet state dict (local path, or any MMEngine URI);
        returns and logs ``{'loaded': [...], 'not_loaded': [...], 'unused': [...]}``. A local
        path that does not exist is an error naming where it was looked for (a relative path is
        relative to the working directory, as in MMDetection), never a silent random start."""
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'pretrained weights {checkpoint}: no such file ({osp.abspath(checkpoint)}; a '
                'relative path is relative to the working directory): download torchvision\'s '
                'densenet121-a639ec97.pth there, or set model.backbone.init_cfg.checkpoint '
                '(--cfg-options)')
        src = _load_checkpoint(checkpoint, map_location='cpu')
        target = self.state_dict()
        mapped, unused = torchvision_densenet_to_backbone(src, target)
        self.load_state_dict(mapped, strict=False)
        not_loaded = sorted(
            k for k in target if k not in mapped and not k.endswith('num_batches_tracked'))
        report = dict(loaded=sorted(mapped), not_loaded=not_loaded, unused=sorted(unused))
        self.pretrained_report = report
        print_log(
            f'TruncatedDenseNet ({self.conv_mode}, D={self.num_slices}): loaded '
            f'{len(mapped)} tensors from {checkpoint}; not in the checkpoint (kept at '
            f'their initialisation): {not_loaded}; unused checkpoint keys: {len(unused)} '
            f'(e.g. {sorted(unused)[:3]})',
            logger='current')
        return report

    def _thickness(self, thickness, n: int, device) -> Optional[torch.Tensor]:
        """The per-sample thickness ``(n,)`` the AlignShift layers need (None for other modes)."""
        if not self._takes_thickness:
            return None
        if thickness is None:
            raise ValueError("TruncatedDenseNet(conv_mode='alignshift') needs the slice "
                             "thickness of every sample: use the 'ThicknessAwareMaskRCNN' "
                             'detector or call backbone(x, thickness)')
        t = torch.as_tensor(thickness, dtype=torch.float32, device=device).reshape(-1)
        if t.numel() != n or not torch.isfinite(t).all() or (t <= 0).any():
            raise ValueError(f'thickness must be {n} positive numbers (mm), got {t.tolist()}')
        return t

    def _blocks(self, x: torch.Tensor, t: Optional[torch.Tensor]) -> List[torch.Tensor]:
        """``(N, 1, L, H, W)`` -> the selected dense blocks' 3D features ``(N, C_i, L, h_i, w_i)``
        (depth kept throughout; ``'2d'``: ``(N, D, H, W)`` -> ``(N, C_i, h_i, w_i)``)."""
        f = self.features
        x = f.pool0(f.relu0(f.norm0(f.conv0(x))))
        outs = []
        for i in range(len(self.out_channels)):
            if i:
                x = getattr(f, f'transition{i}')(x)
            x = getattr(f, f'denseblock{i + 1}')(x, thickness=t)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def forward(self,
                x: torch.Tensor,
                thickness: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        """``(N, D, H, W)`` -> tuple of ``(N, C_i, H / s_i, W / s_i)`` for the selected blocks
        (or ``(N, D + 2c, H, W)`` with ``train_context_slices`` c: the centre key slice's).

        ``thickness`` ``(N,)`` mm: each sample's slice thickness, handed to every AlignShift
        layer ('alignshift' needs it; the other modes ignore it). A
        :class:`~.depth_stream.BackboneOutput` (features of :meth:`forward_volume`) is returned
        as it is."""
        if isinstance(x, BackboneOutput):
            return x.feats
        d, c = self.num_slices, self.train_context_slices
        if x.dim() != 4 or x.shape[1] not in {d, d + 2 * c}:
            with_context = f' or D + 2c = {d + 2 * c}' if c else ''
            raise ValueError(f'TruncatedDenseNet expects (N, D={d}{with_context}, H, W) input, '
                             f'got {tuple(x.shape)}')
        if self.is_2d:
            return tuple(self._blocks(x, None))
        t = self._thickness(thickness, x.shape[0], x.device)
        feats = self._blocks(x.unsqueeze(1), t)
        mid = (x.shape[1] - d) // 2  # the centre window (0 without context)
        # NCHW, whatever the 3D layout (the stem's no-grad route is channels-last): mmcv's
        # RoIAlign kernel reads NCHW memory
        return tuple(self.depth_collapse[i](f)[:, :, mid].contiguous()
                     for i, f in zip(self.out_indices, feats))

    def depth_radius(self) -> int:
        """How many slices each side a feature of the dense blocks depends on: the sum of the
        depth half-extents of every layer that mixes slices (along the dense path every layer
        follows the one before). 0 for '2.5d'. acsdet's operators say their own (an int
        ``depth_radius``: ACS, 2.5D, TSM, AlignShift; A3D's raises, it has no volumetric pass),
        as must a layer of a new conv mode that mixes slices and is not a ``Conv3d``."""
        if self.is_2d:
            raise ValueError("conv_mode '2d' stacks the D slices as channels: it has no "
                             'volumetric pass (run it per key slice)')
        return depth_reach(self.features)

    @torch.no_grad()
    def forward_volume(self,
                       x: torch.Tensor,
                       thickness: Optional[float] = None,
                       depth_chunk: int = 32,
                       keys: Optional[Sequence[int]] = None,
                       channels_last: bool = True) -> Tuple[torch.Tensor, ...]:
        """One 3D pass over a whole volume: ``(1, L, H, W)``, L >= D slices on one grid ->
        tuple of ``(K, C_i, H / s_i, W / s_i)``, the features of the key slices ``keys``
        (increasing; default all ``L - D + 1``), key ``j``'s D-slice stack being slices
        ``j .. j + D - 1``.

        The network is streamed along depth (:mod:`.depth_stream`): ``depth_chunk`` key slices
        a step, each layer computing each slice once from its inputs' neighbours and keeping
        only what the next step needs (memory bounded by the chunk plus each layer's reach);
        every feature is the one a single pass over the whole volume gives, whatever the chunk,
        and each depth-collapsing conv slides along depth. For '2.5d' this equals
        :meth:`forward` on every key slice's stack; the modes that mix slices see real
        neighbours where a stack's ends are zero-padded. Eval mode only, and norms that act per
        slice (BatchNorm): a GroupNorm would normalise over the whole volume's depth.
        """
        parts = [[] for _ in self.out_indices]
        for _, feats in self.forward_volume_steps(x, thickness, depth_chunk, keys, channels_last):
            for part, f in zip(parts, feats):
                part.append(f)
        return tuple(torch.cat(p) for p in parts)

    def forward_volume_steps(self,
                             x: torch.Tensor,
                             thickness: Optional[float] = None,
                             depth_chunk: int = 32,
                             keys: Optional[Sequence[int]] = None,
                             channels_last: bool = True):
        """:meth:`forward_volume` one depth step at a time: yields ``(keys (k,), tuple of (k,
        C_i, H / s_i, W / s_i))``, a step's keys in pieces spanning fewer than
        :data:`KEY_PIECE` slices, so that the heads can run on a piece before the next is made
        (memory bounded by the chunk, not by the CT's length).

        ``channels_last``: the 3D features stored ``channels_last_3d`` (NDHWC), in which oneDNN
        runs the 1 x 1 and view convolutions without layout conversions (on a CPU about twice
        as fast as NCDHW, more with bfloat16), and the yielded 2D features ``channels_last``
        (NHWC), as the neck's and heads' convolutions and the separable RoIAlign read them
        without a copy (mmcv's own RoIAlign kernel must get them ``.contiguous()``: it reads
        NCHW memory); else contiguous NCHW."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] < self.num_slices:
            raise ValueError(f'forward_volume expects (1, L >= {self.num_slices}, H, W), got '
                             f'{tuple(x.shape)}')
        if depth_chunk < 1:
            raise ValueError(f'depth_chunk must be >= 1, got {depth_chunk}')
        self._check_streamable()
        t = self._thickness(thickness, 1, x.device)
        memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        nodes, outputs = self._depth_graph(VolumeNode(x.unsqueeze(1)), t, memory_format)
        n_keys = x.shape[1] - self.num_slices + 1
        keys = range(n_keys) if keys is None else keys
        keys = sorted(int(k) for k in keys)
        if keys and (keys[0] < 0 or keys[-1] >= n_keys or len(set(keys)) != len(keys)):
            raise ValueError(f'keys must be distinct key slices 0 .. {n_keys - 1}')
        layout = torch.channels_last if channels_last else torch.contiguous_format
        for sel, feats in stream_steps(nodes, outputs, keys, depth_chunk, KEY_PIECE):
            yield sel, tuple(f.contiguous(memory_format=layout) for f in feats)

    def _check_streamable(self):
        self.depth_radius()  # '2d' has no volumetric pass
        if self.training:
            raise ValueError('forward_volume runs in eval mode (call .eval() first): '
                             'training BatchNorm statistics would span the volume')
        for name, m in self.features.named_modules():
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)):
                raise ValueError(f'forward_volume: {name} ({type(m).__name__}) normalises over '
                                 'depth, so a whole volume and a D-slice stack differ; '
                                 'volumetric inference needs BatchNorm (per-slice inference '
                                 'works)')

    def _depth_graph(self, volume: VolumeNode, t: Optional[torch.Tensor],
                     memory_format: torch.memory_format):
        """The backbone as :class:`~.depth_stream.DepthNode` s: ``(every node after its sources,
        the depth-collapsing outputs of out_indices)``, the features in ``memory_format``."""
        f, d = self.features, self.num_slices

        def same(fn, sources, module):
            return LayerNode(fn, sources, radius=depth_reach(module))

        stem_reach = depth_reach(nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0))

        def stem_once(x):  # a 1-channel input's layout is ambiguous: set it on conv0's output
            y = f.relu0(f.norm0(f.conv0(x).contiguous(memory_format=memory_format)))
            return in_plane_pool(f.pool0, y)

        def run_stem(x):
            return in_depth_pieces(stem_once, x, stem_reach, STEM_PIECE)

        node = LayerNode(run_stem, [volume], radius=stem_reach)
        nodes, outputs, block = [node], [], None
        for i in range(len(self.out_channels)):
            if i:
                trans = getattr(f, f'transition{i}')
                node = same(lambda *xs, m=trans: m(*xs), block, trans)
                nodes.append(node)
            block = [node]
            for layer in getattr(f, f'denseblock{i + 1}').values():
                block.append(same(lambda *xs, m=layer: m(*xs, thickness=t), list(block), layer))
            nodes += block[1:]
            if i in self.out_indices:
                conv = self.depth_collapse[i]
                outputs.append(WindowNode(partial(collapse_windows, conv), block, d))
        return nodes + outputs, outputs
