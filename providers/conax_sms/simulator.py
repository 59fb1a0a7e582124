"""A Conax Contego SMS simulator: the CAS side of the file exchange, over real network servers.

- an **SFTP server** (paramiko's server interface over a local directory) with an ECDSA host
  key generated once and kept in a directory, so the key the provider is configured with stays
  valid across restarts;
- an **FTP server** (pyftpdlib) over the same directory, and on request an **FTPS server**
  (explicit TLS, pyftpdlib with pyOpenSSL) whose certificate is signed by a throwaway CA
  (``simulator_tls.py``): ``simulator.tls_ca_certificate`` is what the provider trusts;
- a **CAS** thread that picks up request files from the upload directory (``in/``), checks
  them (record count, checksum), applies them to its state (entitlements per card with end
  dates, pairings, messages) and writes a response file for each into ``out/`` (through a
  temporary name). It counts every request uid it receives, so a test can tell that a request
  arrived once. Switches: ``reject_cards`` (answer ERROR for those card ids), ``corrupt``
  (spoil the next N response files; ``resend(name)`` writes one again whole), ``silent``
  (pick nothing up, answer nothing), ``writer`` (write responses with a byte-order mark,
  CR LF line ends, trailing spaces or blank lines, as other systems do).

Request files are taken out of ``in/`` as the CAS picks them up (``pick_up``), before it answers
(``answer``), as a real CAS does: the export cannot count on finding a file it uploaded. The CAS
counts every pickup of a file name (``deliveries``) and every arrival of a request uid
(``received``), so a test sees a file or a request that came twice.

In-process for tests: ``Simulator(root).start()`` on loopback with ports 0. From the command
line: ``python manage.py cas_simulator conax-sms --root DIR --sftp-port 2222 --ftp-port 2121``,
which prints the host key to put in the provider's connection settings.
"""

import hashlib
import json
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paramiko
from paramiko.sftp import SFTP_OK
from paramiko.sftp_attr import SFTPAttributes
from paramiko.sftp_handle import SFTPHandle
from paramiko.sftp_server import SFTPServer
from paramiko.sftp_si import SFTPServerInterface

from providers.extensions import SimulatorCommand
from providers.file_delivery.layout import AnswerRecord, FormatError

from . import file_format as ff
from .simulator_tls import CA_FILE, load_certificates

UPLOAD_DIR = "in"
RESPONSE_DIR = "out"
HOST_KEY_FILE = "conax_sms_sftp_host_key"


# --- SFTP ------------------------------------------------------------------------------------


def load_host_key(directory: Path) -> paramiko.PKey:
    """The simulator's host key, generated on first use and kept in ``directory``."""
    path = Path(directory) / HOST_KEY_FILE
    if path.exists():
        return paramiko.ECDSAKey(filename=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = paramiko.ECDSAKey.generate()
    key.write_private_key_file(str(path))
    return key


def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class _Auth(paramiko.ServerInterface):
    def __init__(self, username: str, password: str, authorized_keys: list[str]):
        self.username, self.password = username, password
        self.authorized = {line.split()[1] for line in authorized_keys if len(line.split()) > 1}

    def get_allowed_auths(self, username):
        return "password,publickey"

    def check_auth_password(self, username, password):
        ok = username == self.username and password == self.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        ok = username == self.username and key.get_base64() in self.authorized
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(SFTPHandle):
    def stat(self):
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)


