"""Small shared helpers: atomic writes (:mod:`.files`), strict JSON and COCO RLE
(:mod:`.encoding`), name look-up with suggestions (:mod:`.lookup`), HU windows (:mod:`.hu`)."""
from .encoding import json_safe, mask_to_rle
from .files import (atomic_save, atomic_write, atomic_write_set, check_writable_dir, file_sha256,
                    finish_write_set, owner_is_dead, owner_tag, stale_temporaries, temporary_name)

__all__ = [
    'atomic_save', 'atomic_write', 'atomic_write_set', 'check_writable_dir', 'file_sha256',
    'finish_write_set', 'json_safe', 'mask_to_rle', 'owner_is_dead', 'owner_tag',
    'stale_temporaries', 'temporary_name'
]
