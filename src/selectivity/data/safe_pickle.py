"""Unpickling CIFAR-10 batches without running arbitrary code.

A pickle is a small program: ``pickle.load`` will import and call any global the file
names (``os.system`` included). The official CIFAR-10 batches only need numpy's array
reconstruction, so :class:`RestrictedUnpickler` resolves exactly those globals from a
fixed table and refuses every other one with :class:`~selectivity.data.errors.DatasetError`.

Allowed globals (both numpy 1.x ``numpy.core`` and numpy 2.x ``numpy._core`` spellings):

- ``multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``: arrays, pickle protocols 0-4
- ``numeric._frombuffer``: arrays, pickle protocol 5
- ``multiarray.scalar``: numpy scalars (e.g. an ``np.int64`` label)
- ``_codecs.encode`` with encoding ``latin1`` only: how Python 3 writes ``bytes`` at protocols 0-2
"""

from __future__ import annotations

import codecs
import io
import pickle
from typing import Any

import numpy as np

from .errors import DatasetError

try:  # numpy >= 2 (and 1.26, which ships the alias)
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy < 1.26
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to the latin-1 round trip pickle uses for ``bytes``."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1", errors)


_ALLOWED: dict[tuple[str, str], Any] = {}
for _prefix in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_prefix}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_prefix}.multiarray", "scalar")] = scalar
    _ALLOWED[(f"{_prefix}.numeric", "_frombuffer")] = _frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype
_ALLOWED[("_codecs", "encode")] = _latin1_encode


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` knows only numpy's array-rebuilding globals.

    Any other global raises :class:`DatasetError`, before it is imported or called.
    Persistent ids (``persistent_load``) are refused by the base class already.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(
                f"refusing to unpickle global {module}.{name}: a CIFAR-10 batch only "
                "contains numpy arrays, lists, dicts and bytes"
            ) from None


def load_pickle(data: bytes, where: str) -> Any:
    """Unpickle ``data`` (the bytes of a CIFAR-10 batch file) with :class:`RestrictedUnpickler`.

    ``encoding='bytes'`` keeps the Python 2 ``str`` keys of the official files as ``bytes``
    (``b'data'``, ``b'labels'``). ``where`` names the file in error messages.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DatasetError as e:
        raise DatasetError(f"{where}: {e}") from None
    except Exception as e:  # truncated or garbage file
        raise DatasetError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from None
