# AlignShift (Yang et al. MICCAI 2020), 7 slices, ImageNet-pretrained, as the authors train it:
# the TSM folds blended with their neighbour slice by alpha = 1 - clamp(2 mm / thickness, 0, 1),
# where the thickness is each sample's original slice interval (DL_info.csv); series thicker
# than 2 mm enter as their own neighbouring slices (not resampled), thinner ones at 2 mm.
# deeplesion_alignshift_7slice_resampled.py feeds every series resampled at 2 mm instead.
_base_ = [
    '_base_/models/mask_rcnn_alignshift.py', '_base_/datasets/deeplesion_alignshift.py',
    '_base_/schedules/schedule_20e.py', '_base_/default_runtime.py'
]
pretrained = 'checkpoints/densenet121-a639ec97.pth'
model = dict(backbone=dict(num_slices=7, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
