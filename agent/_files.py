"""Writing a file the person named, safely: ``vrm export -o PATH``, ``vrm backup -o PATH``.

The data is written to a new temporary file (mode 0600) in the same directory,
flushed to disk, then renamed over ``PATH`` (POSIX ``rename(2)`` is atomic and
never follows a symlink at the destination). An existing ``PATH`` that is a
symlink, a FIFO, a device, a socket or a directory is refused, never followed
or opened: a symlink would carry the write (and a chmod) to its target, and a
FIFO would block for ever."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._errors import UsageError

__all__ = ["write_private"]

_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO (named pipe)",
          stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def write_private(path: str | os.PathLike[str], data: bytes | Callable[[Path], None]) -> None:
    """Write ``data`` to ``path`` as a private (0600) regular file, atomically.

    ``data`` is the bytes, or a function that fills the temporary file whose
    path it is given (SQLite's backup writes a file itself). Raises
    :class:`UsageError` (one sentence) when ``path`` exists and is not a
    regular file, or when it cannot be written (the temporary file is removed)."""
    target = Path(path)
    try:
        kind = stat.S_IFMT(os.lstat(target).st_mode)
    except FileNotFoundError:
        kind = stat.S_IFREG
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {(exc.strerror or 'error').lower()}") from None
    if kind != stat.S_IFREG:
        what = _KINDS.get(kind, "not a regular file")
        raise UsageError(f"{target} is {what}, so vrm does not write to it; give the path "
                         f"of a regular file, or - for standard output")
    directory = target.parent
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.",
                                         suffix=".tmp")  # mode 0600, O_EXCL
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(Path(temporary))
            else:
                handle.write(data)
                handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        temporary = None
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {(exc.strerror or 'error').lower()}") from None
    finally:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
