"""A certificate authority made for one host run: a TLS identity of its own for the host and for every worker.

With ``hostel.ray.tls: true`` the host makes this CA in memory at start (its key never touches disk) and
issues a short-lived leaf certificate per party: one for itself (its callback listener, and the client
side when it calls workers), and one per Ray worker, whose name is unique to that worker. So a provider
that copies its own key can pose only as itself: the host checks every worker's certificate against that
worker's own name, and tokens still guard every call.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST_NAME = "hostel-host"  # the name in the host's certificate, which workers check when they call back
_VALID = datetime.timedelta(days=30)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class Pki:
    """The CA and the leaves it issues (EC P-256: milliseconds per certificate)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostel run CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._name = name
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = self._cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, name: str) -> tuple[str, str]:
        """A certificate for ``name`` (as its DNS name, for servers and clients) and its key, in PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + _VALID)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)

    def identity(self, name: str, *, peer: str) -> dict[str, str]:
        """A ``tls`` dict for ``name``, checking the peer it calls by ``peer``'s name."""
        cert, key = self.issue(name)
        return {"cert": cert, "key": key, "ca": self.ca_pem, "server_name": peer}
