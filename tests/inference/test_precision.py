"""inference/precision: bfloat16 only where the hardware computes it natively, float32 features
for the heads; the inference mode a checkpoint picks by default."""
import pytest
import torch

from acsdet.engine.architecture import ARCH_KEY, default_volumetric
from acsdet.inference.precision import as_float32, autocast_to, resolve_precision


def test_bf16_runs_only_where_it_is_native(monkeypatch):
    monkeypatch.setattr(torch.cpu, '_is_avx512_bf16_supported', lambda: True)
    assert resolve_precision('bf16', 'cpu') == 'bf16'
    monkeypatch.setattr(torch.cpu, '_is_avx512_bf16_supported', lambda: False)
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: False)
    with pytest.warns(UserWarning, match='neither AVX512-BF16 nor AMX .* running fp32'):
        assert resolve_precision('bf16', 'cpu') == 'fp32'
    assert resolve_precision('fp32', 'cpu') == 'fp32'
    with pytest.raises(ValueError, match="precision must be one of \\('fp32', 'bf16'\\)"):
        resolve_precision('fp16', 'cpu')


def test_autocast_computes_convolutions_in_bf16_and_hands_on_float32():
    conv = torch.nn.Conv2d(4, 8, 3)
    x = torch.randn(1, 4, 16, 16)
    with autocast_to('bf16', 'cpu'):
        y = conv(x)
    with autocast_to('fp32', 'cpu'):
        z = conv(x)
    assert y.dtype == torch.bfloat16 and z.dtype == torch.float32
    assert [t.dtype for t in as_float32((y, y))] == [torch.float32] * 2
    assert torch.allclose(y.float(), z, atol=0.1, rtol=0.05)


def test_a_checkpoint_trained_with_context_slices_runs_volumetric_by_default():

    def ckpt(c):
        return {'meta': {ARCH_KEY: {'training': {'train_context_slices': c}}}}

    acs = dict(backbone=dict(conv_mode='acs'))
    assert default_volumetric(ckpt(3),
                              acs) == (True, 'volumetric: trained with train_context_slices=3')
    assert default_volumetric(ckpt(0), acs)[0] is False
    assert default_volumetric(ckpt(3), dict(backbone=dict(conv_mode='a3d')))[0] is False
    assert default_volumetric({}, acs) == (False,
                                           'per slice: the checkpoint has no architecture record')
