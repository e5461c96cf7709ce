"""What acsdet's derived DICOM objects (SEG, SR) share: their series numbers, the identity of a
new object, the source CT they derive from (its headers made fit to copy), and the algorithm
that made them."""
import copy
import functools
import os.path as osp
from typing import List, Optional, Tuple

from ..utils.errors import naming

#: The series numbers of acsdet's derived series (SEG, SR), high to stay clear of a scanner's.
SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902


class DicomOutputError(ValueError):
    """A DICOM output that cannot be made for this input; the message says why."""

    @classmethod
    def not_dicom(cls, source: str) -> 'DicomOutputError':
        """The error for DICOM outputs asked of the non-DICOM input ``source``."""
        return naming(
            cls(f'{source}: DICOM SEG / SR outputs reference the source CT\'s DICOM instances, '
                "and this input is not DICOM: use {outputs} 'json' 'nifti' (lesions.nii.gz in "
                "the input's geometry)"), 'outputs')


def require_dicom_extra() -> None:
    """A :class:`DicomOutputError` naming the extra when highdicom (acsdet's ``dicom`` extra) is
    not installed: before any work, not after the model ran."""
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise DicomOutputError("DICOM SEG / SR outputs need acsdet's DICOM extra (highdicom, "
                               "python-gdcm): pip install 'acsdet[dicom]'") from None


def dicom_source(result):
    """The :class:`~acsdet.io.dicom.DicomSource` of a result's volume, or
    :meth:`DicomOutputError.not_dicom`."""
    src = result.volume.dicom
    if src is None:
        raise DicomOutputError.not_dicom(result.volume.source)
    return src


#: Type 2 attributes (present, possibly empty) the derived objects take from the source; a
#: de-identified series often lacks them.
TYPE2_COPIED = ('PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate',
                'StudyTime', 'StudyID', 'AccessionNumber', 'ReferringPhysicianName')
#: Value representations a copied value is checked against (UIDs, numbers and binary data are
#: left as they are: they identify and place the source).
_TEXT_VRS = ('AE', 'AS', 'CS', 'DA', 'DT', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UT')


@functools.lru_cache(maxsize=1)
def _declared_charsets() -> frozenset:
    """The character sets highdicom declares as they are (any other is written as UTF-8)."""
    import highdicom as hd
    return frozenset(v.value for v in hd.SpecificCharacterSetValues)


def _charset(value) -> Tuple[Optional[object], Optional[str]]:
    """``(SpecificCharacterSet for the derived object, a note)``: an empty first value with code
    extensions is ISO 2022 IR 6 (PS3.3 C.12.1.1.2); a defined term highdicom does not know is
    written as UTF-8 (ISO_IR 192: every value is a decoded string by then)."""
    values = [value] if isinstance(value, str) else list(value or [])
    values = [str(v).strip() for v in values]
    if not any(values) or values == ['ISO_IR 6']:
        return None, None  # the default repertoire
    if len(values) > 1 and not values[0]:
        values[0] = 'ISO 2022 IR 6'
    values = [v for v in values if v]
    if all(v in _declared_charsets() for v in values):
        return (values[0] if len(values) == 1 else values), None
    return 'ISO_IR 192', f'character set {values} written as UTF-8 (ISO_IR 192)'


def _fit(elem) -> Optional[str]:
    """Make a copied text element valid for its VR (truncated to its length, or emptied when its
    format is wrong); a note saying what changed, or None."""
    from pydicom.config import RAISE
    from pydicom.valuerep import MAX_VALUE_LEN, validate_value
    values = elem.value if elem.VM > 1 else [elem.value]
    fixed, changed = [], []
    for v in values:
        try:  # a PersonName object passes unchecked: its text is checked
            validate_value(elem.VR, str(v) if elem.VR == 'PN' else v, RAISE)
            fixed.append(v)
            continue
        except (ValueError, TypeError):
            pass
        text = str(v)
        if elem.VR == 'PN':  # 64 characters a component group
            new = '='.join(g[:64] for g in text.split('='))
        elif elem.VR in MAX_VALUE_LEN:
            new = text[:MAX_VALUE_LEN[elem.VR]]
        else:
            new = text
        try:
            validate_value(elem.VR, new, RAISE)
        except (ValueError, TypeError):
            new = ''  # a date, time or age in another format: emptied
        fixed.append(new)
        changed.append(f'{len(text)} characters' if new else f'{text[:20]!r}')
    if not changed:
        return None
    elem.value = fixed if elem.VM > 1 else fixed[0]
    how = 'truncated to fit its VR' if any(fixed) else 'emptied (not a valid value)'
    return f'{elem.keyword} ({elem.VR}, {", ".join(changed)}) {how}'


def derivable_sources(datasets: list) -> Tuple[list, List[str]]:
    """Copies of the source headers that the derived objects may copy from as the standard
    allows: the Type 2 attributes :data:`TYPE2_COPIED` present (empty where missing), every text
    value valid for its VR (a 401-character PatientName truncated to 64 characters a component
    group), the character set declared as highdicom takes it (:func:`_charset`). The sources
    themselves are not changed. Returns ``(copies, notes)``; the notes name what changed."""
    out, notes = [], []
    for ds in datasets:
        ds = copy.copy(ds)  # the elements are replaced, never edited in place
        for key in TYPE2_COPIED:
            if key not in ds:
                setattr(ds, key, '')
                notes.append(f'{key} missing in the source: written empty (Type 2)')
        for elem in list(ds):
            if elem.VR in _TEXT_VRS and elem.value not in (None, ''):
                elem = copy.deepcopy(elem)
                note = _fit(elem)
                if note:
                    ds[elem.tag] = elem
                    notes.append(note)
        charset, note = _charset(ds.get('SpecificCharacterSet'))
        if 'SpecificCharacterSet' in ds:
            del ds.SpecificCharacterSet  # values are decoded strings by now; declared anew
        if charset is not None:
            ds.SpecificCharacterSet = charset
        if note:
            notes.append(note)
        out.append(ds)
    unique = list(dict.fromkeys(notes))  # one note per change, not one per slice
    return out, [f'source header: {n}' for n in unique]


def algorithm_parameters(result) -> dict:
    """The config and checkpoint file names of a result's provenance (those known)."""
    p = result.provenance
    known = (('config', p.config), ('checkpoint', p.checkpoint))
    return {k: osp.basename(v) for k, v in known if v}


def new_instance(series_number: int, description: str) -> dict:
    """The identity of a new derived object (keyword arguments of highdicom's SOP classes):
    new series and SOP instance UIDs every run, instance 1, manufacturer acsdet."""
    from pydicom.uid import generate_uid
    return dict(
        series_instance_uid=generate_uid(),
        series_number=series_number,
        series_description=description,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer='acsdet')
