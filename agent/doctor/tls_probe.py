"""A raw TLS handshake to the broker, classified into a reason a technician can act on.

paho reports most TLS failures as an ``SSLError`` text or, when the broker drops the connection after
the handshake (mutual TLS without a client certificate, plain text sent to a TLS port), only as
"connection closed before CONNACK". Here Python's ssl module does the handshake itself, then sends
an MQTT CONNECT so that an alert the broker sends after the handshake (TLS 1.3 asks for the client
certificate then) is read and named.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config.schema import TlsConfig

TIMEOUT_S = 5.0

# OpenSSL X509_V_ERR_* codes (SSLCertVerificationError.verify_code)
_EXPIRED, _NOT_YET_VALID = 10, 9
_UNTRUSTED = {2, 18, 19, 20, 21}
_NAME_MISMATCH = {62, 64}


@dataclass(frozen=True, slots=True)
class TlsVerdict:
    ok: bool
    detail: str  # what was found
    hint: str = ""  # what to do (empty when ok)


def connect_packet(client_id: str) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT (clean session, keepalive 60 s, no credentials)."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return b"\x10" + bytes([len(body)]) + body


def _context(tls: TlsConfig, *, verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file and verify else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


def peer_certificate(host: str, port: int, tls: TlsConfig) -> dict:
    """The broker's certificate decoded without verifying it (subject, SAN, validity); {} if unavailable."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw:
            with _context(tls, verify=False).wrap_socket(raw, server_hostname=host) as s:
                der = s.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError, ValueError):
        return {}
    if not der:
        return {}
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)  # CPython's PEM decoder
    if decode is None:
        return {}
    fd, name = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(ssl.DER_cert_to_PEM_cert(der))
        return decode(name)
    except (OSError, ssl.SSLError, ValueError):
        return {}
    finally:
        with contextlib.suppress(OSError):
            Path(name).unlink()


def _names(cert: dict) -> str:
    sans = [f"{kind} {value}" for kind, value in cert.get("subjectAltName", ())]
    if sans:
        return ", ".join(sans)
    cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return f"CN {cn[0]}" if cn else "no names"


def _verify_failure(e: ssl.SSLCertVerificationError, host: str, port: int, tls: TlsConfig) -> TlsVerdict:
    code = e.verify_code
    cert = peer_certificate(host, port, tls)
    ca = f"ca_file {tls.ca_file}" if tls.ca_file else "the system CA store"
    if code == _EXPIRED:
        when = f" on {cert['notAfter']}" if cert.get("notAfter") else ""
        return TlsVerdict(False, f"the broker's certificate expired{when}",
                          "renew the broker's certificate (and check this gateway's clock)")
    if code == _NOT_YET_VALID:
        when = f" before {cert['notBefore']}" if cert.get("notBefore") else ""
        return TlsVerdict(False, f"the broker's certificate is not valid yet{when}",
                          "check this gateway's clock (a Pi without RTC boots in 1970) or the certificate dates")
    if code in _NAME_MISMATCH:
        return TlsVerdict(False, f"hostname mismatch: the broker's certificate is for {_names(cert)}, not {host}",
                          "set [mqtt] host to a name the certificate lists, or reissue the certificate for it")
    if code in _UNTRUSTED:
        return TlsVerdict(False, f"the broker's certificate is not signed by a CA in {ca} ({e.verify_message})",
                          "set [mqtt.tls] ca_file to the CA that signed the broker's certificate")
    return TlsVerdict(False, f"certificate verification failed: {e.verify_message}",
                      "check the broker's certificate chain and [mqtt.tls] ca_file")


