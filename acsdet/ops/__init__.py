"""3D convolution operators that reuse 2D weights: ACS and 2.5D."""
from .acs_conv import ACSConv, ACSConvTranspose, acs_conv3d, default_acs_split
from .conv2_5d import Conv2_5d, ConvTranspose2_5d

__all__ = ['ACSConv', 'ACSConvTranspose', 'Conv2_5d', 'ConvTranspose2_5d', 'acs_conv3d', 'default_acs_split']
