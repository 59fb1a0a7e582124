"""Moving files to and from the CAS: SFTP (paramiko) or FTP / FTPS (the standard library).

``connect(provider)`` opens the provider's file server and gives the shared pipeline's
``FileChannel`` over it (its directories from the connection settings); the pipeline uses
nothing else, so a test or a deployment can wrap it (``export.export(..., connect=...)``).

SFTP checks the server's host key against the one configured for the provider *before*
authenticating: a different key is refused (``HostKeyMismatch``), never learnt. FTPS (explicit
TLS) verifies the server's certificate and host name against the configured CA before the
login (``CertificateRefused``). Secrets are
read from the environment variables the settings name, and are never stored or logged.
Uploads go to ``<name>.part`` and are renamed to ``<name>`` when complete, so the CAS never
reads half a file; the pipeline records the upload between the two
(``providers.file_delivery.export``).
"""

import base64
import binascii
import ftplib
import hashlib
import io
import posixpath
import socket
import ssl
from collections.abc import Callable

import paramiko

from providers import env_secrets
from providers.errors import TransportError
from providers.file_delivery.channel import FileChannel, FileServer

from . import file_format as ff

TIMEOUT_SECONDS = 30
# Bytes handed to the connection at a time on upload: a request file goes in a few large
# writes instead of thousands of small ones.
WRITE_BUFFER = 1 << 20
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


class SFTPTransport(FileServer):
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
                key = _private_key(
                    env_secrets.read(settings["private_key_env"], "SFTP private key")
                )
                self._ssh.auth_publickey(user, key)
            else:
                self._ssh.auth_password(
                    user, env_secrets.read(settings.get("password_env"), "password")
                )
        except paramiko.AuthenticationException:
            raise TransportError(
                f"The SFTP server refused the credentials of user {user}.",
                permanent=True,
                kind="auth",
            ) from None

    def _call(self, what: str, fn: Callable, *args):
        try:
            return fn(*args)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"SFTP {what} failed: {exc}") from None

    def listdir(self, directory: str) -> list[str]:
        return self._call(f"listing {directory}", self._sftp.listdir, directory)

    def exists(self, path: str) -> bool:
        try:
            self._sftp.stat(path)
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"SFTP looking for {path} failed: {exc}") from None
        return True

    def put(self, data: bytes, path: str) -> None:
        self._call(f"upload of {path}", self._write, data, path)

    def _write(self, data: bytes, path: str) -> None:
        # One buffered write, pipelined: paramiko sends its 32 KiB requests without waiting
        # for each acknowledgement, and close() collects them all (a refused write raises).
        with self._sftp.open(path, "wb", bufsize=WRITE_BUFFER) as remote:
            remote.set_pipelined(True)
            remote.write(data)
        size = self._sftp.stat(path).st_size
        if size != len(data):
            raise OSError(f"{path} holds {size} bytes on the server, not {len(data)}")

    def rename(self, path: str, target: str) -> None:
        self._call(f"rename to {target}", self._sftp.posix_rename, path, target)

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


class _TLSSocket(ssl.SSLSocket):
    """ftplib ends each data transfer with ``unwrap()``. Many FTPS servers (pyftpdlib among
    them) close the data connection without a close_notify, or before TLS 1.3 has finished
    its post-handshake messages on an empty listing, which fails the unwrap although every
    byte arrived; ftplib would then leave the server's ``226`` unread
    and every later reply one behind. Completion is what the ``226`` on the (verified) control
    connection says; a response file is also checked against its own trailer."""

    def unwrap(self):
        try:
            return super().unwrap()
        except OSError:  # ssl.SSLError included: e.g. EOF, or "shutdown while in init"
            return None


def tls_context(settings: dict) -> ssl.SSLContext:
    """FTPS: the server's certificate is always verified, hostname included. Trusted: the CA
    (or the server's own self-signed certificate) in ``tls_ca_certificate``, else the system's
    CAs. There is no setting to switch verification off."""
    pem = (settings.get("tls_ca_certificate") or "").strip()
    try:
        context = ssl.create_default_context(cadata=pem or None)
    except (ssl.SSLError, ValueError) as exc:
        raise TransportError(
            f"The configured FTPS CA certificate cannot be read: {exc}", permanent=True
        ) from None
    context.sslsocket_class = _TLSSocket
    return context


class CertificateRefused(TransportError):
    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class FTPTransport(FileServer):
    def __init__(self, settings: dict, *, tls: bool):
        host, port = settings["host"], settings.get("port") or 21
        if tls:
            # ftplib's own default context would not check the certificate: ours does.
            context = tls_context(settings)
            self._ftp = ftplib.FTP_TLS(context=context, timeout=TIMEOUT_SECONDS)  # noqa: S321
        else:
            # Plain FTP is what some Conax sites offer; the operator chooses it knowingly.
            self._ftp = ftplib.FTP(timeout=TIMEOUT_SECONDS)  # noqa: S321
        try:
            self._ftp.connect(host, port)
            # FTP_TLS.login() secures the control connection (AUTH TLS) before the password.
            self._ftp.login(
                settings["username"], env_secrets.read(settings.get("password_env"), "password")
            )
            if tls:
                self._ftp.prot_p()  # the data connections are encrypted too
        except ssl.SSLCertVerificationError as exc:
            self._ftp.close()
            raise CertificateRefused(
                f"The FTPS server {host}:{port} presented a certificate that could not be "
                f"verified ({exc.verify_message}). Refusing to connect: if the server's "
                "certificate or CA changed on purpose, put the CA in the provider's connection "
                "settings."
            ) from None
        except ftplib.error_perm as exc:
            self._ftp.close()
            raise TransportError(
                f"The FTP server refused the login: {exc}", permanent=True, kind="auth"
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

    def exists(self, path: str) -> bool:
        # SIZE asks on the control connection alone (a listing needs a data connection).
        try:
            self._ftp.voidcmd("TYPE I")  # servers answer SIZE in binary mode only
            self._ftp.size(path)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return False
            raise TransportError(f"FTP looking for {path} failed: {exc}") from None
        except ftplib.all_errors as exc:
            raise TransportError(f"FTP looking for {path} failed: {exc}") from None
        return True

    def put(self, data: bytes, path: str) -> None:
        self._call(
            f"upload of {path}",
            self._ftp.storbinary,
            f"STOR {path}",
            io.BytesIO(data),
            WRITE_BUFFER,
        )

    def rename(self, path: str, target: str) -> None:
        self._call(f"rename to {target}", self._ftp.rename, path, target)

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


def _server(settings: dict) -> FileServer:
    protocol = settings.get("protocol", "sftp")
    if protocol == "sftp":
        return SFTPTransport(settings)
    if protocol in ("ftp", "ftps"):
        return FTPTransport(settings, tls=protocol == "ftps")
    raise TransportError(f"Unknown file transfer protocol {protocol!r}.", permanent=True)


def connect(provider) -> FileChannel:
    """Open the provider's file server connection (raises ``TransportError``)."""
    settings = provider.connection
    return FileChannel(
        _server(settings),
        upload_dir=settings.get("upload_directory", "/in"),
        response_dir=settings.get("response_directory", "/out"),
        is_answer=ff.is_response_file,
        partial_suffix=ff.PARTIAL_SUFFIX,
    )
