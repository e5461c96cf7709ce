"""What a checkpoint's weights mean: its architecture record, checked when it is loaded.

A 2.5D, TSM or AlignShift backbone has exactly the state-dict keys and shapes of an ACS one, so
strict loading alone lets a checkpoint of one conv mode run silently as another. acsdet records
the architecture (the detector type and every backbone setting, class defaults filled in) in the
``meta`` of every checkpoint it writes (:class:`~acsdet.engine.hooks.ArchitectureRecordHook`)
and compares it with the config's when a checkpoint is loaded for testing, resuming or
inference: a difference is an error naming both; a checkpoint without a record loads with a
warning.
"""
import inspect
import warnings
from dataclasses import fields
from typing import Mapping, Optional

ARCH_KEY = 'acsdet_architecture'
#: Backbone settings that do not change what the weights mean (initialisation, memory, freezing).
_IGNORED = frozenset({
    'init_cfg', 'pretrained', 'with_cp', 'frozen_stages', 'norm_eval', 'inflate',
    'train_context_slices'
})


class CheckpointMismatch(ValueError):
    """A checkpoint that does not fit the model; the one-line message names both."""


def _plain(value):
    """A config value as JSON-like plain Python (tuples as lists, ConfigDicts as dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _defaults(type_name) -> dict:
    from mmdet.registry import MODELS
    cls = MODELS.get(type_name) if isinstance(type_name, str) else type_name
    if cls is None:
        return {}
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty and k not in _IGNORED
    }


def _mode_defaults(conv_mode) -> dict:
    """The defaults of a conv mode's own options (:func:`acsdet.converters.mode_options`)."""
    from ..converters import CONV_MODES
    if not isinstance(conv_mode, str) or conv_mode not in CONV_MODES:
        return {}
    return {f.name: f.default for f in fields(CONV_MODES[conv_mode].options)}


def model_architecture(model_cfg: Mapping) -> dict:
    """``dict(detector=type, backbone={setting: value})`` of a model config, the backbone
    class's defaults filled in, as plain values (what :data:`ARCH_KEY` holds)."""
    backbone = dict(model_cfg.get('backbone') or {})
    full = {**_defaults(backbone.get('type')), **backbone}
    full = {**_mode_defaults(full.get('conv_mode')), **full}
    return dict(
        detector=_plain(model_cfg.get('type')),
        backbone={
            k: _plain(v)
            for k, v in sorted(full.items()) if k not in _IGNORED
        },
        # how it was trained (not compared: the same weights): what picks the inference mode
        training=dict(train_context_slices=int(full.get('train_context_slices') or 0)))


def _summary(arch: dict) -> str:
    b = arch.get('backbone', {})
    keys = ('type', 'conv_mode', 'num_slices', 'n_fold', 'ref_thickness')
    return f'{arch.get("detector")} / ' + ', '.join(f'{k}={b[k]!r}' for k in keys if k in b)


def check_architecture(checkpoint: Mapping,
                       model_cfg: Mapping,
                       ckpt_path: str,
                       config_name: Optional[str] = None) -> None:
    """Raise :class:`CheckpointMismatch` if ``checkpoint``'s record differs from the model
    config's; warn if it has none."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    recorded = meta.get(ARCH_KEY) if isinstance(meta, Mapping) else None
    wanted = model_architecture(model_cfg)
    config_name = config_name or 'the config'
    if not isinstance(recorded, Mapping):
        warnings.warn(f'{ckpt_path}: no architecture record (a checkpoint written before acsdet '
                      f'0.4 or by another tool): cannot check that it is a {_summary(wanted)} '
                      'model as in ' + config_name)
        return
    diffs = []
    if recorded.get('detector') != wanted['detector']:
        diffs.append(f'detector {recorded.get("detector")!r} vs {wanted["detector"]!r}')
    rb, wb = recorded.get('backbone') or {}, wanted['backbone']
    for k in sorted(set(rb) & set(wb)):
        if rb[k] != wb[k]:
            diffs.append(f'backbone.{k} {rb[k]!r} vs {wb[k]!r}')
    if diffs:
        raise CheckpointMismatch(
            f'checkpoint {ckpt_path} is a {_summary(dict(recorded))} model, {config_name} builds '
            f'{_summary(wanted)} ({"; ".join(diffs[:6])}; checkpoint vs config): use the config '
            'it was trained with')


def checkpoint_state(checkpoint: Mapping) -> dict:
    """The state dict of a loaded checkpoint, DDP's ``module.`` prefix removed."""
    state = checkpoint.get('state_dict', checkpoint)
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}


