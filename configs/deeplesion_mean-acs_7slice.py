# Mean-ACS Mask R-CNN, 7 slices, ImageNet-pretrained: the ACS paper's Mean-ACS variant (its
# Table III; used there on LIDC-IDRI only, appendix Table A1), here on DeepLesion under the
# protocol of deeplesion_acs_7slice.py. Not in the paper's Table VII.
_base_ = './deeplesion_acs_7slice.py'
model = dict(backbone=dict(conv_mode='mean-acs'))
