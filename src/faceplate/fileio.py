"""Safe file writing: atomic replace, disk-full errors, stale partials of killed runs, output locks.

Every file faceplate writes appears whole or not at all: it is written under a hidden temporary sibling
``.NAME.partial-PID.EXT`` (the extension kept: OIIO, FFmpeg and numpy pick the format from it), then renamed
into place. The PID in the name tells a later run whether the file is a leftover of a process that died.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from faceplate.errors import WriterError

DISK_FULL = "disk full writing {path}: free space and run the same command to resume"
_LOW_SPACE = 1 << 20  # bytes: a failed write with less free space than this is taken as a full disk


def partial_path(path: Path, pid: int | None = None) -> Path:
    """Temporary sibling of ``path`` for process ``pid`` (default: this one): ``.NAME.partial-PID.EXT``."""
    return path.with_name(f".{path.stem}.partial-{os.getpid() if pid is None else pid}{path.suffix}")


def partial_regex(stem_rx: str, suffix: str) -> re.Pattern[str]:
    """Regex of the partial names of files whose stem matches ``stem_rx``; group ``pid`` is the writer's PID."""
    return re.compile(rf"^\.{stem_rx}\.partial-(?P<pid>\d+){re.escape(suffix)}$")


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` running (on this machine)? Processes of other users count as running."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path, rx: re.Pattern[str], min_age: float = 0.0) -> list[Path]:
    """Remove the partial files in ``folder`` matching ``rx`` left by processes no longer running.

    This process's own partials and those of live processes stay. ``min_age`` (seconds since the file
    last changed) spares writes of same-numbered processes on other machines sharing the folder.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = rx.match(name)
        if m is None or int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
            continue
        p = folder / name
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime >= min_age:
                p.unlink()
                removed.append(p)
    return removed


def is_disk_full(err: BaseException | str) -> bool:
    """Does ``err`` (an OSError, an FFmpeg error or a library's message) say the disk is full?"""
    if isinstance(err, BaseException) and getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    return os.strerror(errno.ENOSPC).lower() in str(err).lower()


def _low_space(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _LOW_SPACE


def write_error(path: Path | str, err: BaseException | str) -> WriterError:
    """One-line WriterError for a failed write of ``path``; a full disk gets the resume advice."""
    if is_disk_full(err) or (isinstance(err, str) and _low_space(Path(path).parent)):
        return WriterError(DISK_FULL.format(path=path))
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return WriterError(f"cannot write {path}: {reason}")


def atomic_write(path: Path | str, write: Callable[[Path], object], *, fsync: bool = False) -> None:
    """Call ``write(tmp)`` to write ``path``'s content to its partial sibling, then rename it into place.

    The partial is removed on any error (KeyboardInterrupt included); OSErrors become WriterError (disk
    full: "disk full writing PATH: ..."). ``fsync`` flushes the file and its folder to the disk first.
    """
    path = Path(path)
    tmp = partial_path(path)
    try:
        write(tmp)
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise write_error(path, err) from None
        raise
    if fsync:
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path | str, text: str, *, fsync: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), fsync=fsync)


def atomic_write_bytes(path: Path | str, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_bytes(data), fsync=fsync)


class FileLock:
    """An exclusive ``flock`` on ``path``, which holds the owner's PID while locked.

    Released by :meth:`release` (which removes the file) or by the OS when the process dies. Lock files
    removed while another process waited are detected (inode check), so a lock is never held twice.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0  # the process that took the lock (a forked child must not remove the parent's file)

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, trying for up to ``wait`` seconds; False when another process (or writer) holds it."""
        deadline = time.monotonic() + wait
        while not self._try():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _try(self) -> bool:
        if self._fd is not None:
            return True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError as err:
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                    os.close(fd)
                    raise
                self._fd, self._pid = fd, os.getpid()  # a filesystem without locks: go on unlocked
                return True
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self._fd, self._pid = fd, os.getpid()
                return True
            os.close(fd)  # the file was removed by its last holder: lock the new one

    def holder(self) -> int | None:
        """PID of the process holding the lock, as it wrote it (None if unknown)."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op when not held). In a forked child only its copy of
        the file descriptor is closed: the lock stays the parent's."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._pid == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
