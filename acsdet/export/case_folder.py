"""Case folders: where one CT's results live, who owns them, and how they are replaced.

A case folder ``<out_dir>/<case>`` is acsdet's only when it carries the manifest
:data:`MANIFEST` (``{"acsdet_case": 1, "input": ..., "files": [...]}``) that :func:`commit_case`
writes. The rules, so that no run ever destroys a user's file:

- an existing ``<out_dir>/<case>`` is replaced only if it is an acsdet case folder **of the same
  input** holding nothing but the files its manifest lists; a folder without the manifest, a file,
  a folder holding other files, a link to anything but an acsdet case folder, or the results of
  another input are refused with an error naming them (nothing is moved or deleted);
- an output location that is, contains or lies inside an input is refused
  (:func:`check_output_location`);
- case names are unique in a run and stable across runs into one output folder, and never a
  name acsdet writes there itself (:data:`RESERVED_NAMES`; :func:`assign_case_names`);
- temporaries (``.<case>.<owner>.<hex>.tmp`` / ``.old``) of runs that were killed are removed by
  the next write of that case, only when their process is gone and they carry the manifest.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils import stale_temporaries, temporary_name
from ..utils.errors import naming
from ..utils.files import hashed_name
from ..version import __version__

MANIFEST = 'acsdet-case.json'
#: Names acsdet writes in an output folder itself: never a case's name.
RESERVED_NAMES = ('summary.csv', )


class CaseFolderError(OSError):
    """An output location acsdet refuses to write or replace; the message names it."""


def read_manifest(folder: str) -> Optional[dict]:
    """The manifest of an acsdet case folder, or None if ``folder`` is not one."""
    try:
        with open(osp.join(folder, MANIFEST)) as f:
            man = json.load(f)
    except (OSError, ValueError):
        return None
    return man if isinstance(man, dict) and man.get('acsdet_case') == 1 else None


def _inside(child: str, parent: str) -> bool:
    child, parent = osp.realpath(child), osp.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_output_location(out_dir: str, case_dirs: Sequence[str], inputs: Sequence[str]) -> None:
    """Refuse an output folder that is or lies inside an input, and a case folder that is or
    contains an input (replacing it would delete the input)."""
    for inp in inputs:
        if osp.isdir(inp) and _inside(out_dir, inp):
            raise naming(
                CaseFolderError(
                    f'{{out_dir}} {out_dir} is inside the input {inp}: results are never '
                    'written into an input; choose another folder'), 'out_dir')
        for case in case_dirs:
            if _inside(inp, case):
                raise naming(
                    CaseFolderError(f'the case folder {case} would be the input {inp} or hold '
                                    'it: choose another {out_dir}'), 'out_dir')


def assign_case_names(out_dir: str, inputs: Sequence[Tuple[str, str]]) -> List[str]:
    """A case name for each ``(input key, base name)``, unique in the run and stable across runs
    into the same ``out_dir``: the plain base name belongs to the first input that wrote it there
    (its manifest says which) or, where none has, to the first input of the run that has that
    name; every other input with that name gets ``<name>-<8 hex of its input key>``. (A
    ``<name>`` there that acsdet did not write stays the plain name, and
    :func:`check_replaceable` refuses it.)"""
    claimed: Dict[str, str] = {}
    for key, name in inputs:
        if name not in claimed and osp.lexists(osp.join(out_dir, name)):
            man = read_manifest(osp.join(out_dir, name))
            if man is not None and man.get('input'):
                claimed[name] = man['input']
    out = []
    for key, name in inputs:
        if name in RESERVED_NAMES:  # a case named summary.csv would block the run's summary
            out.append(hashed_name(name, key))
            continue
        owner = claimed.setdefault(name, key)
        out.append(name if owner == key else hashed_name(name, key))
    return out


def _remove_stale(out_dir: str, case: str) -> None:
    for path in stale_temporaries(out_dir, f'.{case}.'):
        if osp.isdir(path) and not osp.islink(path) and (read_manifest(path) is not None
                                                         or not os.listdir(path)):
            shutil.rmtree(path, ignore_errors=True)


def new_case_dir(out_dir: str, case: str, key: Optional[str], source: str) -> str:
    """A fresh temporary case folder beside ``out_dir/<case>`` with a manifest saying it is in
    progress (so that a kill leaves something the next run recognises and removes)."""
    os.makedirs(out_dir, exist_ok=True)
    _remove_stale(out_dir, case)
    tmp = temporary_name(osp.join(out_dir, f'.{case}'))
    os.makedirs(tmp)
    write_manifest(tmp, key, source, [], complete=False)
    return tmp


def write_manifest(folder: str,
                   key: Optional[str],
                   source: str,
                   files: List[str],
                   complete: bool,
                   outputs: Sequence[str] = (),
                   made_with: Optional[dict] = None) -> None:
    """``made_with``: what made the results (:func:`made_with`), compared by :func:`is_done`."""
    with open(osp.join(folder, MANIFEST), 'w') as f:
        json.dump(
            dict(
                acsdet_case=1,
                acsdet_version=__version__,
                input=key,
                source=source,
                complete=complete,
                outputs=list(outputs),
                files=sorted(files),
                made_with=made_with),
            f,
            indent=1,
            allow_nan=False)


def made_with(settings: dict, input_fingerprint: str) -> dict:
    """What made a case's results, as its manifest records it and ``--skip-done`` compares it:
    the run's ``settings`` (:meth:`acsdet.inference.LesionDetector.settings` and the reading
    options) and the input's fingerprint (:func:`acsdet.io.input_fingerprint`), JSON-normal."""
    return json.loads(json.dumps(dict(settings, input=input_fingerprint), sort_keys=True))


