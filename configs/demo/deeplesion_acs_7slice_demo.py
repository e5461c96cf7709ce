# A CPU-sized ACS 7-slice Mask R-CNN for the synthetic demo (`make demo`): the same design as
# deeplesion_acs_7slice.py (ACS truncated DenseNet, 7 slices at 2 mm, one stride-4 level, Dice
# mask loss), with 192 x 192 input, a slimmer DenseNet (growth 16, blocks 4/8/12) and lighter
# heads, randomly initialised, and a narrower HU window (-250, 350): from scratch, soft-tissue
# contrast of 25-80 HU is hard to find in the wide (-1024, 2050) window. Trains in minutes on
# 2 CPU cores.
_base_ = '../deeplesion_acs_7slice_random.py'
data_root = 'data/synthetic_demo/'
image_size = 192
max_epochs = 10
hu_window = (-250, 350)
model = dict(
    backbone=dict(growth_rate=16, block_config=(4, 8, 12), num_init_features=32),
    neck=dict(in_channels=[96, 176, 280], out_channels=128),
    rpn_head=dict(
        in_channels=128, feat_channels=128,
        anchor_generator=dict(scales=[2, 3, 4, 6, 12])),  # 8 .. 48 px at stride 4
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(num_convs=2, in_channels=128, conv_out_channels=64)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=2000, max_per_img=300), rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=100)))
# the base's pipelines with the demo's window and size (by step type)
__changes = dict(
    HUWindowNormalize=dict(window=hu_window), Resize=dict(scale=(image_size, image_size)))
train_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.train_pipeline]
test_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.test_pipeline]
train_dataloader = dict(
    batch_size=4, num_workers=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[7, 9], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
default_hooks = dict(logger=dict(interval=10))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)  # the demo's numbers (docs/getting_started.md) come from this seed
