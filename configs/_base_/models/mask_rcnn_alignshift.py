# The AlignShift detector (Yang et al. MICCAI 2020): the truncated DenseNet Mask R-CNN with the
# 'alignshift' backbone (1/8 of the channels shifted each way, 2 mm reference thickness) and
# ThicknessAwareMaskRCNN, which hands each sample's original slice interval (its
# `slice_interval` meta, mm) to the backbone as the thickness.
_base_ = './mask_rcnn_truncated_densenet.py'
model = dict(
    type='ThicknessAwareMaskRCNN',
    thickness_key='slice_interval',
    backbone=dict(conv_mode='alignshift', n_fold=8, ref_thickness=2.0))
