"""compat: MMEngine checkpoints load back on torch >= 2.6 through acsdet's weights-only loader,
and crafted checkpoints are refused."""
import os
import pickle

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)


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