class _LocalSFTP(SFTPServerInterface):
    """SFTP over one local directory; paths cannot leave it."""

    def __init__(self, server, root: str, *args, **kwargs):
        super().__init__(server, *args, **kwargs)
        self.root = root

    def _local(self, path: str) -> str:
        return self.root + self.canonicalize(path)  # canonicalize drops '..'

    def _errors(fn):
        def wrapper(self, *args):
            try:
                return fn(self, *args)
            except OSError as exc:
                return SFTPServer.convert_errno(exc.errno)

        return wrapper

    @_errors
    def list_folder(self, path):
        local = self._local(path)
        out = []
        for name in sorted(os.listdir(local)):
            attr = SFTPAttributes.from_stat(os.stat(os.path.join(local, name)))
            attr.filename = name
            out.append(attr)
        return out

    @_errors
    def stat(self, path):
        return SFTPAttributes.from_stat(os.stat(self._local(path)))

    lstat = stat

    @_errors
    def open(self, path, flags, attr):
        local = self._local(path)
        fd = os.open(local, flags | getattr(os, "O_BINARY", 0), 0o644)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        handle = _Handle(flags)
        handle.filename = local
        handle.readfile = handle.writefile = os.fdopen(fd, mode)
        return handle

    @_errors
    def remove(self, path):
        os.remove(self._local(path))
        return SFTP_OK

    @_errors
    def rename(self, oldpath, newpath):
        if os.path.exists(self._local(newpath)):
            return SFTPServer.convert_errno(17)  # EEXIST: plain SFTP rename never overwrites
        os.rename(self._local(oldpath), self._local(newpath))
        return SFTP_OK

    @_errors
    def posix_rename(self, oldpath, newpath):
        os.replace(self._local(oldpath), self._local(newpath))
        return SFTP_OK

    @_errors
    def mkdir(self, path, attr):
        os.mkdir(self._local(path))
        return SFTP_OK

    @_errors
    def rmdir(self, path):
        os.rmdir(self._local(path))
        return SFTP_OK

    def chattr(self, path, attr):
        return SFTP_OK


class _Listener(threading.Thread):
    """Accepts connections on a loopback socket and serves each in a thread of its own."""

    def __init__(self, host: str, port: int, serve_one):
        super().__init__(daemon=True)
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.serve_one = serve_one
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


class SFTPServerThread:
    def __init__(self, root: Path, host_key, host, port, username, password, authorized_keys):
        self.root, self.host_key = str(root), host_key
        self.auth = (username, password, authorized_keys)
        self.transports: list[paramiko.Transport] = []
        self.listener = _Listener(host, port, self._serve)
        self.port = self.listener.port

    def _serve(self, conn: socket.socket) -> None:
        ssh = paramiko.Transport(conn)
        self.transports.append(ssh)
        ssh.add_server_key(self.host_key)
        ssh.set_subsystem_handler("sftp", SFTPServer, _LocalSFTP, self.root)
        try:
            ssh.start_server(server=_Auth(*self.auth))
        except (paramiko.SSHException, EOFError, OSError):
            return  # e.g. a client that dropped the connection on seeing the host key
        channel = ssh.accept(timeout=30)  # keep a reference: a collected channel closes
        while channel is not None and ssh.is_active() and not self.listener.stopped.is_set():
            time.sleep(0.1)
        ssh.close()

    def start(self) -> None:
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()
        for ssh in self.transports:
            ssh.close()


# --- FTP -------------------------------------------------------------------------------------


class FTPServerThread(threading.Thread):
    """pyftpdlib over ``root``. With ``tls_certificate`` (certificate and key in one PEM file)
    it is an FTPS server, explicit TLS (AUTH TLS): the login and every data connection must
    be encrypted, as a Conax site offering FTPS requires (pyftpdlib needs pyOpenSSL for it)."""

    def __init__(
        self,
        root: Path,
        host: str,
        port: int,
        username: str,
        password: str,
        tls_certificate: Path | None = None,
    ):
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

        super().__init__(daemon=True)
        authorizer = DummyAuthorizer()
        authorizer.add_user(username, password, str(root), perm="elradfmwMT")
        attributes = {"authorizer": authorizer, "banner": "Conax"}
        if tls_certificate is None:
            from pyftpdlib.handlers import FTPHandler as base
        else:
            from pyftpdlib.handlers import TLS_FTPHandler as base

            attributes.update(
                certfile=str(tls_certificate),
                tls_control_required=True,
                tls_data_required=True,
                ssl_context=None,  # the class caches its context: one per server
            )
        handler = type("Handler", (base,), attributes)
        # An IO loop of its own: pyftpdlib's default is one per process, and two servers'
        # threads polling the same sockets at once corrupt each other's TLS records.
        self.server = FTPServer((host, port), handler, ioloop=IOLoop())
        self.port = self.server.socket.getsockname()[1]
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            # One round of the loop at a time (serve_forever would log each round).
            self.server.ioloop.loop(timeout=0.1, blocking=False)
        self.server.close_all()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


