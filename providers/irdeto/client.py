"""The HTTPS transport to an Irdeto KMS: one client per provider per worker process.

Each process keeps one ``IrdetoClient`` per provider (``client_for``), keyed by the provider's
``updated_at`` and connection settings, so an operator's change takes effect on the next
request without restarting workers. It holds a ``requests.Session`` (kept-alive connections,
the TLS client certificate and the CA bundle of ``providers/tls.py``) and the OAuth2 access
token, shared by the worker's threads.

OAuth2 client credentials (``protocol.py``): the token is fetched on first use and again
shortly before it expires; a 401 (the KMS revoked or forgot it) fetches a new one and sends
the call again, once. This is a small cache written here rather than authlib's
``OAuth2Session``: the 401-and-send-again has to be written by hand with it too, its token
refresh takes no lock (every thread of a worker would fetch its own new token at expiry), and
its errors would still need turning into the reasons below; a dependency for less than that.

How answers map (see ``call``): ``200`` → the body; a refusal (``protocol.REFUSED``) →
``KmsRefusal`` (the adapter makes it a Rejected request); no answer, ``429``, ``5xx``, a cut
answer → ``TransportError`` (retried with backoff, the same request id); refused credentials,
a wrong address, a TLS handshake the settings cannot pass, an answer that is not JSON or
over ``MAX_ANSWER_BYTES`` → ``TransportError(permanent=True)``: Failed at once with the
reason (retriable by hand).
The client secret and the token are never in a message or a log.
"""

import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from providers import env_secrets, tls
from providers.registry import TransportError

from . import protocol

PEER = "KMS"
# Far above any answer about one device (a few KB); a larger one is refused, not read.
MAX_ANSWER_BYTES = 1 << 20
# A token is renewed this long before the KMS says it expires (at most a tenth of its life).
RENEW_BEFORE_SECONDS = 30


class KmsRefusal(Exception):
    """The KMS refused the call: ``code`` (``protocol``'s error codes) and ``message``."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Reply:
    """An HTTP answer of the KMS, its body read."""

    status_code: int
    content: bytes


def _json(reply: Reply):
    """The answer's JSON, or None when it is not JSON."""
    try:
        return json.loads(reply.content)
    except ValueError:
        return None


