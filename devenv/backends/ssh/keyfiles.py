"""Reads SSH key files (a private key, known_hosts) without ever quoting their content.

asyncssh's own errors quote what they could not parse (``Invalid known hosts entry:
<the line>``, ``Unknown PEM key type: <the header>``). Such a line travels into
events, workflow history and logs, so a file that is not what it should be (a token,
/etc/shadow) would be read back to whoever named it. Here every problem is the file,
a line number and what is wrong with it: never a byte of the file itself.
"""

from __future__ import annotations

from pathlib import Path

import asyncssh

MAX_KEY_FILE_BYTES = 1_000_000
"""A key or a known_hosts file of a few hosts is kilobytes; /dev/zero is not read to the end."""


class KeyFileError(ValueError):
    """The file cannot be used; the message names it (and a line), never its content."""


def read_private_key(path: Path) -> asyncssh.SSHKey:
    """The unencrypted private key in ``path``."""
    text = _read_text(path)
    try:
        return asyncssh.import_private_key(text)
    except asyncssh.KeyEncryptionError:
        raise KeyFileError(f"{path}: it is encrypted with a passphrase") from None
    except (asyncssh.KeyImportError, ValueError) as problem:
        # The messages themselves may quote the file (a PEM header, a cipher name): only
        # the fixed one about passphrases is recognised, everything else is generic.
        if str(problem).startswith("Passphrase must be specified"):
            raise KeyFileError(f"{path}: it is encrypted with a passphrase") from None
        raise KeyFileError(f"{path}: {_not_a_private_key(text)}") from None


def read_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """The entries of the OpenSSH known_hosts file ``path``."""
    text = _read_text(path)
    try:
        return asyncssh.import_known_hosts(text)
    except (asyncssh.KeyImportError, ValueError):
        pass
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            asyncssh.import_known_hosts(stripped)
        except (asyncssh.KeyImportError, ValueError):
            raise KeyFileError(
                f"{path} line {number}: not a known_hosts entry (expected 'HOST KEYTYPE "
                "BASE64', as ssh-keyscan prints)"
            ) from None
    raise KeyFileError(f"{path}: not an OpenSSH known_hosts file")


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as problem:
        raise KeyFileError(f"{path}: {_strerror(problem)}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: larger than {MAX_KEY_FILE_BYTES:,} bytes, not a key file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data[: problem.start].count(b"\n") + 1
        raise KeyFileError(f"{path} line {line}: not UTF-8 text") from None


def _not_a_private_key(text: str) -> str:
    lines = text.splitlines()
    first = next((n for n, line in enumerate(lines, 1) if line.strip()), None)
    if first is None:
        return "empty file, not a private key"
    head = lines[first - 1].strip()
    if not (head.startswith("-----BEGIN ") and head.endswith("PRIVATE KEY-----")):
        return (
            f"line {first} is not the start of a private key (expected "
            "-----BEGIN OPENSSH PRIVATE KEY-----)"
        )
    return "not a private key devenv can use (an unencrypted OpenSSH or PEM private key)"


def _strerror(problem: OSError) -> str:
    """The system's reason (``Permission denied``), without repeating the path."""
    return (problem.strerror or type(problem).__name__).lower()