# --- The CAS ---------------------------------------------------------------------------------


@dataclass
class Writer:
    """How the CAS writes its response files: as we write ours (the default), or with the
    habits of other systems' text files."""

    bom: bool = False  # a UTF-8 byte-order mark first
    line_end: str = "\n"  # "\r\n" on Windows
    trailing_spaces: str = ""  # after every line
    blank_lines: int = 0  # after the trailer
    # The trailer's checksum over the bytes before it as written (else as we write them).
    checksum_as_written: bool = False

    def write(self, data: bytes) -> bytes:
        """``data`` (a file as ``file_format`` writes it) with these habits."""
        *lines, trailer = data.decode().split("\n")[:-1]
        head = (ff.BOM if self.bom else "") + "".join(
            line + self.trailing_spaces + self.line_end for line in lines
        )
        if self.checksum_as_written:
            count = trailer.split("|")[1]
            trailer = f"T|{count}|{hashlib.sha256(head.encode()).hexdigest()}"
        tail = trailer + self.trailing_spaces + self.line_end * (1 + self.blank_lines)
        return (head + tail).encode()


class CAS:
    """The conditional access system's side: reads request files, keeps state, answers."""

    def __init__(self, root: Path, *, state_file: Path | None = None):
        self.upload_dir = Path(root) / UPLOAD_DIR
        self.response_dir = Path(root) / RESPONSE_DIR
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.response_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_file
        self.lock = threading.RLock()
        # Switches.
        self.reject_cards: set[str] = set()
        self.corrupt = 0
        self.silent = False
        self.writer = Writer()
        # Response file name -> its content as the CAS meant it (before any spoiling).
        self.answers: dict[str, bytes] = {}
        # State.
        self.received: Counter[str] = Counter()  # request uid -> times it arrived
        self.deliveries: Counter[str] = Counter()  # request file name -> times picked up
        self.files_read: list[str] = []
        # Picked up, not answered yet: (file name, its bytes).
        self.inbox: list[tuple[str, bytes]] = []
        self.entitlements: dict[str, dict[str, str]] = {}  # card -> service CA ID -> end date
        self.pairings: dict[str, dict[str, list[str]]] = {}  # card -> {"stbs": [], "cards": []}
        self.messages: list[dict] = []
        self._load()

    def _load(self) -> None:
        if self.state_file and self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            self.received.update(data.get("received", {}))
            self.deliveries.update(data.get("deliveries", {}))
            self.files_read = data.get("files_read", [])
            self.entitlements = data.get("entitlements", {})
            self.pairings = data.get("pairings", {})
            self.messages = data.get("messages", [])

    def _save(self) -> None:
        if self.state_file:
            data = {
                "received": self.received,
                "deliveries": self.deliveries,
                "files_read": self.files_read,
                "entitlements": self.entitlements,
                "pairings": self.pairings,
                "messages": self.messages,
            }
            partial = self.state_file.with_suffix(".part")
            partial.write_text(json.dumps(data, indent=1))
            partial.replace(self.state_file)

    def run_once(self) -> list[str]:
        """Pick up every request file and answer it; returns the response files written."""
        with self.lock:
            if self.silent:
                return []
            self.pick_up()
            return self.answer()

    def pick_up(self) -> list[str]:
        """Take the complete request files out of the upload directory (a ``.part`` is still
        being written: left alone). Answered by ``answer()``; until then the export sees
        neither the request file nor a response."""
        taken = []
        with self.lock:
            for path in sorted(self.upload_dir.iterdir()):
                if not ff.is_request_file(path.name):
                    continue
                self.inbox.append((path.name, path.read_bytes()))
                path.unlink()
                self.deliveries[path.name] += 1
                self.files_read.append(path.name)
                taken.append(path.name)
            if taken:
                self._save()
        return taken

    def answer(self) -> list[str]:
        """Apply the picked-up files and write a response file for each."""
        with self.lock:
            written = [self._read(name, data) for name, data in self.inbox]
            self.inbox = []
            if written:
                self._save()
        return written

    def _read(self, request_name: str, data: bytes) -> str:
        now = datetime.now(UTC)
        results: list[AnswerRecord] = []
        file_error = None
        try:
            _name, records = ff.parse_request(data)
        except FormatError as exc:
            file_error = ("FILE_INVALID", str(exc))
            records = []
        for record in records:
            self.received[record.uid] += 1
            if self.received[record.uid] > 1:
                results.append(AnswerRecord(record.uid, True))  # a duplicate: dropped
                continue
            results.append(self._apply(record))
        name = ff.response_file_name(request_name)
        data = self.writer.write(ff.write_response(name, request_name, now, results, file_error))
        self.answers[name] = data
        if self.corrupt > 0:
            self.corrupt -= 1
            data = data[:-10]  # cut short: the trailer is broken
        self._put(name, data)
        return name

    def resend(self, name: str) -> None:
        """Write response file ``name`` again, whole, under the same name (as an operator
        does after the first one was spoiled)."""
        with self.lock:
            self._put(name, self.answers[name])

    def _put(self, name: str, data: bytes) -> None:
        partial = self.response_dir / (name + ff.PARTIAL_SUFFIX)
        partial.write_bytes(data)
        partial.replace(self.response_dir / name)

    def _apply(self, record: ff.RequestRecord) -> AnswerRecord:
        card = record.client_id
        if card in self.reject_cards:
            return AnswerRecord(record.uid, False, "CARD_BLOCKED", f"Card {card} is blocked.")
        if record.command in (ff.ADD, ff.RENEW):
            self.entitlements.setdefault(card, {})[record.fields[0]] = record.fields[-1]
        elif record.command == ff.CANCEL:
            self.entitlements.get(card, {}).pop(record.fields[0], None)
        elif record.command == ff.PAIR:
            boxes, cards, paired = record.fields
            anchor = paired or card
            pairing = self.pairings.setdefault(anchor, {"stbs": [], "cards": []})
            for box in filter(None, boxes.split(",")):
                if box not in pairing["stbs"]:
                    pairing["stbs"].append(box)
            for other in filter(None, [card, *cards.split(",")]):
                if other != anchor and other not in pairing["cards"]:
                    pairing["cards"].append(other)
        elif record.command == ff.MESSAGE:
            kind, sequence, duration, _text = record.fields
            self.messages.append(
                {
                    "card": card,
                    "type": kind,
                    "sequence": int(sequence),
                    "duration": int(duration),
                    "text": ff.message_text(record),
                    "uid": record.uid,
                }
            )
        return AnswerRecord(record.uid, True)


