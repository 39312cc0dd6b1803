"""Atomic file writing: a reader never sees a half-written file.

Every partus writer goes through :func:`atomic_path` or :func:`atomic_write`. The data is written to a
temporary file in the destination's directory (same file system), then moved over the destination with
:func:`os.replace`, which is atomic on POSIX and Windows. On failure the temporary file is removed and the
destination is left as it was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import: ``os.umask`` can only be read by setting it, which is not thread-safe.
_FILE_MODE = 0o666 & ~_current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` when the block succeeds.

    The temporary name ends with the destination's full name (``.<token>.tmp.<name>``), so libraries
    that choose a format by extension (SimpleITK, OpenCV) see the right one, ``.nii.gz`` included.
    Missing parent directories are created. The file gets the usual permissions (``0o666`` minus the
    umask), not the ``0o600`` of :func:`tempfile.mkstemp`.

    Parameters
    ----------
    path : str or path-like
        The destination file.

    Yields
    ------
    pathlib.Path
        The temporary path to write to. Nothing exists there when the block starts.

    Raises
    ------
    Exception
        Whatever the block raises; the temporary file is removed and ``path`` is untouched.
    """
    dest = Path(path)
    if dest.name in ("", ".", ".."):
        raise IsADirectoryError(f"{path}: not a file path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{secrets.token_hex(6)}.tmp.{dest.name}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{dest}: the writer produced no file")
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (``str`` is encoded as UTF-8) and return the path.

    Parameters
    ----------
    path : str or path-like
        The destination file; parent directories are created.
    data : bytes or str
        The whole content.

    Returns
    -------
    pathlib.Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    TypeError
        If ``data`` is neither ``bytes`` nor ``str``.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif isinstance(data, bytearray | memoryview):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)