def check_replaceable(final: str, key: Optional[str]) -> None:
    """Raise :class:`CaseFolderError` unless ``final`` (which exists) may be replaced by the
    results of input ``key`` (see the module doc)."""
    target = osp.realpath(final) if osp.islink(final) else final
    man = read_manifest(target) if osp.isdir(target) else None
    if man is None:
        what = 'a link to something' if osp.islink(final) else (
            'a folder' if osp.isdir(final) else 'a file')
        raise naming(
            CaseFolderError(f'{final} exists and is {what} acsdet did not write (no {MANIFEST}): '
                            'refusing to replace it; move it or choose another {out_dir}'),
            'out_dir')
    if key is not None and man.get('input') not in (None, key):
        raise CaseFolderError(f'{final} holds the results of another input ({man.get("input")}):'
                              ' refusing to replace them; pass another case name')
    extra = sorted(set(os.listdir(target)) - set(man.get('files', [])) - {MANIFEST})
    if extra:
        raise naming(
            CaseFolderError(f'{final} holds files acsdet did not write ({", ".join(extra[:5])}): '
                            'refusing to replace it; move them or choose another {out_dir}'),
            'out_dir')


def commit_case(tmp: str,
                out_dir: str,
                case: str,
                key: Optional[str],
                source: str,
                outputs: Sequence[str] = (),
                made_with: Optional[dict] = None) -> str:
    """Mark the finished temporary folder complete (with the output types it holds) and swap it
    in as ``out_dir/<case>`` (replacing only what :func:`check_replaceable` allows). Returns the
    case folder."""
    final = osp.join(out_dir, case)
    files = [n for n in os.listdir(tmp) if n != MANIFEST]
    write_manifest(tmp, key, source, files, complete=True, outputs=outputs, made_with=made_with)
    if not osp.lexists(final):
        os.replace(tmp, final)
        return final
    check_replaceable(final, key)
    if osp.islink(final):  # the link goes, the case folder it points to stays
        os.remove(final)
        os.replace(tmp, final)
        return final
    old = temporary_name(osp.join(out_dir, f'.{case}'), 'old')
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old)
    return final


def is_done(folder: str,
            key: Optional[str],
            outputs: Sequence[str],
            made_with: Optional[dict] = None) -> bool:
    """Whether ``folder`` holds finished results of input ``key`` with every output type in
    ``outputs`` (``--skip-done``): a complete acsdet case folder (written whole, then swapped in)
    of that input whose manifest lists those types and whose listed files are all there; with
    ``made_with`` (:func:`made_with`), only if the same settings made them from the same input
    (config, checkpoint, thresholds, slices, mode, grouping, reading options, the input's
    fingerprint)."""
    man = read_manifest(folder) if osp.isdir(folder) else None
    if man is None or man.get('complete') is not True or man.get('input') != key:
        return False
    if made_with is not None and man.get('made_with') != made_with:
        return False
    if not set(outputs) <= set(man.get('outputs') or ()):
        return False
    return all(osp.isfile(osp.join(folder, n)) for n in man.get('files', []))
