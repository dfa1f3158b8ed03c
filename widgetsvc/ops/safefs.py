"""Files and directories root writes where an unprivileged user could plant a symbolic link.

``bin/cluster`` and ``bin/serve`` run as root and write configuration files, logs and sockets
into directories owned by the unprivileged user their parts run as (PostgreSQL's owner, nginx's
user), and into ``/tmp``. A plain ``open()``/``chmod()``/``chown()`` there follows whatever link
that user put in place, and so overwrites or gives away any file on the machine. Every such
path goes through here instead: it is opened one component at a time relative to its parent's
descriptor, a symbolic link is followed only inside a directory no other user can write (root's
own ``/var/run -> /run`` is fine, a link in ``/tmp`` or in the cluster's directory is not), the
last component is opened with ``O_NOFOLLOW``, and the result is checked (``fstat``) before it is
written, chmodded or chowned, always through its descriptor.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from collections import deque
from contextlib import suppress
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40


class UnsafePath(OSError):
    """A path root was asked to use could be redirected (or is held) by another user."""


def _trusted(info: os.stat_result) -> bool:
    """A directory only root (or this process's user) can change: links in it may be followed."""
    return info.st_uid in (0, os.geteuid()) and not info.st_mode & 0o022


def _open_dir(path: Path, create_mode: int | None = None) -> int:
    """A descriptor of directory ``path``, reached without following a link planted by another
    user; missing components are created with ``create_mode`` when one is given."""
    text = os.path.abspath(path)
    parts = deque(p for p in text.split("/") if p)
    fd = os.open("/", _DIR_FLAGS)
    links = 0
    try:
        while parts:
            name = parts.popleft()
            if name == ".":
                continue
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create_mode is None:
                    raise
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile by someone else: opened (and checked) below
                else:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    os.fchmod(child, create_mode)  # whatever the umask
                    os.close(fd)
                    fd = child
                    continue
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(info.st_mode):
                    raise
                if not _trusted(os.fstat(fd)):
                    raise UnsafePath(errno.ELOOP, f"{text}: {name} is a symbolic link in a "
                                     "directory other users can write; not followed") from None
                links += 1
                if links > _MAX_LINKS:
                    raise UnsafePath(errno.ELOOP, f"{text}: too many symbolic links") from None
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                parts.extendleft(reversed([p for p in target.split("/") if p]))
                continue
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _check_file(fd: int, path: Path, owner: pwd.struct_passwd | None) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        raise UnsafePath(errno.EPERM, f"{path}: not a plain file of its own (links: "
                         f"{info.st_nlink}); not used")
    allowed = {os.geteuid(), *([owner.pw_uid] if owner else [])}
    if info.st_uid not in allowed:
        raise UnsafePath(errno.EPERM, f"{path}: owned by uid {info.st_uid}; not used")


def _give(fd: int, owner: pwd.struct_passwd | None, group: int | None = None) -> None:
    if os.geteuid() == 0 and (owner is not None or group is not None):
        os.fchown(fd, owner.pw_uid if owner else -1,
                  group if group is not None else owner.pw_gid)  # type: ignore[union-attr]


def make_dir(path: Path, owner: pwd.struct_passwd | None = None, mode: int = 0o700,
             parent_mode: int = 0o755, group: int | None = None) -> Path:
    """Create directory ``path`` (and missing parents, ``parent_mode``), or take the existing
    one only when it is ours or ``owner``'s and no one else can write it; then set ``mode`` and,
    as root, give it to ``owner`` (and ``group``, when one is named). A directory another user
    made first (a predictable name in ``/tmp``), or one left open to others, is refused: it may
    already hold their links."""
    path = Path(os.path.abspath(path))
    parent = _open_dir(path.parent, parent_mode)
    try:
        made = True
        try:
            os.mkdir(path.name, 0o700, dir_fd=parent)
        except FileExistsError:
            made = False
        try:
            fd = os.open(path.name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if not _trusted(os.fstat(parent)):
                raise UnsafePath(errno.ELOOP, f"{path}: a symbolic link (or not a directory) "
                                 "in a directory other users can write; not used") from None
            fd = _open_dir(path)  # root's own link: follow it
    finally:
        os.close(parent)
    try:
        info = os.fstat(fd)
        if made and info.st_uid != os.geteuid():
            raise UnsafePath(errno.EPERM, f"{path} was replaced while it was being made")
        if not made:
            owners = {os.geteuid(), *([owner.pw_uid] if owner else [])}
            if info.st_uid not in owners:
                raise UnsafePath(errno.EPERM, f"{path} exists and belongs to uid "
                                 f"{info.st_uid}, not to this user or its owner; remove it")
            if info.st_uid != os.geteuid() and info.st_mode & 0o022:
                raise UnsafePath(errno.EPERM, f"{path} exists with mode "
                                 f"{oct(info.st_mode & 0o7777)} (writable by others); remove it")
        os.fchmod(fd, mode)
        _give(fd, owner, group)
    finally:
        os.close(fd)
    return path


def open_append(path: Path, owner: pwd.struct_passwd | None = None, mode: int = 0o600) -> int:
    """A descriptor appending to file ``path`` (a log), created if missing, never through a
    link; as root, the file is given to ``owner`` (who writes to it)."""
    path = Path(os.path.abspath(path))
    parent = _open_dir(path.parent)
    try:
        fd = os.open(path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(errno.ELOOP, f"{path} is a symbolic link; not followed") from None
        raise
    finally:
        os.close(parent)
    try:
        _check_file(fd, path, owner)
        os.set_blocking(fd, True)
        _give(fd, owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_text(path: Path) -> str | None:
    """The file's text, or None when it is missing, a link or not a plain file."""
    path = Path(os.path.abspath(path))
    try:
        parent = _open_dir(path.parent)
    except OSError:
        return None
    try:
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                     dir_fd=parent)
    except OSError:
        return None
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read().decode("utf-8", errors="replace")


def write_file(path: Path, data: str | bytes, mode: int = 0o600,
               owner: pwd.struct_passwd | None = None) -> None:
    """Replace ``path`` with ``data`` atomically: a new file (``O_EXCL``, so never through a
    link) renamed over the old name, which replaces a planted link rather than its target."""
    path = Path(os.path.abspath(path))
    raw = data.encode("utf-8") if isinstance(data, str) else data
    parent = _open_dir(path.parent)
    try:
        draft = f".{path.name}.{os.getpid()}.tmp"
        with suppress(FileNotFoundError):
            os.unlink(draft, dir_fd=parent)
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(raw)
            os.fchmod(fd, mode)
            _give(fd, owner)
        finally:
            os.close(fd)
        os.replace(draft, path.name, src_dir_fd=parent, dst_dir_fd=parent)
    finally:
        os.close(parent)
