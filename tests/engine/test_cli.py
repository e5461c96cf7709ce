"""The tools' config loading: a backbone and pipelines that disagree on D are refused up front."""
import pytest

from acsdet.engine.cli import load_config

from ..helpers import CONFIG_DEMO


def test_num_slices_must_agree_between_backbone_and_pipelines(tmp_path):
    cfg = load_config(CONFIG_DEMO, work_dir=str(tmp_path))
    assert cfg.model.backbone.num_slices == 7
    with pytest.raises(
            ValueError,
            match=r'the train_dataloader pipeline loads 7 slices, the '
            r'backbone takes 3: set the same num_slices in both'):
        load_config(CONFIG_DEMO, cfg_options={'model.backbone.num_slices': 3})
    assert CONFIG_DEMO in str(
        pytest.raises(
            ValueError, load_config, CONFIG_DEMO, cfg_options={
                'model.backbone.num_slices': 5
            }).value)


def test_training_context_slices_are_loaded_by_the_training_pipeline_only(tmp_path):
    opts = {'model.backbone.train_context_slices': 2}
    with pytest.raises(
            ValueError,
            match=r'the train_dataloader pipeline loads 7 slices, the '
            r'backbone takes 7 \+ 2 x 2 context slices'):
        load_config(CONFIG_DEMO, cfg_options=opts)
    cfg = load_config(
        CONFIG_DEMO, cfg_options={
            **opts, 'train_dataloader.dataset.pipeline.0.num_slices': 11
        })
    assert cfg.train_dataloader.dataset.pipeline[0].num_slices == 11
