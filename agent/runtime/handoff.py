"""The validated config from ``run``'s validating process to its run-time process, across ``os.execv``.

Written to an anonymous in-memory file (``memfd_create``; an unlinked temporary file where there is
none): nothing with the config's secrets is left on disk or under a name, and the descriptor, inherited
by the run-time process alone, is closed once read. :func:`dump` and :func:`load` are the one place the
config is encoded and decoded: the validated models' plain twins (:func:`agent.contract.plain.to_plain`),
pickled, so the run-time process reads its config without importing pydantic.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, BinaryIO

MAGIC = b"edge-agent-handoff-1\n"  # a descriptor that holds something else is refused, not unpickled blindly


class HandoffError(Exception):
    """The hand-off cannot be written or read; names what and where."""


def shared_file() -> int:
    """An inheritable descriptor of an empty anonymous file, for :func:`dump` ``into`` (agent.runtime.beside)."""
    fh = _anonymous_file()
    try:
        fd = os.dup(fh.fileno())
    finally:
        fh.close()
    os.set_inheritable(fd, True)
    return fd


def dump(cfg: Any, meta: dict[str, Any], *, into: int | None = None) -> int:
    """Write ``meta`` (plain data, read first) and ``cfg``; returns an inheritable descriptor, at offset 0:
    a new anonymous file's, or ``into`` (:func:`shared_file`'s, written from its start)."""
    fh = _anonymous_file() if into is None else os.fdopen(os.dup(into), "w+b")
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(MAGIC)
        pickle.dump(meta, fh, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(_encode(cfg), fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.flush()
        fd = os.dup(fh.fileno()) if into is None else into
    except Exception as e:  # e.g. a third-party driver's config holding a value pickle cannot write
        raise HandoffError(f"cannot hand the config over: {type(e).__name__}: {e}") from None
    finally:
        fh.close()
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


class Handoff:
    """What the run-time process got: ``meta`` at once; :meth:`config` imports the config's models. (This
    module is imported before ``run`` forks and in the run-time process: no dataclasses, no tempfile.)"""

    def __init__(self, meta: dict[str, Any], fh: BinaryIO | None):
        self.meta = meta
        self._fh = fh

    def __repr__(self) -> str:
        return f"Handoff(meta={self.meta!r})"

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def config(self) -> Any:
        if self._fh is None:
            raise HandoffError("the config was already read")
        try:
            return _decode(pickle.load(self._fh))
        except Exception as e:
            raise HandoffError(f"cannot read the config handed over: {type(e).__name__}: {e}") from None
        finally:
            self._fh.close()
            self._fh = None


def load(fd: int) -> Handoff:
    """Open the descriptor :func:`dump` returned (in this process: ``os.execv`` keeps it) and read ``meta``."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)  # written beside this process (agent.runtime.beside): the offset is shared
        fh = os.fdopen(fd, "rb")
    except OSError as e:
        raise HandoffError(f"cannot open the hand-off descriptor {fd}: {e.strerror}") from None
    try:
        if fh.read(len(MAGIC)) != MAGIC:
            raise HandoffError(f"descriptor {fd} does not hold a config handed over by `edge-agent run`")
        meta = pickle.load(fh)
    except HandoffError:
        fh.close()
        raise
    except Exception as e:
        fh.close()
        raise HandoffError(f"cannot read the hand-off on descriptor {fd}: {type(e).__name__}: {e}") from None
    return Handoff(meta, fh)


def _encode(cfg: Any) -> Any:
    from ..contract.plain import to_plain

    return to_plain(cfg)


def _decode(data: Any) -> Any:
    return data


def _anonymous_file() -> BinaryIO:
    try:
        fd = os.memfd_create("edge-agent-config", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd (not Linux, or an old kernel): an unlinked file, mode 0600
        import tempfile

        try:
            return tempfile.TemporaryFile()  # noqa: SIM115 - closed by dump
        except OSError as e:
            raise HandoffError(f"cannot create a file for the config hand-off: {e.strerror}") from None
    return os.fdopen(fd, "w+b")
