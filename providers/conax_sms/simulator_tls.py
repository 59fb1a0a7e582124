"""The FTPS simulator's certificates: a throwaway CA and a server certificate it signed.

Made with ``cryptography`` on first use and kept in a directory (like the SFTP host key), so a
provider configured with the CA stays valid across restarts of ``cas_simulator``. The server
certificate names ``localhost`` and ``127.0.0.1``, so the client's hostname check passes on
loopback, and carries the extensions strict verifiers ask for (key identifiers, basic
constraints, key usage). The CA is what a provider's ``tls_ca_certificate`` setting holds.
"""

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "conax_sms_ftps_ca.pem"
SERVER_FILE = "conax_sms_ftps_server.pem"  # certificate then private key, as pyftpdlib takes it
VALID_DAYS = 3650


@dataclass(frozen=True)
class Certificates:
    ca_pem: str  # the CA certificate: what the provider trusts
    server_file: Path  # the server's certificate and key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Conax SMS simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _generate(directory: Path) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)  # a client whose clock is a little behind
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Conax SMS simulator CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    server_file = directory / SERVER_FILE
    server_file.touch(mode=0o600)
    server_file.write_bytes(_pem(server) + private)
    # The CA last: its presence says the pair is complete.
    (directory / CA_FILE).write_bytes(_pem(ca))


def load_certificates(directory: Path) -> Certificates:
    """The simulator's CA and server certificate in ``directory``, made if missing."""
    directory = Path(directory)
    if not (directory / CA_FILE).exists():
        _generate(directory)
    return Certificates((directory / CA_FILE).read_text(), directory / SERVER_FILE)