class _Poller(threading.Thread):
    def __init__(self, cas: CAS, interval: float):
        super().__init__(daemon=True)
        self.cas, self.interval = cas, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.cas.run_once()


class Simulator:
    """SFTP + FTP servers over ``root`` and the CAS reading from them, all on loopback."""

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        sftp_port: int | None = 0,
        ftp_port: int | None = 0,
        ftps_port: int | None = None,
        username: str = "conax",
        password: str = "conax-secret",  # noqa: S107 - the simulator's own test login
        authorized_keys: list[str] = (),
        key_dir: Path | None = None,
        poll_interval: float | None = 0.2,
        state_file: Path | None = None,
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cas = CAS(self.root, state_file=state_file)
        self.host = host
        self._key = load_host_key(key_dir or self.root.parent)
        self.host_key = public_line(self._key)
        self.sftp = (
            SFTPServerThread(
                self.root, self._key, host, sftp_port, username, password, list(authorized_keys)
            )
            if sftp_port is not None
            else None
        )
        self.ftp = (
            FTPServerThread(self.root, host, ftp_port, username, password)
            if ftp_port is not None
            else None
        )
        self.ftps, self.tls_ca_certificate = None, ""
        if ftps_port is not None:
            certificates = load_certificates(key_dir or self.root.parent)
            self.tls_ca_certificate = certificates.ca_pem
            self.ftps = FTPServerThread(
                self.root, host, ftps_port, username, password, certificates.server_file
            )
        self.poller = _Poller(self.cas, poll_interval) if poll_interval else None

    @property
    def sftp_port(self) -> int:
        return self.sftp.port

    @property
    def ftp_port(self) -> int:
        return self.ftp.port

    @property
    def ftps_port(self) -> int:
        return self.ftps.port

    def start(self) -> "Simulator":
        for part in (self.sftp, self.ftp, self.ftps, self.poller):
            if part is not None:
                part.start()
        return self

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stopped.set()
            self.poller.join(timeout=5)
        for part in (self.sftp, self.ftp, self.ftps):
            if part is not None:
                part.stop()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- manage.py cas_simulator conax-sms ------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--root", default="var/conax_sms", help="Directory the servers share.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--sftp-port", type=int, default=2222, help="0 = any free port.")
    parser.add_argument("--ftp-port", type=int, default=2121, help="-1 = no FTP server.")
    parser.add_argument(
        "--ftps-port",
        type=int,
        default=-1,
        help="FTPS (explicit TLS) server port; -1 = none (default). Needs pyOpenSSL.",
    )
    parser.add_argument("--username", default="conax")
    parser.add_argument(
        "--password-env",
        default="CRM_SECRET_CONAX_SMS_PASSWORD",
        help="Environment variable holding the password (default 'conax-secret' if unset).",
    )
    parser.add_argument("--key-dir", help="Where the host key is kept (default: --root).")
    parser.add_argument(
        "--authorized-key", action="append", default=[], help="A public key line for key auth."
    )
    parser.add_argument("--interval", type=float, default=2.0, help="CAS polling seconds.")
    parser.add_argument("--reject-card", action="append", default=[], help="Reject this card.")
    parser.add_argument("--corrupt", type=int, default=0, help="Spoil the next N responses.")
    parser.add_argument("--silent", action="store_true", help="Pick up and answer nothing.")


