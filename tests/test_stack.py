"""The pinned stack works: compiled mmcv ops, a stock Mask R-CNN, checkpoints on torch >= 2.6."""
import os
import os.path as osp
import pickle

import pytest
import torch
from mmcv.ops import RoIAlign, nms
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner

import acsdet  # noqa: F401  (installs the checkpoint loader)
import mmdet
from acsdet.testing import det_batch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules


def test_mmcv_nms_compiled_op():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]  # the second box overlaps the first with IoU 0.68
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))


def test_mmcv_roi_align_compiled_op():
    # a linear ramp feature: bilinear RoIAlign samples it exactly
    feat = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    rois = torch.tensor([[0, 4.0, 4.0, 8.0, 8.0]])
    out = RoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=1, aligned=True)(feat, rois)
    # bin centres at x = 5 and 7 (pixel-centre convention: minus 0.5)
    assert torch.allclose(out[0, 0], torch.tensor([[4.5, 6.5], [4.5, 6.5]]))


def _stock_mask_rcnn_cfg():
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_', 'models',
            'mask-rcnn_r50_fpn.py'))
    m = cfg.model
    m.backbone.update(depth=18, init_cfg=None, frozen_stages=-1, norm_eval=False)
    m.neck.in_channels = [64, 128, 256, 512]
    m.roi_head.bbox_head.num_classes = 2
    m.roi_head.mask_head.num_classes = 2
    return m


def _batch(size=96):
    img = torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
    img[:, 20:60, 30:70] = 255  # one bright object
    return det_batch([img], (30, 20, 70, 60), label=1)


def test_stock_mask_rcnn_trains_and_infers_on_cpu():
    register_all_modules()
    model = MODELS.build(_stock_mask_rcnn_cfg())
    model.init_weights()
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.backbone.conv1.weight.detach().clone()

    model.train()
    data = model.data_preprocessor(_batch(), training=True)
    losses = model(**data, mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses, key
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and total > 0
    total.backward()
    optim.step()
    assert not torch.equal(before, model.backbone.conv1.weight)

    model.eval()
    model.roi_head.test_cfg.score_thr = 0.0  # keep every box: an untrained model scores low
    with torch.no_grad():
        data = model.data_preprocessor(_batch(), training=False)
        (pred, ) = model(**data, mode='predict')
    inst = pred.pred_instances
    assert inst.bboxes.ndim == 2 and inst.bboxes.shape[1] == 4
    assert 0 < len(inst.bboxes) <= model.roi_head.test_cfg.max_per_img
    assert len(inst.bboxes) == len(inst.scores) == len(inst.labels) == len(inst.masks)
    assert inst.masks.shape[-2:] == (96, 96) and inst.masks.dtype == torch.bool
    assert ((inst.bboxes >= 0) & (inst.bboxes <= 96)).all()  # rescaled to the 96 x 96 input


class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)  # default_collate stacks the batch
        if mode == 'loss':
            return dict(loss=((out.squeeze(1) - labels)**2).mean())
        return out


def _runner(work_dir, **kw):
    data = [dict(inputs=torch.randn(2), labels=torch.tensor(1.0)) for _ in range(4)]
    loader = dict(
        dataset=data,
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=2,
        collate_fn=dict(type='default_collate'))
    return Runner(
        model=_ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmengine',
        experiment_name=f'exp{id(kw)}',
        **kw)


def test_mmengine_checkpoint_loads_back_on_new_torch(tmp_path):
    runner = _runner(tmp_path / 'train')
    runner.train()
    ckpt = tmp_path / 'train' / 'epoch_2.pth'
    assert ckpt.is_file()
    trained = runner.model.linear.weight.detach().clone()

    # the stock weights-only torch.load rejects MMEngine checkpoints (the incompatibility)
    if 'weights_only' in torch.load.__code__.co_varnames:
        with pytest.raises(pickle.UnpicklingError):
            torch.load(ckpt, weights_only=True)

    # tools/test.py: Runner(load_from=...) -> runner.load_or_resume() -> load_checkpoint
    tester = _runner(tmp_path / 'test', load_from=str(ckpt))
    assert not torch.equal(tester.model.linear.weight, trained)
    tester.load_or_resume()
    assert torch.equal(tester.model.linear.weight, trained)

    # --resume restores the loop position and the message hub's HistoryBuffers
    resumed = _runner(tmp_path / 'resume', load_from=str(ckpt), resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 2 and resumed.iter == 4
    assert len(resumed.message_hub.get_scalar('train/loss').data[0]) > 0


class _GlobalsOf:
    """Pickles as ``getattr(getattr(HistoryBuffer, '__init__'), '__globals__')``: the module
    namespace of mmengine's history buffer, which a plain ``getattr`` allow-list hands out."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer.__init__, '__globals__')


class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_checkpoint_loader_refuses_crafted_checkpoints(tmp_path):
    from mmengine.logging import history_buffer

    from acsdet.compat import load_local_checkpoint
    before = dict(vars(history_buffer))
    torch.save({'state_dict': {}, 'x': _GlobalsOf()}, tmp_path / 'globals.pth')
    with pytest.raises(ValueError, match=r'globals\.pth.*only HistoryBuffer statistics'):
        load_local_checkpoint(str(tmp_path / 'globals.pth'))
    assert vars(history_buffer) == before
    marker = tmp_path / 'ran'
    torch.save({'x': _RunsCode(marker)}, tmp_path / 'code.pth')
    with pytest.raises(pickle.UnpicklingError, match=r'code\.pth'):
        load_local_checkpoint(str(tmp_path / 'code.pth'))
    assert not marker.exists()
    # empty, foreign and missing files: errors that name them
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(ValueError, match=r'empty\.pth is an empty file'):
        load_local_checkpoint(str(tmp_path / 'empty.pth'))
    (tmp_path / 'junk.pth').write_text('not a checkpoint')
    with pytest.raises((ValueError, pickle.UnpicklingError), match=r'junk\.pth'):
        load_local_checkpoint(str(tmp_path / 'junk.pth'))
    with pytest.raises(FileNotFoundError, match=r'nothere\.pth'):
        load_local_checkpoint(str(tmp_path / 'nothere.pth'))
