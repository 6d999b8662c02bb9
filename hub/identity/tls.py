"""A county's own TLS: a private CA and the certificates of its NATS servers.

``hub credentials tls`` writes them under ``<credentials dir>/tls``; a county that has its own
certificates configures those instead. The same server certificate serves clients and the
cluster's routes, whose TLS verifies the peer: a node without a certificate of this CA cannot join.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.identity.authority import write_secret

CA_YEARS = 10
SERVER_YEARS = 2
LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """The files a TLS server (or a verifying peer) needs."""

    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "执法协作信息共享枢纽"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def create_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A new private CA (certificate, key) in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    write_secret(key_path, _pem_key(key))
    cert_path.write_text(cert.public_bytes(serialization.Encoding.PEM).decode(), encoding="utf-8")
    return cert_path, key_path


def _issue(
    ca_cert: Path,
    ca_key: Path,
    subject: str,
    usages: list[x509.ObjectIdentifier],
    san: x509.SubjectAlternativeName | None,
) -> tuple[str, str]:
    """A certificate of the CA (PEM certificate, PEM key)."""
    authority = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_key} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * SERVER_YEARS))
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)


def _write(cert_path: Path, key_path: Path, pem: tuple[str, str]) -> None:
    write_secret(key_path, pem[1])
    cert_path.write_text(pem[0], encoding="utf-8")


def issue_server(directory: Path, ca_cert: Path, ca_key: Path, hosts: list[str]) -> TlsFiles:
    """A server certificate of the CA for ``hosts`` (names or addresses), for clients and routes."""
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert_path, key_path = directory / "server.pem", directory / "server-key.pem"
    _write(cert_path, key_path, _issue(ca_cert, ca_key, hosts[0], usages, _san(hosts)))
    return TlsFiles(ca=ca_cert, cert=cert_path, key=key_path)


def issue_client(directory: Path, org: str) -> TlsFiles:
    """A client certificate of the county's CA (in ``directory``) naming ``org`` (its CN).

    The HTTP gateway's mutual TLS takes the organisation from it.
    """
    ca_cert, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    if not ca_key.exists():
        raise FileNotFoundError(f"{ca_key}: the county's CA is made by hub credentials tls")
    clients = directory / "clients"
    clients.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = clients / f"{org}.pem", clients / f"{org}-key.pem"
    pem = _issue(ca_cert, ca_key, org, [ExtendedKeyUsageOID.CLIENT_AUTH], None)
    _write(cert_path, key_path, pem)
    return TlsFiles(ca=ca_cert, cert=cert_path, key=key_path)


def ensure_tls(directory: Path, hosts: list[str], name: str = "zhifa-hub CA") -> TlsFiles:
    """The CA and server certificate in ``directory``, made once (loopback names always in)."""
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if files.ca.exists() and files.cert.exists() and files.key.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert, ca_key = (
        (files.ca, directory / "ca-key.pem") if files.ca.exists() else create_ca(directory, name)
    )
    return issue_server(directory, ca_cert, ca_key, [*hosts, *LOOPBACK])
