# Paper: SGD momentum 0.9, lr 0.02, 20 epochs, lr x 0.1 at epochs 10 and 13.
# AlignShift code: weight decay 1e-4, gradient clipping 35, linear warm-up 500 iterations.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=20, by_epoch=True, milestones=[10, 13], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
# lr 0.02 is for 8 GPUs x 2 images; --auto-scale-lr scales it to the actual batch
auto_scale_lr = dict(enable=False, base_batch_size=16)
