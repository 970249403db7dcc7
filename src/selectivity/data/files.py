"""A read-only view of a folder or a zip file: sorted relative paths -> bytes.

Sources (CIFAR pickles, Tiny ImageNet, ImageFolder) are written once against
:class:`FileTree`, so each works the same from a folder and from a zip. Names are
relative POSIX paths (``train/cat/0001.jpg``); folders themselves are not listed.
Junk that archivers and file browsers leave (``__MACOSX/``, any path component that
starts with ``.``, such as ``.DS_Store``) is skipped.

Fingerprints (:meth:`FileTree.fingerprint`), used to notice a changed source:

- zip: sha256 of the zip file's bytes (about 0.3 s for a 60 MB zip).
- folder, ``contents=True``: sha256 over the sorted relative paths, sizes and file
  contents. Used for the few large CIFAR pickle files, where it costs one read.
- folder, ``contents=False``: sha256 over the sorted relative paths, sizes, mtimes and
  ctimes (nanoseconds), from ``stat`` alone. Used for image folders: hashing the contents
  of the 60,000 CIFAR-10 JPEGs took 0.6 s with a warm page cache and 5 s cold, while
  ``stat`` takes 0.2 s, and a cached load should not cost seconds. An edit that keeps a
  file's size and resets its mtime still changes its ctime, which no user tool can set.
  Blind spot: the kernel stamps times from a coarse clock (a few ms), so a same-size
  rewrite within the same tick as the file's previous change, with the mtime reset, would
  go unnoticed; delete the cache entry (or pass a fresh ``cache_dir``) after such edits.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from .errors import DatasetError


def _is_junk(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _children(names: list[str], prefix: str) -> set[str]:
    rests = (n[len(prefix):] for n in names if n.startswith(prefix))
    return {r.split("/", 1)[0] for r in rests if "/" in r and not _is_junk(r.split("/", 1)[0])}


class FileTree:
    """Base class: ``names`` (sorted relative paths), ``read(name)``, ``where(name)``."""

    kind = ""

    def __init__(self, path: Path):
        self.path = path
        self.names: list[str] = []

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def where(self, name: str) -> str:
        """``name`` spelled for error messages: the on-disk path, or ``zip:member``."""
        return f"{self.path}/{name}"

    def fingerprint(self, contents: bool) -> dict[str, str]:
        raise NotImplementedError

    def subfolders(self, prefix: str) -> set[str]:
        """Names of the folders directly below ``prefix`` (``'a/b/'``), empty ones included."""
        return _children(self.names, prefix)

    def close(self) -> None:
        pass

    def spec(self) -> tuple[str, str]:
        """``(kind, path)``: enough to reopen this tree in another process."""
        return self.kind, str(self.path)


class DirTree(FileTree):
    """A folder on disk; symlinked folders are followed (each real folder once)."""

    kind = "dir"

    def __init__(self, path: Path, scan: bool = True):
        super().__init__(path)
        if scan:
            self.names = self._scan(path)

    @staticmethod
    def _scan(path: Path) -> list[str]:
        seen: set[tuple[int, int]] = set()
        names = []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:  # a symlink loop
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            rel = Path(dirpath).relative_to(path).as_posix()
            prefix = "" if rel == "." else rel + "/"
            names.extend(prefix + f for f in filenames)
        return sorted(n for n in names if not _is_junk(n))

    def subfolders(self, prefix: str) -> set[str]:
        try:  # the disk, not ``names``: a folder with no file is not in ``names``
            entries = list(os.scandir(self.path / prefix))
        except OSError:
            return set()
        return {e.name for e in entries if e.is_dir() and not _is_junk(e.name)}

    def read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as e:
            raise DatasetError(f"cannot read {self.where(name)}: {e.strerror or e}") from None

    def fingerprint(self, contents: bool) -> dict[str, str]:
        h = hashlib.sha256()
        for name in self.names:
            st = os.stat(self.path / name)
            h.update(f"{name}\0{st.st_size}\0".encode())
            if contents:
                h.update(self.read(name))
            else:
                h.update(f"{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
        method = "sha256(paths+sizes+contents)" if contents else "sha256(paths+sizes+mtimes+ctimes)"
        return {"method": method, "sha256": h.hexdigest()}


#: The largest member a zip of a dataset may hold once inflated: CIFAR-100's training pickle is
#: 150 MB, an image is kilobytes. A read never goes past a member's declared size (zipfile stops
#: there and checks the CRC), so checking the declared sizes bounds the memory a zip can take.
MAX_MEMBER_BYTES = 256 * 2**20
#: A member that inflates more than this many times its stored size, and to more than
#: ``BOMB_MIN_BYTES``, is a decompression bomb (images barely compress; pickles of pixels ~2x).
MAX_RATIO = 200
BOMB_MIN_BYTES = 16 * 2**20


def _check_member(path: Path, info: zipfile.ZipInfo) -> None:
    """A one-line DatasetError for a member whose declared size or compression ratio is not a dataset's."""
    size, stored = info.file_size, max(info.compress_size, 1)
    if size > MAX_MEMBER_BYTES:
        raise DatasetError(f"zip {path}: member {info.filename} inflates to {size / 2**20:.0f} MiB, more than the "
                           f"{MAX_MEMBER_BYTES / 2**20:.0f} MiB a dataset's file may take; refused before decoding")
    if size > BOMB_MIN_BYTES and size / stored > MAX_RATIO:
        raise DatasetError(f"zip {path}: member {info.filename} inflates {size / stored:.0f} times "
                           f"({stored / 2**20:.1f} MiB to {size / 2**20:.0f} MiB): a decompression bomb, not a "
                           "dataset; refused before decoding")


class ZipTree(FileTree):
    """A zip file, read member by member (stored or deflated); members whose declared size or
    compression ratio no dataset has are refused when the zip is opened (:func:`_check_member`)."""

    kind = "zip"

    def __init__(self, path: Path):
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"cannot open zip {path}: {e}") from None
        members = [i for i in self._zip.infolist() if not i.is_dir() and not _is_junk(i.filename)]
        for info in members:
            _check_member(path, info)
        self.names = sorted(i.filename for i in members)

    def read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, OSError, KeyError, ValueError, NotImplementedError) as e:
            raise DatasetError(f"cannot read {self.where(name)}: {e}") from None

    def where(self, name: str) -> str:
        return f"{self.path}:{name}"

    def subfolders(self, prefix: str) -> set[str]:
        return _children(self._zip.namelist(), prefix)  # folder entries included

    def fingerprint(self, contents: bool = True) -> dict[str, str]:
        return zip_fingerprint(self.path)

    def close(self) -> None:
        self._zip.close()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def zip_fingerprint(path: str | Path) -> dict[str, str]:
    """``{'method': 'sha256(zip file)', 'sha256': ...}``; needs no parsing of the zip."""
    return {"method": "sha256(zip file)", "sha256": sha256_file(path)}


def open_tree(path: str | Path, scan: bool = True) -> FileTree:
    """A :class:`DirTree` for a folder, a :class:`ZipTree` for anything else that exists.

    ``scan=False`` skips listing a folder's files (``names`` stays empty), for a process
    that only reads files it was told about.
    """
    path = Path(path)
    return DirTree(path, scan) if path.is_dir() else ZipTree(path)
