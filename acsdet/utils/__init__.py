"""Small shared helpers."""
from .io import atomic_write, mask_to_rle

__all__ = ['atomic_write', 'mask_to_rle']
