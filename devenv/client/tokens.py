"""Users of the HTTP API and their bearer tokens: one 0600 JSON file under DEVENV_HOME.

A token is a random secret shown once; the file keeps only its sha256, compared in
constant time. The local admin's token is also kept in clear in its own 0600 file
under DEVENV_HOME/keys, so that ``devenv token`` can print it again (like a key file).
Standard library and pydantic only: ``devenv token`` and ``devenv users`` stay fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from devenv.errors import InvalidValueError, UserError
from devenv.settings import Settings, local_user

TOKEN_PREFIX = "devenv_"
TOKEN_BYTES = 32
USER_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
USER_NAME_ACCEPTED = "1-32 lowercase letters, digits, '_', '.', '-', starting with a letter or '_'"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class StoreError(UserError):
    """The users file cannot be read or written (its path and why, never its content)."""


class NoSuchUserError(UserError):
    """No user of that name in the users file."""


class User(BaseModel):
    """One user of the API; the token itself is never stored."""

    name: str
    admin: bool = False
    local_admin: bool = False
    """The admin whose token `devenv token` prints (the OS user running devenv)."""
    public_key: str | None = None
    """The OpenSSH key their environments accept; admins without one get the server's."""
    local_backend: bool = False
    """May start ``backend: local`` environments: a shell as the server's own OS user,
    which can read its keys and tokens, so a grant for someone trusted like an admin."""
    token_sha256: str = Field(repr=False)
    created_at: datetime


class UserFile(BaseModel):
    version: Literal[1] = 1
    users: list[User] = Field(default_factory=list)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_user_name(name: str) -> str:
    if not USER_NAME_PATTERN.fullmatch(name):
        shown = repr(name) if len(name) <= 40 else repr(name[:37]) + "..."
        raise InvalidValueError(f"NAME: invalid value {shown}: accepted: {USER_NAME_ACCEPTED}")
    return name


class UserStore:
    """Reads and changes the users file; every change is locked and atomic.

    ``authenticate`` rereads the file only when it changed (a stat per request), so
    ``devenv users add`` takes effect at once in a running server.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.users_file
        self._cached: tuple[tuple[int, int, int], UserFile] | None = None

    # ------------------------------------------------------------------ reading

    def load(self) -> UserFile:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return UserFile()
        except OSError as problem:
            raise StoreError(
                f"{self.path}: cannot read the users file ({problem.strerror})"
            ) from None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if self._cached is not None and self._cached[0] == stamp:
            return self._cached[1]
        try:
            data = UserFile.model_validate_json(self.path.read_bytes())
        except OSError as problem:
            raise StoreError(
                f"{self.path}: cannot read the users file ({problem.strerror})"
            ) from None
        except ValidationError:
            raise StoreError(
                f"{self.path}: not a devenv users file; restore it or move it away"
            ) from None
        self._cached = (stamp, data)
        return data

    def users(self) -> list[User]:
        return sorted(self.load().users, key=lambda user: user.name)

    def get(self, name: str) -> User | None:
        return next((user for user in self.load().users if user.name == name), None)

    def authenticate(self, token: str) -> User | None:
        """The user holding ``token``, or None; every stored hash is compared, in
        constant time, so neither the answer's time nor its path tells anything."""
        digest = token_digest(token)
        found: User | None = None
        for user in self.load().users:
            if hmac.compare_digest(user.token_sha256, digest):
                found = user
        return found

    # ------------------------------------------------------------------ changing

    def add(
        self,
        name: str,
        *,
        admin: bool = False,
        public_key: str | None = None,
        local_backend: bool = False,
    ) -> str:
        """Add a user; returns their token (shown once, never stored in clear)."""
        check_user_name(name)
        token = new_token()
        with self._locked():
            data = self._reread()
            if any(user.name == name for user in data.users):
                raise UserError(
                    f"a user named {name!r} exists already; "
                    f"`devenv users remove {name}` first to give them a new token"
                )
            data.users.append(
                User(
                    name=name,
                    admin=admin,
                    public_key=public_key,
                    local_backend=local_backend,
                    token_sha256=token_digest(token),
                    created_at=datetime.now(UTC),
                )
            )
            self._save(data)
        return token

    def remove(self, name: str) -> User:
        with self._locked():
            data = self._reread()
            user = next((user for user in data.users if user.name == name), None)
            if user is None:
                raise NoSuchUserError(f"no user named {name!r} (see `devenv users list`)")
            if user.local_admin:
                raise UserError(
                    f"{name!r} is the local admin (`devenv token`); it cannot be removed, "
                    "`devenv token --rotate` replaces its token"
                )
            data.users = [other for other in data.users if other.name != name]
            self._save(data)
        return user

    def set_key(self, name: str, public_key: str | None) -> User:
        """Register (or with None, forget) the SSH key a user's environments accept;
        their token stays the same."""
        with self._locked():
            data = self._reread()
            user = next((user for user in data.users if user.name == name), None)
            if user is None:
                raise UserError(f"no user named {name!r} (see `devenv users list`)")
            user.public_key = public_key
            self._save(data)
        return user

    def local_admin_token(self, *, rotate: bool = False) -> tuple[str, bool]:
        """The local admin's token, created on first use; (token, whether it is new).

        The clear file is the source of truth: the users file is brought in line with it.
        """
        path = self.settings.admin_token_file
        with self._locked():
            token = None if rotate else _read_token(path)
            created = token is None
            if token is None:
                token = new_token()
                _private_dir(path.parent)
                write_private_file(path, (token + "\n").encode())
            data = self._reread()
            digest = token_digest(token)
            admin = next((user for user in data.users if user.local_admin), None)
            if admin is None:
                name = local_user()
                if any(user.name == name for user in data.users):
                    raise UserError(
                        f"a user named {name!r} exists already, so the local admin (the OS "
                        f"user {name!r}) cannot be created; `devenv users remove {name}` first"
                    )
                data.users.append(
                    User(
                        name=name,
                        admin=True,
                        local_admin=True,
                        token_sha256=digest,
                        created_at=datetime.now(UTC),
                    )
                )
                self._save(data)
            elif not hmac.compare_digest(admin.token_sha256, digest):
                admin.token_sha256 = digest
                self._save(data)
        return token, created

    def _reread(self) -> UserFile:
        self._cached = None
        return self.load().model_copy(deep=True)

    def _save(self, data: UserFile) -> None:
        _private_dir(self.path.parent)
        write_private_file(self.path, data.model_dump_json(indent=2).encode() + b"\n")
        self._cached = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise changes across processes (two `devenv users add` at once)."""
        _private_dir(self.path.parent)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _read_token(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(PRIVATE_FILE_MODE)  # tightened again, as key files are
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as problem:
        raise StoreError(f"{path}: cannot read the admin token ({problem.strerror})") from None
    return token or None


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    path.chmod(PRIVATE_DIR_MODE)


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a stale one from a crashed process with the same pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