def serve(options: dict, stdout) -> None:
    root = Path(options["root"]).resolve()
    sim = Simulator(
        root / "files",
        host=options["host"],
        sftp_port=options["sftp_port"],
        ftp_port=None if options["ftp_port"] < 0 else options["ftp_port"],
        ftps_port=None if options.get("ftps_port", -1) < 0 else options["ftps_port"],
        username=options["username"],
        password=os.environ.get(options["password_env"], "conax-secret"),
        authorized_keys=options["authorized_key"],
        key_dir=Path(options["key_dir"]).resolve() if options.get("key_dir") else root,
        poll_interval=options["interval"],
        state_file=root / "cas-state.json",
    )
    sim.cas.reject_cards = set(options["reject_card"])
    sim.cas.corrupt = options["corrupt"]
    sim.cas.silent = options["silent"]
    sim.start()
    stdout.write(f"Conax SMS simulator on {options['host']}, files in {sim.root}")
    stdout.write(f"  SFTP port {sim.sftp_port}, user {options['username']}")
    if sim.ftp is not None:
        stdout.write(f"  FTP port {sim.ftp_port}")
    if sim.ftps is not None:
        key_dir = Path(options["key_dir"]).resolve() if options.get("key_dir") else root
        stdout.write(f"  FTPS port {sim.ftps_port} (explicit TLS)")
        stdout.write(f"  FTPS CA certificate (trust it in the provider): {key_dir / CA_FILE}")
    stdout.write(f"  upload directory /{UPLOAD_DIR}, response directory /{RESPONSE_DIR}")
    stdout.write(f"  host key: {sim.host_key}")
    stdout.flush()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


SIMULATOR = SimulatorCommand(
    "conax-sms", "Conax Contego SMS (files over SFTP / FTP)", add_arguments, serve
)
