"""The HTTP API off loopback only inside TLS (issue 19, finding 7).

`devenv server --api-host 0.0.0.0` served plain HTTP with bearer tokens on every
interface without a word. Now it refuses in one line (exit 2, nothing started)
unless given --tls-cert/--tls-key, with which it serves HTTPS: a client verifying
the (self-signed, test-made) certificate talks to it over loopback, plain HTTP does not.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.harness import DEVENV, Devenv, free_port, port_open, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Devenv]:
    made = Devenv(tmp_path)
    made.home.mkdir(parents=True)
    try:
        yield made
    finally:
        made.cleanup()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devenv-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "api.crt", folder / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def server(world: Devenv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DEVENV, "server", *args],
        env=world.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def refused(world: Devenv, *args: str) -> str:
    """The one error line `devenv server ARGS` exits 2 with, having started nothing."""
    process = server(world, *args)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.terminate()
        out, err = process.communicate(timeout=30)
        command = " ".join(args)
        raise AssertionError(f"devenv server {command} ran instead of refusing: {err}") from None
    assert process.returncode == 2 and out == "", (process.returncode, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not port_open(world.temporal_port), "the Temporal server was started"
    return lines[0]


def test_a_non_loopback_api_without_tls_is_refused(world: Devenv, tmp_path: Path) -> None:
    port = free_port()
    line = refused(world, "--api-host", "0.0.0.0", "--api-port", str(port))
    assert line == (
        "error: --api-host 0.0.0.0: not a loopback address, and bearer tokens must not cross "
        "a network in clear: give --tls-cert FILE --tls-key FILE, or --insecure-http if a TLS "
        "proxy on this machine fronts the API"
    )
    assert not port_open(port)

    cert, _ = self_signed(tmp_path)
    half = refused(world, "--api-host", "0.0.0.0", "--api-port", str(port), "--tls-cert", str(cert))
    assert half == "error: --tls-cert needs --tls-key: accepted: both (PEM files), or neither"

    secret = f"devenv_{secrets.token_urlsafe(24)}"
    garbage = tmp_path / "not-a-key.pem"
    garbage.write_text(f"{secret}\n")
    bad = refused(
        world, "--api-host", "0.0.0.0", "--api-port", str(port),
        "--tls-cert", str(cert), "--tls-key", str(garbage),
    )  # fmt: skip
    assert bad.startswith(f"error: --tls-cert/--tls-key: cannot load {cert} with {garbage} (")
    assert secret not in bad


def test_with_a_certificate_the_api_serves_https(world: Devenv, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    process = server(
        world, "--api-host", "0.0.0.0", "--api-port", str(port),
        "--tls-cert", str(cert), "--tls-key", str(key),
    )  # fmt: skip
    trusted = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/openapi.json", verify=trusted, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(lambda: answers() or process.poll() is not None, 60, "the HTTPS API")
        assert process.poll() is None, process.communicate()
        token = world.run("token").stdout.strip()
        with httpx.Client(base_url=url, verify=trusted, timeout=30) as http:
            listed = http.get("/api/v1/environments", headers={"Authorization": f"Bearer {token}"})
            assert (listed.status_code, listed.json()) == (200, [])
            assert http.get("/api/v1/environments").status_code == 401
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
        remote = {**world.env, "DEVENV_SERVER_URL": url, "DEVENV_TOKEN": token}
        trusting = {**remote, "SSL_CERT_FILE": str(cert)}  # a private CA, as the README says
        listed_remotely = subprocess.run(
            [DEVENV, "ps", "--json"], env=trusting, capture_output=True, text=True, timeout=60
        )
        assert (listed_remotely.returncode, listed_remotely.stdout.strip()) == (0, "[]")
        untrusted = subprocess.run(
            [DEVENV, "ps"], env=remote, capture_output=True, text=True, timeout=60
        )
        assert untrusted.returncode == 2, untrusted
        assert untrusted.stderr == (
            f"error: the devenv server at {url} presented a TLS certificate this machine does "
            "not trust; set SSL_CERT_FILE to the PEM file of the CA that signed it\n"
        )
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert f"HTTP API on https://0.0.0.0:{port};" in err
    assert "plain HTTP" not in err