class IrdetoClient:
    """The session and the access token for one KMS."""

    def __init__(self, connection: dict):
        endpoint = (connection.get("endpoint_url") or "").rstrip("/")
        if not endpoint:
            raise TransportError(
                "The provider has no endpoint URL; set its connection.", permanent=True
            )
        if not connection.get("client_id"):
            raise TransportError(
                "The provider has no OAuth2 client id; set its connection.", permanent=True
            )
        self.api = endpoint + protocol.API_PREFIX
        self.token_url = connection.get("token_url") or endpoint + protocol.OAUTH_PATH
        self.address = urlsplit(endpoint).netloc
        self.timeout = int(connection.get("timeout_seconds") or 10)
        self.has_certificate = bool(connection.get("client_certificate_path"))
        tls.check_files(connection, peer=PEER)
        secret = env_secrets.read(connection.get("client_secret_env") or "", "client secret")
        self._credentials = (connection["client_id"], secret)
        session = requests.Session()
        tls.configure(session, connection)
        self.session = session
        self._token: tuple[str, float] | None = None  # (token, renew at: time.monotonic())
        self._token_lock = threading.Lock()

    # --- the token ------------------------------------------------------------------------

    def token(self, *, instead_of: str | None = None) -> str:
        """A valid access token: the cached one unless it is due for renewal, or is
        ``instead_of`` (the KMS refused it)."""
        with self._token_lock:
            held = self._token
            if held is not None and held[0] != instead_of and time.monotonic() < held[1]:
                return held[0]
            token, lifetime = self._fetch_token()
            renew_in = lifetime - min(RENEW_BEFORE_SECONDS, lifetime / 10)
            self._token = (token, time.monotonic() + renew_in)
            return token

    def _fetch_token(self) -> tuple[str, float]:
        where = f"fetching a token at {self.token_url}"
        reply = self._send(
            "POST",
            self.token_url,
            where,
            data={"grant_type": "client_credentials"},
            auth=self._credentials,
        )
        body = _json(reply)
        if reply.status_code in (400, 401, 403):
            error = body.get("error") if isinstance(body, dict) else None
            said = f", {error}" if isinstance(error, str) else ""
            raise TransportError(
                f"The KMS refused our client credentials (HTTP {reply.status_code}{said}) "
                f"{where}; check the client id and the client secret variable.",
                permanent=True,
                kind="auth",
            )
        self._check_status(reply, where)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TransportError(
                f"The KMS's answer {where} carries no access token.", permanent=True
            )
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        return token, max(lifetime, 1.0)

    # --- calls ----------------------------------------------------------------------------

    def call(self, call: protocol.Call) -> dict:
        """Send one call; the KMS's 200 body. Raises ``KmsRefusal`` or ``TransportError``."""
        where = f"for {call.path}"
        token = self.token()
        reply = self._post(call, token, where)
        if reply.status_code == protocol.UNAUTHORIZED:
            # Expired or revoked before we thought: a new token, and the call once more
            # (the same request id, so the KMS applies it once whatever happened).
            reply = self._post(call, self.token(instead_of=token), where)
            if reply.status_code == protocol.UNAUTHORIZED:
                raise TransportError(
                    f"The KMS refused a new access token (HTTP 401) {where}; check the client "
                    "id, and that the token URL belongs to this KMS.",
                    permanent=True,
                    kind="auth",
                )
        body = _json(reply)
        if reply.status_code in protocol.REFUSED:
            if reply.status_code == 404 and not (isinstance(body, dict) and "error" in body):
                raise TransportError(
                    f"Nothing at the KMS's address (HTTP 404) {where}; check the endpoint URL.",
                    permanent=True,
                )
            raise KmsRefusal(*protocol.refusal_of(body))
        self._check_status(reply, where)
        if not isinstance(body, dict):
            raise TransportError(
                f"Unreadable answer from the KMS {where}: not a JSON object.", permanent=True
            )
        return body

    def _post(self, call: protocol.Call, token: str, where: str) -> Reply:
        return self._send(
            "POST",
            self.api + call.path,
            where,
            json=call.body,
            headers={"Authorization": f"Bearer {token}"},
        )

    def _send(self, method: str, url: str, where: str, **kwargs) -> Reply:
        """The answer, its body read (at most ``MAX_ANSWER_BYTES``)."""
        try:
            # No redirect followed: requests would resend a POST as a GET elsewhere.
            reply = self.session.request(
                method, url, timeout=self.timeout, allow_redirects=False, stream=True, **kwargs
            )
            with reply:
                body = b""
                for chunk in reply.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise TransportError(
                            f"Refused the KMS's answer {where}: over {MAX_ANSWER_BYTES} bytes, "
                            "never read",
                            permanent=True,
                        )
            return Reply(reply.status_code, body)
        except requests.Timeout as exc:
            raise TransportError(f"No answer within {self.timeout} s {where}") from exc
        except requests.ConnectionError as exc:
            raise tls.failure(
                exc, where, has_certificate=self.has_certificate, peer=PEER
            ) or TransportError(
                f"Could not connect to the KMS at {urlsplit(url).netloc} {where}: {tls.why(exc)}"
            ) from exc
        except requests.RequestException as exc:
            raise TransportError(f"{type(exc).__name__} {where}") from exc

    def _check_status(self, reply: Reply, where: str) -> None:
        status = reply.status_code
        if status == 200:
            return
        if status == 403:
            raise TransportError(
                f"The KMS refused our credentials (HTTP 403) {where}; check the client id and "
                "the client secret variable.",
                permanent=True,
                kind="auth",
            )
        if status == 404:
            raise TransportError(
                f"Nothing at the KMS's address (HTTP 404) {where}; check the connection URLs.",
                permanent=True,
            )
        raise TransportError(
            f"HTTP {status} from the KMS {where}", kind="unavailable" if status >= 500 else ""
        )


_clients: dict[int, tuple[str, IrdetoClient]] = {}
_lock = threading.Lock()


def client_for(provider) -> IrdetoClient:
    """This process's client for ``provider``, made on first use and when its settings
    change."""
    key = json.dumps([str(provider.updated_at), provider.connection], sort_keys=True)
    with _lock:
        cached = _clients.get(provider.pk)
        if cached is not None and cached[0] == key:
            return cached[1]
        made = IrdetoClient(provider.connection or {})  # cheap: no network until a call
        _clients[provider.pk] = (key, made)
        return made
