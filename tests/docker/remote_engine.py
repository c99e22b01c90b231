"""A second Docker engine standing in for a remote machine: dockerd in a container of our own.

It has its own filesystem (images, volumes, containers) and network namespace, so a port it
publishes on its loopback is not this machine's, and a bind mount names a path on *its* disk,
exactly as with `DOCKER_HOST=ssh://big-box`. The client talks to it over loopback TCP with
mutual TLS (certificates made here), the way a tcp:// remote engine should be reached.

The image is Debian's docker.io on the debian:trixie-slim stand-in. The container needs most
capabilities but not --privileged (which this kind of sandbox may refuse): dockerd needs
mounts, namespaces, iptables and cgroups; its containers go in a cgroup parent of their own
so that nothing they leave behind mixes with the outer engine's.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from testkit.ports import free_port

ENGINE_IMAGE = os.environ.get("CSERVER_TEST_ENGINE_IMAGE", "cserver-test-engine")
DOCKERFILE = """\
FROM debian:trixie-slim
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      docker.io iptables ca-certificates >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["dockerd"]
"""
START_TIMEOUT = 90


@dataclass(frozen=True)
class RemoteEngine:
    url: str  # tcp://127.0.0.1:PORT
    cert_path: Path  # ca.pem, cert.pem, key.pem for the client (DOCKER_CERT_PATH)
    container: str

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        """base pointed at this engine, as a user with DOCKER_HOST and TLS would be."""
        env = {k: v for k, v in base.items() if k != "DOCKER_CONTEXT"}
        return {
            **env,
            "DOCKER_HOST": self.url,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(self.cert_path),
        }

    def docker(self, *args: str) -> list[str]:
        """A docker CLI command line addressed to this engine."""
        return ["docker", "--host", self.url, "--tlsverify", *self._tls_args(), *args]

    def _tls_args(self) -> list[str]:
        c = self.cert_path
        return [
            "--tlscacert",
            str(c / "ca.pem"),
            "--tlscert",
            str(c / "cert.pem"),
            "--tlskey",
            str(c / "key.pem"),
        ]


def _write_pem(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def make_certificates(server_dir: Path, client_dir: Path) -> None:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost, a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("cserver test engine CA"))
        .issuer_name(name("cserver test engine CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, usage: x509.ObjectIdentifier, sans: list) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    server_sans = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    server_cert, server_key = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH, server_sans)
    client_cert, client_key = leaf("cserver tests", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    for directory, cert, key in (
        (server_dir, server_cert, server_key),
        (client_dir, client_cert, client_key),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        _write_pem(directory / "ca.pem", ca_pem)
        _write_pem(directory / "cert.pem", cert)
        _write_pem(directory / "key.pem", key)


def build_engine_image(workdir: Path) -> None:
    """The engine image, from the Debian stand-in (a no-op when the layers are cached)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Dockerfile").write_text(DOCKERFILE)
    subprocess.run(
        ["docker", "build", "-q", "-t", ENGINE_IMAGE, str(workdir)],
        check=True,
        capture_output=True,
        timeout=900,
    )


def _answers(engine: RemoteEngine) -> bool:
    proc = subprocess.run(
        engine.docker("version", "--format", "{{.Server.Version}}"),
        capture_output=True,
        timeout=20,
    )
    return proc.returncode == 0


def _remove(container: str, cgroup_parent: str) -> None:
    subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True, timeout=120)
    # The inner containers' cgroups outlive their processes (killed with the engine's PID
    # namespace); empty ones are removed deepest first, in every hierarchy (cgroup v1 has one
    # per controller, v2 a single one).
    cgroups = Path("/sys/fs/cgroup")
    for root in [cgroups / cgroup_parent, *cgroups.glob(f"*/{cgroup_parent}")]:
        if not root.is_dir():
            continue
        for directory in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


@contextlib.contextmanager
def remote_engine(workdir: Path, images: list[str]) -> Iterator[RemoteEngine]:
    """A running second engine holding images (copied with docker save | docker load);
    removed with its data however the block ends."""
    build_engine_image(workdir / "image")
    make_certificates(workdir / "server", workdir / "client")
    port = free_port()
    token = secrets.token_hex(4)
    container = f"cserver-remote-engine-{token}"
    cgroup_parent = f"cserver-remote-engine-{token}"
    try:
        subprocess.run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                container,
                "--cap-add=ALL",
                "--cap-drop=SYS_RESOURCE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--security-opt",
                "systempaths=unconfined",
                "--cgroupns=host",
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                # The engine's own disk: an anonymous volume (overlay2 cannot sit on overlay).
                "-v",
                "/var/lib/docker",
                "-v",
                f"{workdir / 'server'}:/certs:ro",
                "-p",
                f"127.0.0.1:{port}:2376",
                ENGINE_IMAGE,
                "--host",
                "tcp://0.0.0.0:2376",
                "--tlsverify",
                "--tlscacert",
                "/certs/ca.pem",
                "--tlscert",
                "/certs/cert.pem",
                "--tlskey",
                "/certs/key.pem",
                "--cgroup-parent",
                f"/{cgroup_parent}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        engine = RemoteEngine(f"tcp://127.0.0.1:{port}", workdir / "client", container)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(engine):
            if time.monotonic() > deadline:
                logs = subprocess.run(
                    ["docker", "logs", "--tail", "20", container],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                raise RuntimeError(
                    f"the second engine did not answer within {START_TIMEOUT} s:\n"
                    f"{logs.stdout}{logs.stderr}"
                )
            time.sleep(0.5)
        for image in images:
            save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
            try:
                subprocess.run(
                    engine.docker("load", "-q"),
                    stdin=save.stdout,
                    check=True,
                    capture_output=True,
                    timeout=600,
                )
            finally:
                if save.stdout:
                    save.stdout.close()
                save.wait(timeout=60)
        yield engine
    finally:
        _remove(container, cgroup_parent)
