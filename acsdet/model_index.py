"""The configs acsdet ships, as MMDetection's ``.mim``: every config and ``_base_`` inside the
package (``acsdet/.mim/configs``, made by ``setup.py``; a source checkout reads its ``configs/``),
and ``metafile.yml`` as the model index. A config is named by its path relative to that folder
without ``.py`` (``deeplesion_acs_7slice``, ``demo/deeplesion_acs_7slice_demo``,
``m3dv/alignshift_7slice``).

:func:`resolve_config` turns what a user gives (a file path or a shipped name) into a file, and
says which it took when both exist. Light: no torch, no MMEngine.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

from .utils.lookup import UnknownName, unknown_name_message

_PACKAGE = osp.dirname(osp.abspath(__file__))


class ConfigNotFound(UnknownName):
    """A config that is neither a file nor a shipped name (close names suggested)."""


def config_dir() -> str:
    """The shipped configs: ``acsdet/.mim/configs`` of an installed wheel (a link to the
    checkout's ``configs/`` in an editable install), else a source checkout's ``configs/``."""
    inside = osp.join(_PACKAGE, '.mim', 'configs')
    if osp.isdir(inside):
        return inside
    checkout = osp.join(osp.dirname(_PACKAGE), 'configs')
    if osp.isdir(checkout):
        return checkout
    raise FileNotFoundError(f'no shipped configs: neither {inside} nor {checkout} exists (an '
                            'acsdet wheel built without its configs?)')


def shipped_configs() -> Dict[str, str]:
    """``{name: path}`` of every shipped config (``_base_`` left out), sorted by name."""
    root = config_dir()
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != '_base_' and not d.startswith(('.', '_')))
        for f in sorted(files):
            if f.endswith('.py') and not f.startswith('_'):
                rel = osp.relpath(osp.join(folder, f), root)[:-3]
                out[rel.replace(os.sep, '/')] = osp.join(folder, f)
    return dict(sorted(out.items()))


def _name_of(given: str) -> str:
    name = given.replace(os.sep, '/')
    for prefix in ('configs/', './configs/'):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name[:-3] if name.endswith('.py') else name


def resolve_config(given: str) -> Tuple[str, Optional[str]]:
    """``(config file, note)`` for a config path or a shipped name.

    A file at ``given`` is taken (a path says where it is); otherwise the shipped config of
    that name (``configs/`` prefix and ``.py`` optional). When both exist and differ, the note
    says which was used. Raises :class:`ConfigNotFound` with the close shipped names.
    """
    shipped = shipped_configs()
    name = _name_of(given)
    if osp.isfile(given):
        other = shipped.get(name)
        note = None
        if other and osp.realpath(other) != osp.realpath(given):
            note = (f'config {given}: the file {osp.abspath(given)} is used, not the shipped '
                    f'config {name!r} ({other})')
        return given, note
    if name in shipped:
        return shipped[name], None
    raise ConfigNotFound(
        unknown_name_message(name, shipped, 'config') +
        ' (a config is a file path or a shipped name: `acsdet configs` lists them)')


def model_index() -> List[dict]:
    """The ``Models`` rows of the shipped ``metafile.yml``."""
    import yaml
    with open(osp.join(config_dir(), 'metafile.yml')) as f:
        return list(yaml.safe_load(f).get('Models') or [])


def config_rows() -> List[dict]:
    """One row per shipped config: ``name``, ``path`` and its metafile row's ``Metadata`` and
    average sensitivity (None where the metafile has no row)."""
    rows = {_name_of(m.get('Config', '')): m for m in model_index()}
    out = []
    for name, path in shipped_configs().items():
        m = rows.get(name) or {}
        results = (m.get('Results') or [{}])[0].get('Metrics') or {}
        out.append(
            dict(
                name=name,
                path=path,
                metadata=m.get('Metadata') or {},
                average=results.get('Average Sensitivity (0.5-4 FP)'),
                weights=m.get('Weights')))
    return out
