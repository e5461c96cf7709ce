"""Import the released M3DV/AlignShift DeepLesion checkpoints (2D, TSM, AlignShift, A3D).

The authors' code (github.com/M3DV/AlignShift, mmdet 1.0rc1, torch 1.3) saves checkpoints with
mmcv 0.x's ``save_checkpoint``: ``{'meta': {..., 'config': <the config file's text>},
'state_dict': ..., 'optimizer': ...}`` (keys may carry DDP's ``module.``). Their backbones are
recognised from the state dict:

- ``DenseNetCustomTrunc``: 2D, the D slices are ``backbone.conv0``'s input channels;
- ``DenseNetCustomTrunc3dTSM`` / ``...3dAlign`` / ``...3dA3D``: D is the depth of the
  ``backbone.reductionz{i}.reduction_z_conv`` kernels; A3D has ``adaptive_align_weights``; TSM
  and AlignShift have the same keys, so ``arch`` or the config text in ``meta`` decides.

Keys are mapped onto the acsdet model of ``configs/m3dv/{arch}_{D}slice.py`` (backbone
``features.*``, ``reductionz{i}`` -> ``depth_collapse.{i-1}``, ``lateral{p}`` ->
``neck.laterals.{p-2}``, ``bbox_head`` / ``mask_head`` -> ``roi_head.*``; mmdet 1.x's background
class 0 -> mmdet 3's last: ``fc_cls`` rows reordered, the lesion's 4 of ``fc_reg``'s 8 rows,
channel 1 of the mask ``conv_logits``). The A3D fusion weights of convolutions built with
``enable_shift=False`` (conv0, transitions) are never used by the authors' model: they are
listed and dropped. Every other key must find its place and shape, or the import fails naming it.
"""
import os.path as osp
import pickle
import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from ..models.backbones.truncated_densenet import LEGACY_DENSENET_KEY
from ..utils import atomic_save, file_sha256
from ..utils.errors import naming
from ..version import __version__
from .architecture import ARCH_KEY, checkpoint_state, model_architecture, state_dict_mismatch

ARCHS = ('2d', 'tsm', 'alignshift', 'a3d')
#: The authors' backbone class of each architecture, as their config files name it.
BACKBONE_CLASSES = {
    '2d': 'DenseNetCustomTrunc',
    'tsm': 'DenseNetCustomTrunc3dTSM',
    'alignshift': 'DenseNetCustomTrunc3dAlign',
    'a3d': 'DenseNetCustomTrunc3dA3D',
}
_FEATURES = re.compile(r'(conv0|norm0|denseblock\d+|transition\d+)(\..+)?')


class M3DVCheckpointError(ValueError):
    """A file that is not a usable M3DV/AlignShift checkpoint; the one-line message names the
    file and, where there is one, the key."""


def _err(path: str, msg: str) -> M3DVCheckpointError:
    return M3DVCheckpointError(f'{path}: {msg}')


def read_m3dv_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``(state dict without 'module.', meta)`` of a checkpoint file (weights-only loading; an
    optimizer state is ignored)."""
    if not osp.isfile(path):
        raise _err(path, 'no such file')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _err(path, f'not a readable PyTorch checkpoint (truncated or damaged?): '
                   f'{first[:200]}') from None
    if not isinstance(ckpt, Mapping):
        raise _err(path, f'holds a {type(ckpt).__name__}, not a checkpoint dict')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, Mapping) or not state:
        raise _err(path, 'has no state_dict')
    state = checkpoint_state(ckpt)  # 'module.' removed
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise _err(path, f'key {bad[0]!r} of its state_dict is not a tensor')
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), Mapping) else {}
    return state, dict(meta)


def _foreign(state: Mapping) -> Optional[str]:
    """What another code base's checkpoint looks like, or None."""
    keys = list(state)
    if any(k.startswith('backbone.features.') for k in keys):
        return 'an acsdet checkpoint (backbone.features.*): use it as it is'
    if any(k.startswith(('roi_head.', 'neck.')) for k in keys):
        return 'an MMDetection 2.x / 3.x detector (roi_head.*, neck.*)'
    if any(k.startswith(('features.', 'classifier.')) for k in keys):
        return 'a torchvision classification state dict (features.*, classifier.*)'
    return None


