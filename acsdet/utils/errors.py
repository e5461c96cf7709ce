"""Errors that name the parameters at fault. The library's message says ``depth_chunk``; a
command-line tool says ``--depth-chunk`` (:func:`cli_message`): one message, two vocabularies.

A message marks each parameter it names as ``{name}`` (``{{name}}`` inside an f-string);
:func:`naming` renders the library's message from it and keeps the marked text for the CLI.
Only the parameters given to :func:`naming` are replaced, and nothing else in the message is
parsed, so paths with braces pass unchanged."""
from typing import Mapping, Optional, TypeVar

E = TypeVar('E', bound=BaseException)


def _render(template: str, names: Mapping[str, str]) -> str:
    for parameter, shown in names.items():
        template = template.replace('{' + parameter + '}', shown)
    return template


def naming(exc: E, *parameters: str) -> E:
    """``exc``, whose message marks ``parameters`` as ``{name}``, with the library's message
    (each marked as its plain name)."""
    exc.parameters = parameters
    exc.template = str(exc)
    exc.args = (_render(exc.template, {p: p for p in parameters}), ) + tuple(exc.args[1:])
    return exc


def cli_message(e: BaseException, flags: Optional[Mapping[str, str]] = None) -> str:
    """``e``'s message as a command-line tool gives it: each parameter it names (:func:`naming`)
    as its flag, ``flags[name]`` or ``--`` and the name with dashes."""
    if not getattr(e, 'parameters', None):
        return str(e)
    names = {p: (flags or {}).get(p) or '--' + p.replace('_', '-') for p in e.parameters}
    return _render(e.template, names)
