"""inference/precision: bfloat16 only where the hardware computes it natively, float32 features
for the heads; the inference mode a checkpoint picks by default."""
import pytest
import torch

from acsdet.engine.architecture import ARCH_KEY, default_volumetric
from acsdet.inference.precision import as_float32, autocast_to, resolve_precision, run_layers_in


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


class _Head(torch.nn.Module):
    """A head as MMDetection's: heavy layers, then ``rpn_cls`` / ``fc_cls`` making scores."""

    def __init__(self, out_name):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        setattr(self, out_name, torch.nn.Conv2d(4, 2, 1))
        self.out_name = out_name

    def forward(self, x):
        return [getattr(self, self.out_name)(self.conv(x).relu())], x.shape


def test_bf16_runs_the_heavy_layers_and_float32_makes_the_scores():
    model = torch.nn.Module()
    stem = torch.nn.Conv2d(3, 4, 1)
    model.extract_feat = lambda x: stem(x)
    model.rpn_head = _Head('rpn_cls')
    model.roi_head = torch.nn.Module()
    model.roi_head.bbox_head = _Head('fc_cls')
    model.roi_head.mask_head = None
    layers = {
        'conv': model.rpn_head.conv,
        'rpn_cls': model.rpn_head.rpn_cls,
        'box conv': model.roi_head.bbox_head.conv,
        'fc_cls': model.roi_head.bbox_head.fc_cls
    }
    dtypes = {}
    for name, m in layers.items():
        m.register_forward_hook(lambda m, a, o, n=name: dtypes.update({n: (a[0].dtype, o.dtype)}))
    run_layers_in(model, 'bf16', 'cpu')
    x = torch.randn(1, 3, 8, 8)
    feats = model.extract_feat(x)
    assert feats.dtype == torch.float32  # handed on in float32
    (scores, ), shape = model.rpn_head(feats)
    (box_scores, ), _ = model.roi_head.bbox_head(feats)
    assert scores.dtype == box_scores.dtype == torch.float32 and shape == (1, 4, 8, 8)
    bf16, fp32 = torch.bfloat16, torch.float32
    # (what the layer is called with, what it returns): the score layers take the bfloat16
    # activations and compute in float32 (under autocast a convolution would return bfloat16)
    assert dtypes == {
        'conv': (fp32, bf16),
        'rpn_cls': (bf16, fp32),
        'box conv': (fp32, bf16),
        'fc_cls': (bf16, fp32)
    }
    # the heavy layers' weights held as autocast casts them, the score layers' float32
    assert layers['conv'].weight.dtype == layers['box conv'].weight.dtype == bf16
    assert layers['rpn_cls'].weight.dtype == layers['fc_cls'].weight.dtype == fp32


def test_weights_held_in_bf16_give_what_autocast_gives_them_in_float32():
    from acsdet.inference.precision import hold_weights_in_bf16
    torch.manual_seed(0)
    head = torch.nn.Sequential(
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(16, 8, 2, stride=2), torch.nn.Flatten(),
        torch.nn.Linear(8 * 16 * 16, 32))
    x = torch.randn(3, 8, 8, 8)
    with torch.no_grad(), autocast_to('bf16', 'cpu'):
        ref = head(x)
        assert hold_weights_in_bf16(head) == 3 and head[4].bias.dtype == torch.bfloat16
        held = head(x)
    assert ref.dtype == held.dtype == torch.bfloat16 and torch.equal(ref, held)


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
