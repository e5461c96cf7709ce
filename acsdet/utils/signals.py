"""SIGTERM handled as SIGINT is: a command-line run that a scheduler or ``kill`` ends runs its
clean-up (``finally`` blocks, context managers: extracted studies, temporaries) before it exits
with status 143, instead of dying with its temporary files left behind."""
import contextlib
import signal
import threading
from typing import Iterator

#: The exit status of a run ended by SIGTERM (128 + 15, as a shell reports it).
TERMINATED = 143


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM inside :func:`terminate_as_exit`."""


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (exit status 143) in the main thread,
    so the clean-up of everything the block opened runs. Outside the main thread, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(TERMINATED)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
