"""How the HTTP API may listen: bearer tokens cross a network only inside TLS.

On loopback plain HTTP is fine (nothing leaves the machine). Any other address
needs ``--tls-cert/--tls-key``, or ``--insecure-http`` said out loud (a TLS proxy on
this machine fronts it). Checked before anything starts, in one line; the files are
loaded here once so that a wrong one is named (never quoted) instead of failing
inside uvicorn.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from devenv.errors import InvalidValueError


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; a name or any other address is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport(
    host: str, tls_cert: Path | None, tls_key: Path | None, insecure_http: bool
) -> tuple[Path, Path] | None:
    """The (certificate, key) to serve with, or None for plain HTTP where allowed;
    InvalidValueError (exit 2) for plain HTTP off loopback or unusable files."""
    if (tls_cert is None) != (tls_key is None):
        given, missing = (
            ("--tls-cert", "--tls-key") if tls_key is None else ("--tls-key", "--tls-cert")
        )
        raise InvalidValueError(f"{given} needs {missing}: accepted: both (PEM files), or neither")
    if tls_cert is not None and tls_key is not None:
        cert, key = tls_cert.expanduser().absolute(), tls_key.expanduser().absolute()
        _load(cert, key)
        return cert, key
    if not is_loopback(host) and not insecure_http:
        raise InvalidValueError(
            f"--api-host {host}: not a loopback address, and bearer tokens must not cross a "
            "network in clear: give --tls-cert FILE --tls-key FILE, or --insecure-http if a "
            "TLS proxy on this machine fronts the API"
        )
    return None


def _load(cert: Path, key: Path) -> None:
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise InvalidValueError(f"{option}: no such file ({path}); accepted: a PEM file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback: an encrypted key fails here instead of prompting on a tty.
        context.load_cert_chain(str(cert), str(key), password=lambda: b"")
    except OSError as problem:
        reason = getattr(problem, "reason", None) or problem.strerror or type(problem).__name__
        raise InvalidValueError(
            f"--tls-cert/--tls-key: cannot load {cert} with {key} ({str(reason).lower()}); "
            "accepted: a PEM certificate (chain) and its unencrypted PEM private key"
        ) from None
