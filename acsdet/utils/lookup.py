"""Looking a name up in a registry table, suggesting the close names when it is not there (as
MONAI's ``look_up_option``): ``conv_mode='asc'`` says "did you mean 'acs'?"."""
import difflib
from typing import Iterable, Mapping, TypeVar

V = TypeVar('V')


class UnknownName(ValueError, KeyError):
    """A name that is not in its table (a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


def close_names(name: str, choices: Iterable[str], n: int = 3) -> list:
    """The registered names closest to ``name`` (case-insensitive), best first."""
    choices = list(choices)
    lower = {c.lower(): c for c in choices}
    if name.lower() in lower:
        return [lower[name.lower()]]
    return [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n, 0.5)]


def unknown_name_message(name, choices: Iterable[str], what: str) -> str:
    """``"{what} 'x' is not one of 'a', 'b'; did you mean 'a'?"``."""
    choices = list(choices)
    listed = ', '.join(repr(c) for c in choices)
    close = close_names(str(name), choices) if isinstance(name, str) else []
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ''
    return f'{what} {name!r} is not one of {listed}{hint}'


def look_up(name, table: Mapping[str, V], what: str) -> V:
    """``table[name]``, or :class:`UnknownName` listing the names and the close ones."""
    try:
        return table[name]
    except (KeyError, TypeError):
        raise UnknownName(unknown_name_message(name, table, what)) from None
