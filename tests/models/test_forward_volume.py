"""TruncatedDenseNet.forward_volume: one 3D pass for every key slice of a volume."""
import pytest
import torch

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from mmdet.registry import MODELS


def _backbone(mode, d=3):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='TruncatedDenseNet',
            conv_mode=mode,
            num_slices=d,
            growth_rate=4,
            block_config=(2, 2, 2),
            num_init_features=8)).eval()


@pytest.mark.parametrize('mode,radius', [('2.5d', 0), ('acs', 3 + 6), ('mean-acs', 3 + 6),
                                         ('soft-acs', 3 + 6), ('3d', 3 + 6), ('tsm', 12),
                                         ('alignshift', 12)])
def test_chunks_do_not_change_the_pass_and_2_5d_equals_every_stack(mode, radius):
    bb = _backbone(mode)
    assert bb.depth_radius() == radius  # conv0 7x7 -> 3, each dense 3x3 -> 1 (shift: every conv)
    x = torch.randn(1, 14, 32, 32)
    t = 2.5 if mode == 'alignshift' else None
    whole = bb.forward_volume(x, t, depth_chunk=100)
    assert [tuple(f.shape) for f in whole] == [(12, 16, 8, 8), (12, 16, 4, 4), (12, 16, 2, 2)]
    with torch.no_grad():  # the plain pass: every layer over all 14 slices at once
        blocks = bb._blocks(x.unsqueeze(1), bb._thickness(t, 1, x.device))
        plain = [bb.depth_collapse[i](f)[0].transpose(0, 1) for i, f in enumerate(blocks)]
    for a, b in zip(whole, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    for chunk in (1, 5):
        for a, b in zip(whole, bb.forward_volume(x, t, depth_chunk=chunk)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    per_stack = [bb(x[:, j:j + 3], torch.tensor([2.5]) if t else None) for j in range(12)]
    gap = max(
        (whole[i][j] - per_stack[j][i][0]).abs().max().item() for i in range(3) for j in range(12))
    if mode == '2.5d':
        assert gap < 1e-5
    else:  # real neighbours where a stack's ends are zero (or edge) padded
        assert gap > 1e-3


def test_each_slice_of_each_layer_is_computed_once_and_keys_select(monkeypatch):
    """Streaming keeps what the next chunk needs: conv0 sees each step's new slices plus its own
    reach (3 each side), not the whole network's radius (9) again every chunk; the collapse
    sees the keys' windows only. (The stem in one piece a step: pieces are the next test's.)"""
    from acsdet.models.backbones import truncated_densenet
    monkeypatch.setattr(truncated_densenet, 'STEM_PIECE', 10**6)
    bb = _backbone('acs')
    x = torch.randn(1, 32, 32, 32)
    seen = []
    bb.features.conv0.register_forward_hook(lambda m, i, o: seen.append(o.shape[2]))
    whole = bb.forward_volume(x, depth_chunk=100)
    assert seen == [32]
    seen.clear()
    chunked = bb.forward_volume(x, depth_chunk=3)
    steps = -(-30 // 3)
    assert sum(seen) <= 32 + 2 * 3 * steps < 30 + 2 * 9 * steps  # streamed < halo per chunk
    collapsed = []  # the depth-collapsing convs run at the key slices only
    bb.depth_collapse[0].register_forward_hook(lambda m, i, o: collapsed.append(o.shape[2]))
    some = bb.forward_volume(x, depth_chunk=4, keys=[29, 2, 17])
    assert collapsed == [1, 1, 1]
    for a, b, c in zip(whole, chunked, some):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        torch.testing.assert_close(c, a[[2, 17, 29]], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r'keys must be distinct key slices 0 \.\. 29'):
        bb.forward_volume(x, keys=[30])


def test_volumes_it_cannot_run_are_refused():
    with pytest.raises(ValueError, match="'a3d' fuses a fixed D x D"):
        _backbone('a3d').depth_radius()
    bb = _backbone('2.5d', d=5)
    with pytest.raises(ValueError, match=r'\(1, L >= 5, H, W\)'):
        bb.forward_volume(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match='depth_chunk'):
        bb.forward_volume(torch.randn(1, 6, 32, 32), depth_chunk=0)
    with pytest.raises(ValueError, match='thickness'):
        _backbone('alignshift').forward_volume(torch.randn(1, 6, 32, 32))
    with pytest.raises(ValueError, match=r'eval mode \(call \.eval\(\) first\)'):
        bb.train().forward_volume(torch.randn(1, 6, 32, 32))
    gn = MODELS.build(
        dict(
            type='TruncatedDenseNet',
            num_slices=3,
            growth_rate=4,
            block_config=(2, 2, 2),
            num_init_features=8,
            norm_cfg=dict(type='GN', num_groups=4))).eval()
    with pytest.raises(ValueError, match=r'norm0 \(GroupNorm\) normalises over depth'):
        gn.forward_volume(torch.randn(1, 6, 32, 32))


def test_training_context_slices_collapse_the_centre_window():
    """With c context slices the blocks see D + 2c slices and the centre window is collapsed:
    for '2.5d' (no slice mixing) exactly the D-slice result, for 'acs' the one-pass features."""
    x = torch.randn(2, 7, 32, 32)
    plain, ctx = _backbone('2.5d'), _backbone('2.5d')
    ctx.train_context_slices = 2
    for a, b in zip(plain(x[:, 2:5]), ctx(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    acs = _backbone('acs')
    acs.train_context_slices = 2
    whole = acs.forward_volume(x[:1], depth_chunk=100)
    for a, b in zip(whole, acs(x[:1])):
        torch.testing.assert_close(a[2:3], b, rtol=0, atol=1e-5)  # key 2 of 5: the centre
    with pytest.raises(ValueError, match=r'D=3 or D \+ 2c = 7'):
        acs(x[:, :5])


def test_a_new_layer_declares_its_depth_radius():
    bb = _backbone('2.5d')
    layer = bb.features.denseblock1.denselayer1.conv2
    layer.depth_radius = 2  # e.g. a registered mode's slice-mixing operator
    assert bb.depth_radius() == 2


def test_a_layer_that_changes_depth_is_refused_not_misaligned():
    from acsdet.models.backbones.depth_stream import LayerNode, VolumeNode, stream
    vol = VolumeNode(torch.randn(1, 2, 10, 4, 4))
    keep = LayerNode(lambda x: x * 2, [vol], radius=1)
    torch.testing.assert_close(
        stream([keep], [keep], range(10), 3)[0], vol.cache[0].transpose(0, 1) * 2)
    drop = LayerNode(lambda x: x[:, :, 1:], [vol], radius=1)  # loses a slice
    with pytest.raises(RuntimeError, match='gave 3 slices for 4 .* must keep depth'):
        stream([drop], [drop], range(10), 3)


def test_channels_last_features_give_the_same_outputs_channels_last():
    bb = _backbone('acs')
    x = torch.randn(1, 10, 32, 32)
    layouts = []
    bb.features.denseblock2.denselayer1.conv2.register_forward_hook(
        lambda m, a, o: layouts.append(a[0].is_contiguous(memory_format=torch.channels_last_3d)))
    fast = bb.forward_volume(x, channels_last=True)
    plain = bb.forward_volume(x, channels_last=False)
    assert layouts == [True, False]  # NDHWC through the blocks, NCDHW without it
    for a, b in zip(fast, plain):
        assert a.is_contiguous(memory_format=torch.channels_last) and b.is_contiguous()
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    with torch.no_grad():  # per stack (no autograd: a channels-last-3d stem), NCHW for mmcv
        assert all(f.is_contiguous() for f in bb(x[:, :3]))


@pytest.mark.parametrize('size,by_product', [(4, True), (5, False)])
def test_collapse_windows_equal_the_conv_at_each_window(size, by_product):
    """Fewer pixels (16) than D * C (18) on a channels-last-3d map: a matrix product per
    window; more (25): the convolution on each window. Either way the Conv3d's values."""
    from acsdet.models.backbones.truncated_densenet import collapse_windows
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(6, 5, (3, 1, 1), bias=True).double()
    calls = []
    conv.register_forward_hook(lambda m, i, o: calls.append(1))
    x = torch.randn(1, 6, 9, size, size, dtype=torch.float64)
    ref = conv(x)[0].transpose(0, 1)[[0, 3, 6]]
    calls.clear()
    out = collapse_windows(conv, x.contiguous(memory_format=torch.channels_last_3d), [0, 3, 6])
    assert bool(calls) != by_product
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_the_stem_in_depth_pieces_gives_the_same_pass(monkeypatch):
    """The stem computes a long window in pieces with its reach (3) each side: the values of one
    call (float64), and the pieces do run (conv0 sees pieces of about STEM_PIECE + 6 slices)."""
    from acsdet.models.backbones import truncated_densenet
    from acsdet.models.backbones.depth_stream import in_depth_pieces
    bb = _backbone('acs').double()
    x = torch.randn(1, 30, 32, 32, dtype=torch.float64)
    whole = bb.forward_volume(x, depth_chunk=100)
    conv = bb.features.conv0
    v = torch.randn(1, 1, 23, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        for piece in (1, 4, 7, 23):
            torch.testing.assert_close(
                in_depth_pieces(conv, v, 3, piece), conv(v), rtol=0, atol=1e-12)
    seen = []
    conv.register_forward_hook(lambda m, i, o: seen.append(o.shape[2]))
    monkeypatch.setattr(truncated_densenet, 'STEM_PIECE', 4)
    pieced = bb.forward_volume(x, depth_chunk=100)
    # 30 slices in 8 pieces of 4 (the last 2), each with up to 3 neighbours a side
    assert len(seen) == 8 and max(seen) == 4 + 6 and 30 + 6 < sum(seen) <= 30 + 7 * 6
    for a, b in zip(whole, pieced):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_a_steps_keys_in_pieces_give_the_same_pass(monkeypatch):
    """The collapse and the yield take a step's keys in pieces spanning fewer than KEY_PIECE
    slices (sparse keys too): the values of the step's keys at once (float64)."""
    from acsdet.models.backbones import truncated_densenet
    from acsdet.models.backbones.depth_stream import key_pieces
    pieces = key_pieces(torch.tensor([0, 1, 2, 5, 6, 9, 20]), 3)
    assert [p.tolist() for p in pieces] == [[0, 1, 2], [5, 6], [9], [20]]
    assert [p.tolist() for p in key_pieces(torch.tensor([4, 9]), None)] == [[4, 9]]
    bb = _backbone('acs').double()
    x = torch.randn(1, 26, 32, 32, dtype=torch.float64)
    keys = [0, 1, 2, 3, 7, 8, 11, 15, 16, 17, 23]
    monkeypatch.setattr(truncated_densenet, 'KEY_PIECE', 10**6)
    whole = [s for s, _ in bb.forward_volume_steps(x, depth_chunk=12, keys=keys)]
    assert [s.tolist() for s in whole] == [keys[:7], keys[7:]]  # one piece a step
    ref = bb.forward_volume(x, depth_chunk=12, keys=keys)
    monkeypatch.setattr(truncated_densenet, 'KEY_PIECE', 3)
    steps = list(bb.forward_volume_steps(x, depth_chunk=12, keys=keys))
    assert [s.tolist() for s, _ in steps] == [[0, 1, 2], [3], [7, 8], [11], [15, 16, 17], [23]]
    for i, a in enumerate(ref):
        torch.testing.assert_close(torch.cat([f[i] for _, f in steps]), a, rtol=0, atol=1e-12)


def test_a_bfloat16_input_gives_the_pass_of_its_float32_under_autocast():
    """Under bfloat16 autocast the stem casts its input first, so the detector holds a bf16
    model input (half the memory) for the same features, bit for bit."""
    bb = _backbone('acs')
    x = torch.randn(1, 12, 32, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        a = bb.forward_volume(x, depth_chunk=4)
        b = bb.forward_volume(x.bfloat16(), depth_chunk=4)
    assert a[0].dtype == torch.bfloat16
    for fa, fb in zip(a, b):
        assert torch.equal(fa, fb)