def _alert(e: ssl.SSLError, tls: TlsConfig) -> TlsVerdict:
    reason = (e.reason or str(e)).upper()
    has_cert = tls.cert_file is not None
    if "CERTIFICATE_REQUIRED" in reason or ("HANDSHAKE_FAILURE" in reason and not has_cert):
        return TlsVerdict(False, "the broker requires a client certificate (mutual TLS) and none is configured",
                          "set [mqtt.tls] cert_file and key_file to this gateway's client certificate and key")
    if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason or "DECRYPT_ERROR" in reason:
        return TlsVerdict(False, f"the broker rejected the client certificate {tls.cert_file} ({e.reason})",
                          "use a client certificate signed by a CA the broker trusts (its cafile)")
    if "CERTIFICATE_EXPIRED" in reason:
        return TlsVerdict(False, f"the broker says the client certificate {tls.cert_file} has expired",
                          "renew this gateway's client certificate")
    if "WRONG_VERSION_NUMBER" in reason or "PACKET_LENGTH" in reason or "RECORD_LAYER" in reason:
        return _plain_port()
    return TlsVerdict(False, f"TLS failed: {e.reason or e}", "compare [mqtt.tls] with the broker's TLS listener")


def _plain_port() -> TlsVerdict:
    return TlsVerdict(False, "the port does not speak TLS (the broker closed the connection at the TLS handshake)",
                      "use the broker's TLS port (8883 is usual) or remove [mqtt.tls] for a plain-text port")


def probe(host: str, port: int, tls: TlsConfig, *, client_id: str) -> TlsVerdict:
    """Handshake with full verification as the agent does, then one CONNECT to catch a late alert."""
    try:
        ctx = _context(tls, verify=True)
    except (OSError, ssl.SSLError, ValueError) as e:
        return TlsVerdict(False, f"the TLS files cannot be loaded: {getattr(e, 'reason', None) or e}",
                          "check ca_file, cert_file and key_file are PEM and the key matches the certificate")
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw:
            with ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False) as s:
                verdict = _handshake(s, host, port, tls)
                if verdict is not None:
                    return verdict
                version = s.version()
                reply = _first_reply(s, client_id, tls)
    except TimeoutError:
        return TlsVerdict(False, f"no TLS answer within {TIMEOUT_S:g} s",
                          "check the port is the broker's TLS listener and no firewall drops the traffic")
    except OSError as e:
        return TlsVerdict(False, f"TLS connection failed: {e.strerror or e}", "check the broker is reachable")
    if isinstance(reply, TlsVerdict):
        return reply
    if not reply:
        if tls.cert_file is None:  # a TLS 1.3 broker refuses a missing client certificate after the handshake
            return TlsVerdict(False, "the broker requires a client certificate (mutual TLS) and none is configured "
                              "(it closed the connection right after the TLS handshake)",
                              "set [mqtt.tls] cert_file and key_file to this gateway's client certificate and key")
        return TlsVerdict(False, "the broker closed the connection after the TLS handshake",
                          "check the broker's log for why it refused this client")
    cert = peer_certificate(host, port, tls)
    until = f", valid until {cert['notAfter']}" if cert.get("notAfter") else ""
    return TlsVerdict(True, f"{version} handshake, certificate for {host} verified{until}")


def _handshake(s: ssl.SSLSocket, host: str, port: int, tls: TlsConfig) -> TlsVerdict | None:
    """None when the handshake completed; otherwise why not. An EOF here: the port is not TLS."""
    try:
        s.do_handshake()
    except ssl.SSLCertVerificationError as e:
        return _verify_failure(e, host, port, tls)
    except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
        return _plain_port()
    except ssl.SSLError as e:
        return _alert(e, tls)
    return None


def _first_reply(s: ssl.SSLSocket, client_id: str, tls: TlsConfig) -> bytes | TlsVerdict:
    """Send a CONNECT after the handshake; TLS 1.3 brokers refuse a missing client certificate only now."""
    try:
        s.sendall(connect_packet(client_id))
        return s.recv(4)
    except ssl.SSLError as e:
        if isinstance(e, ssl.SSLEOFError):
            return b""
        return _alert(e, tls)
    except (ConnectionResetError, BrokenPipeError):
        return b""


def speaks_tls(host: str, port: int) -> bool:
    """Does the port complete a TLS handshake (certificate not checked)? For plain-text configs."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True
    except (OSError, ssl.SSLError):
        return False
