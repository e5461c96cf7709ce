default_scope = 'mmdet'
custom_imports = dict(imports=['acsdet.all_modules'], allow_failed_imports=False)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keep the last checkpoints and the best by the validation FROC average
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='froc/avg', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
# the model's architecture in every checkpoint; a checkpoint of another one is refused on loading
custom_hooks = [dict(type='ArchitectureRecordHook')]
# No DetVisualizationHook: it reads the image file as RGB, and DeepLesion's are 16-bit slices;
# `tools/test.py --show-dir` adds acsdet's DeepLesionVisualizationHook instead.
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='LesionVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
