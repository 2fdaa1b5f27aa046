"""A secured Temporal for the tests: nginx (the Debian package) terminating TLS in front of
the dev server and verifying client certificates, and the certificates it takes (a CA, the
server's, clients' and one from a CA nobody trusts), made with `cryptography`."""

from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def nginx_path() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path

    def env(self, ca: Path) -> dict[str, str]:
        """Temporal's standard settings for a client with this identity."""
        return {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca),
                "TEMPORAL_TLS_CLIENT_CERT_PATH": str(self.cert),
                "TEMPORAL_TLS_CLIENT_KEY_PATH": str(self.key)}


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class Pki:
    """A certificate authority in `folder`, issuing X.509 v3 certificates (the SDK's rustls
    refuses v1)."""

    def __init__(self, folder: Path, name: str = "navarch-test-ca") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(name)
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (x509.CertificateBuilder().subject_name(self._name)
                      .issuer_name(self._name).public_key(self._key.public_key())
                      .serial_number(x509.random_serial_number())
                      .not_valid_before(now - datetime.timedelta(minutes=5))
                      .not_valid_after(now + datetime.timedelta(days=1))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                      .sign(self._key, hashes.SHA256()))
        self.ca = folder / f"{name}.pem"
        self.ca.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common: str, *, server: bool = False) -> Identity:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(_name(common))
                   .issuer_name(self._name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]), False)
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
        cert = builder.sign(self._key, hashes.SHA256())
        identity = Identity(self.folder / f"{common}.pem", self.folder / f"{common}.key")
        identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, identity.key)
        return identity


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TlsProxy:
    """nginx on 127.0.0.1:`port` speaking TLS with client verification, passing gRPC to
    the dev server at `upstream`. A context manager: nginx stops on exit."""

    def __init__(self, upstream: str, pki: Pki, folder: Path) -> None:
        nginx = nginx_path()
        if nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        self.nginx = nginx
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"localhost:{self.port}"
        server = pki.issue("localhost", server=True)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    server {{
        listen 127.0.0.1:{self.port} ssl http2;
        ssl_certificate {server.cert};
        ssl_certificate_key {server.key};
        ssl_client_certificate {pki.ca};
        ssl_verify_client on;
        grpc_read_timeout 3600s;
        grpc_send_timeout 3600s;
        client_max_body_size 0;
        location / {{ grpc_pass grpc://{upstream}; }}
    }}
}}
""")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [self.nginx, "-c", str(self.conf), "-p", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self._process.stderr.read().decode()}"
                                   if self._process.stderr else "nginx exited")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