def detect_arch(state: Mapping,
                meta: Mapping,
                path: str,
                arch: Optional[str] = None) -> Tuple[str, int]:
    """``(architecture, D)`` of an authors' state dict; ``arch`` (one of :data:`ARCHS`) must
    agree with the keys, and decides between TSM and AlignShift where the config text in
    ``meta`` does not."""
    if arch is not None and arch not in ARCHS:
        raise naming(
            _err(path, f'{{arch}} must be one of {", ".join(ARCHS)}, got {arch!r}'), 'arch')
    foreign = _foreign(state)
    if foreign:
        raise _err(path, f'is {foreign}, not an M3DV/AlignShift DeepLesion checkpoint')
    collapse = state.get('backbone.reductionz1.reduction_z_conv.weight')
    conv0 = state.get('backbone.conv0.weight')
    if collapse is None and conv0 is None:
        raise _err(
            path, 'not an M3DV/AlignShift DeepLesion checkpoint: it has neither '
            "'backbone.conv0.weight' nor 'backbone.reductionz1.reduction_z_conv.weight'")
    text = str(meta.get('config') or '')
    named = [a for a, cls in BACKBONE_CLASSES.items() if re.search(rf"'{cls}'|\"{cls}\"", text)]
    if collapse is None:
        found, d = '2d', int(conv0.shape[1])
    else:
        if collapse.dim() != 5:
            raise _err(
                path, "key 'backbone.reductionz1.reduction_z_conv.weight' is not a 3D "
                f'kernel: shape {tuple(collapse.shape)}')
        d = int(collapse.shape[2])
        if any(k.endswith('adaptive_align_weights') for k in state):
            found = 'a3d'
        elif arch in ('tsm', 'alignshift'):
            found = arch
        elif len(named) == 1 and named[0] in ('tsm', 'alignshift'):
            found = named[0]
        else:
            raise naming(
                _err(
                    path, 'TSM and AlignShift checkpoints have the same keys and its meta '
                    "holds no config naming its backbone: pass {arch} 'tsm' or 'alignshift'"),
                'arch')
    if arch is not None and arch != found:
        raise naming(
            _err(
                path, f'{{arch}} {arch} contradicts the keys, which are those of a {found} '
                f'model ({BACKBONE_CLASSES[found]})'), 'arch')
    if named and found not in named:
        raise _err(
            path, f'its config names {BACKBONE_CLASSES[named[0]]}, its keys are those of '
            f'{BACKBONE_CLASSES[found]}')
    return found, d


def _backbone_key(rest: str, key: str, path: str) -> Optional[str]:
    """The acsdet key of an authors' ``backbone.<rest>`` (None: an unused parameter)."""
    m = re.fullmatch(r'reductionz(\d)\.reduction_z_conv\.weight', rest)
    if m:
        return f'backbone.depth_collapse.{int(m.group(1)) - 1}.weight'
    m = re.fullmatch(r'lateral([234])\.(weight|bias)', rest)
    if m:
        return f'neck.laterals.{int(m.group(1)) - 2}.{m.group(2)}'
    legacy = LEGACY_DENSENET_KEY.match(rest)
    if legacy:
        rest = legacy.group(1) + legacy.group(2)
    if rest.endswith('.adaptive_align_weights'):
        owner = rest[:-len('.adaptive_align_weights')]
        if '.denselayer' not in f'.{owner}':
            return None  # A3DConv(enable_shift=False): conv0, transitions
        return f'backbone.features.{owner}.fusion.weight'
    if _FEATURES.fullmatch(rest):
        return f'backbone.features.{rest}'
    raise _err(path, f'cannot place key {key!r} in an acsdet model')