def load_state_strictly(model,
                        checkpoint: Mapping,
                        ckpt_path: str,
                        config_name: Optional[str] = None) -> None:
    """Load every key of ``model`` from the loaded ``checkpoint``; a :class:`CheckpointMismatch`
    with one line naming both (:func:`state_dict_mismatch`) when a key is missing, unexpected
    or of another shape. Its architecture record is checked apart (:func:`check_architecture`,
    or the runner's :class:`~acsdet.engine.hooks.ArchitectureRecordHook`)."""
    state = checkpoint_state(checkpoint)
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointMismatch(f'checkpoint {ckpt_path} does not fit the model of '
                                 f'{config_name or "the config"}: {problem}')
    model.load_state_dict(state, strict=True)


def state_dict_mismatch(model_state: Mapping, strip: Mapping) -> str:
    """One line saying how a checkpoint's state dict (:func:`checkpoint_state`) differs from a
    model's ('' if it fits)."""
    missing = [k for k in model_state if k not in strip]
    unexpected = [k for k in strip if k not in model_state]
    shapes = [
        f'{k} {tuple(strip[k].shape)} vs {tuple(model_state[k].shape)}' for k in model_state
        if k in strip and hasattr(strip[k], 'shape')
        and tuple(strip[k].shape) != tuple(model_state[k].shape)
    ]
    parts = []
    for what, items in (('missing', missing), ('unexpected', unexpected),
                        ('of another shape (checkpoint vs model)', shapes)):
        if items:
            parts.append(f'{len(items)} keys {what} (e.g. {", ".join(items[:2])})')
    return '; '.join(parts)


def config_from_checkpoint(checkpoint: Mapping, ckpt_path: str):
    """The :class:`~mmengine.config.Config` a checkpoint carries in ``meta['cfg']`` (MMEngine's
    runner writes it; ``acsdet import`` too). A checkpoint without one is a ``ValueError`` naming
    the file and what it is: another code base's (a released M3DV/AlignShift model: convert it
    with ``acsdet import``), or one written without the runner."""
    from mmengine.config import Config
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    text = meta.get('cfg')
    if not isinstance(text, str) or not text.strip():
        if ARCH_KEY in meta:
            what = 'an acsdet architecture record but no config'
        elif 'config' in meta:
            what = ('the config of another code base (mmcv 0.x meta, as the M3DV/AlignShift '
                    'releases: `acsdet import` converts them)')
        else:
            what = 'no config and no acsdet architecture record (another code base\'s?)'
        raise ValueError(f'{ckpt_path}: the checkpoint carries {what}: pass the config it was '
                         'trained with (--config)')
    try:
        return Config.fromstring(text, '.py')
    except Exception as e:  # a config text that does not parse
        raise ValueError(f'{ckpt_path}: the config it carries does not read '
                         f'({type(e).__name__}: {str(e)[:200]})') from None


def default_volumetric(checkpoint: Mapping, model_cfg: Mapping):
    """``(volumetric, why)``: the inference mode a checkpoint runs in by default. Volumetric
    when its architecture record says it was trained with ``train_context_slices`` (its
    stacks saw real neighbours past their ends, as the volumetric pass gives them; the FROC
    difference was measured at +0.00) and the backbone streams depth; per slice otherwise
    (trained on D-slice stacks alone, released models, no record)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    record = meta.get(ARCH_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(record, Mapping):
        return False, 'per slice: the checkpoint has no architecture record'
    c = int((record.get('training') or {}).get('train_context_slices') or 0)
    mode = str((model_cfg.get('backbone') or {}).get('conv_mode', ''))
    if c <= 0:
        return False, 'per slice: trained on D-slice stacks alone (no train_context_slices)'
    if mode in ('2d', 'a3d'):
        return False, f'per slice: conv_mode {mode!r} has no volumetric pass'
    return True, f'volumetric: trained with train_context_slices={c}'
