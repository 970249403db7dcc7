"""Writing and reading a run's files safely: atomic writes, locks, clear errors.

Every writer goes through :func:`atomic_write`, so a reader sees the old file or the new one
whole, never half of one; files get the permissions the user's umask allows (not
``mkstemp``'s 0600). :func:`exclusive` is the lock that keeps two processes out of one
directory. Read errors (missing, undecodable, not JSON) become a one-line :class:`RunError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["RunError", "RunBusy", "atomic_write", "write_text", "read_text", "read_json", "exclusive",
           "remove_orphans"]


class RunError(RuntimeError):
    """A run directory that cannot be used as asked (another config, a corrupt file, no space)."""


class RunBusy(RunError):
    """Another process holds the directory's lock."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` then rename over ``path``: readers see the old or the new file whole.

    An OSError (read-only directory, full disk) becomes a :class:`RunError` naming ``path``;
    the previous file, if any, is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise RunError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_text(path: Path) -> str:
    """A UTF-8 text file, or a one-line RunError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise RunError(f"{path} is not UTF-8 text (byte {err.start}); restore or remove it") from None
    except OSError as err:
        raise RunError(f"cannot read {path}: {err.strerror or err}") from None


def read_json(path: Path) -> dict:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not valid JSON ({err})") from None


@contextlib.contextmanager
def exclusive(path: Path, busy_message: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; raise :class:`RunBusy` at once, or wait, if held.

    The lock dies with its process (even on SIGKILL), so a stale lock file never blocks.
    File systems without locks (some network mounts) run unlocked.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as err:
        raise RunError(f"cannot lock {path}: {err.strerror or err}") from None
    with handle:
        locked = True
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise RunBusy(f"{busy_message}{f' (pid {holder})' if holder else ''}") from None
        except OSError:  # no locking on this file system (ENOLCK, ENOSYS): go on without
            locked = False
        try:
            if locked:
                handle.seek(0)
                handle.truncate()
                handle.write(str(os.getpid()))
                handle.flush()
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def remove_orphans(directory: Path, names: list[str]) -> list[Path]:
    """Delete the temporary files (``.NAME.XXXX``) that a killed :func:`atomic_write` left.

    Call it only while holding the directory's lock, so no live writer's file is taken.
    """
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if entry.is_file() and any(entry.name.startswith(f".{name}.") for name in names):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