# mmdet 1.x heads -> mmdet 3: (acsdet key prefix, {suffix: (rows to take, rows expected)})
_HEADS = {
    'rpn_head.': ('rpn_head.', {}),
    'bbox_head.': (
        'roi_head.bbox_head.',
        {
            'fc_cls.weight': ([1, 0], 2),  # (background, lesion) -> (lesion, background)
            'fc_cls.bias': ([1, 0], 2),
            'fc_reg.weight': ([4, 5, 6, 7], 8),  # the lesion class's deltas
            'fc_reg.bias': ([4, 5, 6, 7], 8),
        }),
    'mask_head.': (
        'roi_head.mask_head.',
        {
            'conv_logits.weight': ([1], 2),  # the lesion class's mask
            'conv_logits.bias': ([1], 2),
        }),
}


def convert_m3dv_state(state: Mapping[str, torch.Tensor],
                       path: str = 'checkpoint') -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """``(acsdet state dict, the authors' keys dropped as unused)``."""
    out, dropped = {}, []
    for key, value in state.items():
        if key.startswith('backbone.'):
            new = _backbone_key(key[len('backbone.'):], key, path)
            if new is None:
                dropped.append(key)
                continue
            out[new] = value
            continue
        for prefix, (target, rows) in _HEADS.items():
            if key.startswith(prefix):
                suffix = key[len(prefix):]
                if suffix in rows:
                    take, expected = rows[suffix]
                    if value.shape[0] != expected:
                        raise _err(
                            path, f'key {key!r} has {value.shape[0]} rows, mmdet 1.x with '
                            f'one lesion class and background has {expected}')
                    value = value[take].clone()
                out[target + suffix] = value
                break
        else:
            raise _err(path, f'cannot place key {key!r} in an acsdet model')
    return out, dropped


def m3dv_config_path(arch: str, num_slices: int) -> str:
    """The shipped config ``m3dv/{arch}_{D}slice`` (:mod:`acsdet.model_index`)."""
    from ..model_index import config_dir
    return osp.join(config_dir(), 'm3dv', f'{arch}_{num_slices}slice.py')


def convert_m3dv_checkpoint(src: str,
                            dst: str,
                            arch: Optional[str] = None,
                            config: Optional[str] = None) -> dict:
    """Convert the authors' checkpoint ``src`` into an acsdet checkpoint ``dst`` (written
    atomically; never over ``src``) for ``config`` (default: :func:`m3dv_config_path`).

    Args:
        src: the authors' ``.pth`` (e.g. ``alignshift_7slice.pth``).
        dst: the acsdet checkpoint to write.
        arch: ``'2d'``, ``'tsm'``, ``'alignshift'`` or ``'a3d'``; None: from the keys and the
            config text in the checkpoint's meta.
        config: the acsdet config the weights are for.

    Returns:
        ``dict(arch, num_slices, config, dropped)``: what was recognised, the config, and the
        authors' keys dropped as unused by their model.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    if osp.abspath(dst) == osp.abspath(src):
        raise _err(dst, 'the output would replace the input checkpoint')
    state, meta = read_m3dv_checkpoint(src)
    found, d = detect_arch(state, meta, src, arch)
    config = config or m3dv_config_path(found, d)
    if not osp.isfile(config):
        raise naming(
            _err(src, f'a {found} model of {d} slices: no config {config} (pass {{config}})'),
            'config')
    converted, dropped = convert_m3dv_state(state, src)
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_state = MODELS.build(cfg.model).state_dict()
    for key, value in model_state.items():  # BN counters are not weights
        if key.endswith('num_batches_tracked') and key not in converted:
            converted[key] = value
    mismatch = state_dict_mismatch(model_state, converted)
    if mismatch:
        raise _err(src, f'does not fit the {found} model of {osp.basename(config)}: {mismatch}')
    out_meta = {
        ARCH_KEY:
        model_architecture(cfg.model),
        'cfg':
        cfg.pretty_text,
        'acsdet_version':
        __version__,
        'converted_from':
        dict(
            file=osp.basename(src),
            sha256=file_sha256(src),
            arch=found,
            num_slices=d,
            backbone=BACKBONE_CLASSES[found],
            epoch=meta.get('epoch'),
            mmdet_version=meta.get('mmdet_version'),
            dropped=sorted(dropped)),
    }
    atomic_save(dst, lambda tmp: torch.save(dict(meta=out_meta, state_dict=converted), tmp))
    return dict(arch=found, num_slices=d, config=config, dropped=sorted(dropped))
