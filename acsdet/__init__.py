"""acsdet: ACS convolutions and universal lesion detection in CT on MMDetection 3.x."""
from .version import __version__

__all__ = ['__version__']
