"""Broken broker certificates for ``doctor`` tests: expired, issued for another name. Signed by one
throwaway CA, with a client certificate from the same CA (EC keys: fast)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.mqtt_helpers import TlsMaterial

LOCAL_NAMES = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@dataclass(frozen=True)
class DoctorCerts:
    good: TlsMaterial  # broker certificate for 127.0.0.1 / localhost
    expired: TlsMaterial  # the same names, expired yesterday
    other_name: TlsMaterial  # valid, but only for broker.example


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(obj, path: Path) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


def _cert(cn: str, key, issuer: x509.Name, signer, *, start, end, ca: bool = False, names=None, usage=None):
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(signer, hashes.SHA256())


def make_doctor_certs(d: Path) -> DoctorCerts:
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("doctor test CA", ca_key, _name("doctor test CA"), ca_key, start=now - day, end=now + 30 * day, ca=True)
    other = _cert("unrelated CA", other_key, _name("unrelated CA"), other_key, start=now - day, end=now + 30 * day,
                  ca=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("gw-client", client_key, ca.subject, ca_key, start=now - day, end=now + 30 * day,
                   usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    common = {"ca_file": _pem(ca, d / "ca.pem"), "client_cert": _pem(client, d / "client.pem"),
              "client_key": _pem(client_key, d / "client.key"), "other_ca_file": _pem(other, d / "other-ca.pem")}

    def server(tag: str, *, start, end, names) -> TlsMaterial:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert("broker", key, ca.subject, ca_key, start=start, end=end, names=names,
                     usage=ExtendedKeyUsageOID.SERVER_AUTH)
        return TlsMaterial(server_cert=_pem(cert, d / f"{tag}.pem"), server_key=_pem(key, d / f"{tag}.key"), **common)

    return DoctorCerts(
        good=server("good", start=now - day, end=now + 30 * day, names=LOCAL_NAMES),
        expired=server("expired", start=now - 30 * day, end=now - day, names=LOCAL_NAMES),
        other_name=server("other-name", start=now - day, end=now + 30 * day, names=[x509.DNSName("broker.example")]),
    )
