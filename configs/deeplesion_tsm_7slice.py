# TSM (Lin et al. ICCV 2019 on CT slices), 7 slices, ImageNet-pretrained 2D weights: before each
# dense-layer (1, K, K) convolution 1/8 of the channels take the next slice's values and 1/8 the
# previous slice's (zero past the ends). Not in the ACS paper's Table VII; the AlignShift paper
# (MICCAI 2020) compares against it.
_base_ = './deeplesion_acs_7slice.py'
model = dict(backbone=dict(conv_mode='tsm', n_fold=8))
