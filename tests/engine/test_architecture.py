"""Checkpoints record their architecture; one of another conv mode (same keys and shapes) is
refused with both named, one without a record loads with a warning."""
import pytest
import torch
from mmengine.config import Config

from acsdet.engine.architecture import (ARCH_KEY, CheckpointMismatch, check_architecture,
                                        model_architecture)
from acsdet.engine.hooks import ArchitectureRecordHook

from ..helpers import CONFIG_DEMO


def _model_cfg(**backbone):
    cfg = Config.fromfile(CONFIG_DEMO)
    cfg.model.backbone.update(backbone)
    return cfg.model


def test_record_fills_class_defaults_and_ignores_initialisation():
    a = model_architecture(_model_cfg())
    assert a['detector'] == 'MaskRCNN' and a['backbone']['conv_mode'] == 'acs'
    assert a['backbone']['num_slices'] == 7 and a['backbone']['growth_rate'] == 16
    cfg = _model_cfg()
    cfg.backbone.pop('conv_mode', None)  # the class default is the same architecture
    assert model_architecture(cfg) == a
    assert model_architecture(_model_cfg(init_cfg=dict(type='Pretrained', checkpoint='x'))) == a
    assert model_architecture(_model_cfg(conv_mode='2.5d')) != a


@pytest.mark.parametrize('mode', ['2.5d', 'mean-acs', 'tsm', 'alignshift'])
def test_a_checkpoint_of_another_conv_mode_is_refused_naming_both(mode):
    """2.5D / Mean-ACS / TSM / AlignShift checkpoints have exactly ACS's keys and shapes."""
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    other = _model_cfg(conv_mode=mode)
    acs = _model_cfg()
    assert {
        k: v.shape
        for k, v in MODELS.build(other).state_dict().items()
    } == {
        k: v.shape
        for k, v in MODELS.build(acs).state_dict().items()
    }
    ckpt = {'meta': {ARCH_KEY: model_architecture(other)}}
    with pytest.raises(CheckpointMismatch) as e:
        check_architecture(ckpt, acs, 'other.pth', 'demo.py')
    msg = str(e.value)
    assert msg.startswith('checkpoint other.pth is a MaskRCNN') and f"conv_mode='{mode}'" in msg
    assert "demo.py builds MaskRCNN / type='TruncatedDenseNet', conv_mode='acs'" in msg
    check_architecture({'meta': {ARCH_KEY: model_architecture(acs)}}, acs, 'same.pth')
    with pytest.warns(UserWarning, match='old.pth: no architecture record'):
        check_architecture({'state_dict': {}}, acs, 'old.pth')


class _Runner:

    def __init__(self, cfg, checkpoint):
        self.cfg = cfg
        self.cfg.checkpoint = checkpoint


def test_hook_records_on_save_and_checks_on_load():
    cfg = Config.fromfile(CONFIG_DEMO)
    hook = ArchitectureRecordHook()
    ckpt = {'meta': {'epoch': 3}, 'state_dict': {}}
    hook.before_save_checkpoint(_Runner(cfg, 'a.pth'), ckpt)
    assert ckpt['meta'][ARCH_KEY] == model_architecture(cfg.model) and ckpt['meta']['epoch'] == 3
    hook.after_load_checkpoint(_Runner(cfg, 'a.pth'), ckpt)
    other = Config.fromfile(CONFIG_DEMO)
    other.model.backbone.conv_mode = '2.5d'
    with pytest.raises(CheckpointMismatch, match='checkpoint a.pth is a'):
        hook.after_load_checkpoint(_Runner(other, 'a.pth'), ckpt)
    # the runtime base config and the command-line tools carry the hook
    assert {'type': 'ArchitectureRecordHook'} in [dict(h) for h in cfg.custom_hooks]


def test_saved_checkpoints_carry_the_record_through_torch_weights_only(tmp_path):
    cfg = Config.fromfile(CONFIG_DEMO)
    ckpt = {'meta': {}, 'state_dict': {'w': torch.zeros(2)}}
    ArchitectureRecordHook().before_save_checkpoint(_Runner(cfg, 'x'), ckpt)
    torch.save(ckpt, tmp_path / 'c.pth')
    back = torch.load(tmp_path / 'c.pth', weights_only=True)  # plain values only
    assert back['meta'][ARCH_KEY] == model_architecture(cfg.model)


def test_a_conv_modes_own_option_defaults_are_part_of_the_record():
    """The mode's options (``n_fold`` of 'tsm') are recorded with their defaults filled in, so a
    config that leaves one at its default still differs from a checkpoint that set it."""
    tsm = model_architecture(_model_cfg(conv_mode='tsm'))
    assert tsm['backbone']['n_fold'] == 8 and 'ref_thickness' not in tsm['backbone']
    align = model_architecture(_model_cfg(conv_mode='alignshift'))['backbone']
    assert (align['n_fold'], align['ref_thickness'], align['zero_pad']) == (8, 2.0, False)
    ckpt = {'meta': {ARCH_KEY: model_architecture(_model_cfg(conv_mode='tsm', n_fold=4))}}
    with pytest.raises(CheckpointMismatch, match='backbone.n_fold 4 vs 8'):
        check_architecture(ckpt, _model_cfg(conv_mode='tsm'), 'tsm4.pth')
    # '3d' inflation is initialisation: not part of what the weights mean
    assert model_architecture(_model_cfg(conv_mode='3d', inflate=False)) == model_architecture(
        _model_cfg(conv_mode='3d'))


def test_training_context_is_not_part_of_the_record():
    """A checkpoint trained with context slices runs with the plain config (same weights): the
    record says how it was trained (what picks the inference mode) apart from the architecture,
    which is all that is compared."""
    ctx = model_architecture(_model_cfg(train_context_slices=3))
    plain = model_architecture(_model_cfg())
    assert ctx['backbone'] == plain['backbone'] and ctx['detector'] == plain['detector']
    assert ctx['training'] == dict(train_context_slices=3) != plain['training']
    check_architecture({'meta': {ARCH_KEY: ctx}}, _model_cfg(), 'ctx.pth')
    recorded = dict(ctx, backbone=dict(ctx['backbone'], train_context_slices=3))  # a record
    check_architecture({'meta': {ARCH_KEY: recorded}}, _model_cfg(), 'ctx.pth')  # that has it
    with pytest.raises(CheckpointMismatch):  # while the architecture itself is still compared
        check_architecture({'meta': {ARCH_KEY: recorded}}, _model_cfg(conv_mode='3d'), 'ctx.pth')


def test_soft_acs_is_told_apart_from_acs_and_mean_acs():
    """Soft-ACS adds soft_w_core to every 3x3 conv; the record names each variant."""
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    records = {
        m: model_architecture(_model_cfg(conv_mode=m))
        for m in ('acs', 'mean-acs', 'soft-acs')
    }
    assert len({r['backbone']['conv_mode'] for r in records.values()}) == 3
    soft = set(MODELS.build(_model_cfg(conv_mode='soft-acs')).state_dict())
    extra = soft - set(MODELS.build(_model_cfg()).state_dict())
    assert extra and all(k.endswith('soft_w_core') for k in extra)
    with pytest.raises(CheckpointMismatch, match="conv_mode='soft-acs'"):
        check_architecture({'meta': {ARCH_KEY: records['soft-acs']}}, _model_cfg(), 's.pth')
