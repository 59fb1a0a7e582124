"""Moving files to and from the CAS: SFTP (paramiko) or FTP / FTPS (the standard library).

``connect(provider)`` opens the provider's connection and gives a ``Transport``; the export and
the error handling use nothing else, so a test or a deployment can wrap it (see
``export.export(..., connect=...)``).

SFTP checks the server's host key against the one configured for the provider *before*
authenticating: a different key is refused (``HostKeyMismatch``), never learnt. Secrets are
read from the environment variables the settings name, and are never stored or logged.
Uploads go to ``<name>.part`` and are renamed to ``<name>`` when complete, so the CAS never
reads half a file.
"""

import base64
import binascii
import ftplib
import hashlib
import io
import os
import posixpath
import socket
from collections.abc import Callable

import paramiko

from providers.registry import TransportError

from .file_format import PARTIAL_SUFFIX

TIMEOUT_SECONDS = 30
KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class HostKeyMismatch(TransportError):
    def __init__(self, message: str):
        super().__init__(message, permanent=True)


def fingerprint(key_bytes: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(key_bytes).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def parse_host_key(text: str) -> tuple[str, bytes]:
    """(key type, key blob) from 'ssh-ed25519 AAAA… [comment]' or a known_hosts line."""
    parts = text.split()
    for index, part in enumerate(parts[:-1]):
        if part.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                return part, base64.b64decode(parts[index + 1], validate=True)
            except (binascii.Error, ValueError):
                break
    raise TransportError(
        "The configured SFTP host key is not a public key line ('ssh-ed25519 AAAA…').",
        permanent=True,
    )


def _secret(name: str, what: str) -> str:
    value = os.environ.get(name) if name else None
    if not value:
        raise TransportError(
            f"The {what} is read from the environment variable {name or '(none named)'}, "
            "which is not set.",
            permanent=True,
        )
    return value


def _private_key(text: str) -> paramiko.PKey:
    for cls in KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise TransportError(
        "The SFTP private key could not be read (Ed25519, ECDSA or RSA, unencrypted).",
        permanent=True,
    )


class Transport:
    """What the export and the error handling need from a file server. Paths are POSIX."""

    def listdir(self, directory: str) -> list[str]:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        directory, name = posixpath.split(path)
        try:
            return name in self.listdir(directory)
        except TransportError:
            return False

    def upload(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path`` through a temporary name."""
        raise NotImplementedError

    def download(self, path: str) -> bytes:
        raise NotImplementedError

    def move(self, path: str, directory: str) -> None:
        """Move a file into ``directory`` (created if missing), keeping its name."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SFTPTransport(Transport):
    def __init__(self, settings: dict):
        host, port = settings["host"], settings.get("port") or 22
        expected_type, expected_blob = parse_host_key(settings.get("host_key") or "")
        try:
            sock = socket.create_connection((host, port), timeout=TIMEOUT_SECONDS)
        except OSError as exc:
            raise TransportError(f"Cannot connect to SFTP server {host}:{port}: {exc}") from None
        self._ssh = paramiko.Transport(sock)
        try:
            self._ssh.use_compression(False)
            self._ssh.start_client(timeout=TIMEOUT_SECONDS)
            key = self._ssh.get_remote_server_key()
            if key.get_name() != expected_type or key.asbytes() != expected_blob:
                raise HostKeyMismatch(
                    f"The SFTP server {host}:{port} presented the host key "
                    f"{key.get_name()} {fingerprint(key.asbytes())}, not the configured "
                    f"{expected_type} {fingerprint(expected_blob)}. Refusing to connect: if "
                    "the server's key was changed on purpose, put the new key in the "
                    "provider's connection settings."
                )
            self._authenticate(settings)
            self._sftp = paramiko.SFTPClient.from_transport(self._ssh)
            self._sftp.get_channel().settimeout(TIMEOUT_SECONDS)
        except TransportError:
            self._ssh.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._ssh.close()
            raise TransportError(f"SFTP session with {host}:{port} failed: {exc}") from None

    def _authenticate(self, settings: dict) -> None:
        user = settings["username"]
        try:
            if settings.get("private_key_env"):
                key = _private_key(_secret(settings["private_key_env"], "SFTP private key"))
                self._ssh.auth_publickey(user, key)
            else:
                self._ssh.auth_password(user, _secret(settings.get("password_env"), "password"))
        except paramiko.AuthenticationException:
            raise TransportError(
                f"The SFTP server refused the credentials of user {user}.", permanent=True
            ) from None

    def _call(self, what: str, fn: Callable, *args):
        try:
            return fn(*args)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"SFTP {what} failed: {exc}") from None

    def listdir(self, directory: str) -> list[str]:
        return self._call(f"listing {directory}", self._sftp.listdir, directory)

    def upload(self, data: bytes, path: str) -> None:
        partial = path + PARTIAL_SUFFIX
        self._call(f"upload of {partial}", self._sftp.putfo, io.BytesIO(data), partial, len(data))
        self._call(f"rename to {path}", self._sftp.posix_rename, partial, path)

    def download(self, path: str) -> bytes:
        buffer = io.BytesIO()
        self._call(f"download of {path}", self._sftp.getfo, path, buffer)
        return buffer.getvalue()

    def move(self, path: str, directory: str) -> None:
        try:
            self._sftp.stat(directory)
        except OSError:
            self._call(f"making {directory}", self._sftp.mkdir, directory)
        target = posixpath.join(directory, posixpath.basename(path))
        self._call(f"moving {path}", self._sftp.posix_rename, path, target)

    def close(self) -> None:
        self._ssh.close()


class FTPTransport(Transport):
    def __init__(self, settings: dict, *, tls: bool):
        host, port = settings["host"], settings.get("port") or 21
        # Plain FTP is what some Conax sites offer; the operator chooses it knowingly.
        ftp_class = ftplib.FTP_TLS if tls else ftplib.FTP
        self._ftp = ftp_class(timeout=TIMEOUT_SECONDS)
        try:
            self._ftp.connect(host, port)
            self._ftp.login(settings["username"], _secret(settings.get("password_env"), "password"))
            if tls:
                self._ftp.prot_p()  # the data connections are encrypted too
        except ftplib.error_perm as exc:
            self._ftp.close()
            raise TransportError(
                f"The FTP server refused the login: {exc}", permanent=True
            ) from None
        except TransportError:
            self._ftp.close()
            raise
        except ftplib.all_errors as exc:
            self._ftp.close()
            raise TransportError(f"Cannot connect to FTP server {host}:{port}: {exc}") from None

    def _call(self, what: str, fn: Callable, *args):
        try:
            return fn(*args)
        except ftplib.all_errors as exc:
            raise TransportError(f"FTP {what} failed: {exc}") from None

    def listdir(self, directory: str) -> list[str]:
        try:
            names = self._ftp.nlst(directory)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return []  # an empty or missing directory
            raise TransportError(f"FTP listing {directory} failed: {exc}") from None
        except ftplib.all_errors as exc:
            raise TransportError(f"FTP listing {directory} failed: {exc}") from None
        return [posixpath.basename(n) for n in names]

    def upload(self, data: bytes, path: str) -> None:
        partial = path + PARTIAL_SUFFIX
        self._call(
            f"upload of {partial}", self._ftp.storbinary, f"STOR {partial}", io.BytesIO(data)
        )
        self._call(f"rename to {path}", self._ftp.rename, partial, path)

    def download(self, path: str) -> bytes:
        buffer = io.BytesIO()
        self._call(f"download of {path}", self._ftp.retrbinary, f"RETR {path}", buffer.write)
        return buffer.getvalue()

    def move(self, path: str, directory: str) -> None:
        try:
            self._ftp.mkd(directory)
        except ftplib.error_perm:
            pass  # it exists
        except ftplib.all_errors as exc:
            raise TransportError(f"FTP making {directory} failed: {exc}") from None
        target = posixpath.join(directory, posixpath.basename(path))
        self._call(f"moving {path}", self._ftp.rename, path, target)

    def close(self) -> None:
        try:
            self._ftp.quit()
        except ftplib.all_errors:
            self._ftp.close()


def connect(provider) -> Transport:
    """Open the provider's file server connection (raises ``TransportError``)."""
    settings = provider.connection
    protocol = settings.get("protocol", "sftp")
    if protocol == "sftp":
        return SFTPTransport(settings)
    if protocol in ("ftp", "ftps"):
        return FTPTransport(settings, tls=protocol == "ftps")
    raise TransportError(f"Unknown file transfer protocol {protocol!r}.", permanent=True)
