"""The SOAP transport to a Conax Contego CAS: one zeep client per provider per worker process.

Making a zeep client parses the WSDL and builds its types, which costs far more than a
request; so each process keeps one client per provider and reuses it for every request. The
WSDL is loaded through a ``requests.Session`` (HTTP Basic auth and the TLS client certificate
set on it); the operations are sent by a leaner transport (``_Transport``: ``http.client``, one
kept-alive connection per thread) with the same credentials, TLS and proxies. The cache is
keyed by the provider's ``updated_at`` and connection settings, so an operator's change of
settings takes effect on the next request without restarting workers.

XML safety: zeep parses the WSDL and every answer with DTDs, entity declarations and external
references forbidden (``Settings(strict=True, forbid_dtd=True, forbid_entities=True,
forbid_external=True)``). Such a document is *refused*: ``TransportError(permanent=True)``, so
the request is Failed at once with the reason, never retried against a CAS (or a man in the
middle) that answers like that; a Reset repairs the subscription once it is sorted out.

How answers map (see ``call``): a SOAP Fault is the CAS's refusal → ``CasRefusal`` (the
adapter makes it a Rejected request). A timeout, a refused connection, a cut answer or HTTP
5xx without a Fault → ``TransportError`` (retried with backoff). HTTP 401/403/404 (wrong
credentials, wrong address), a TLS handshake the settings cannot pass (``providers/tls.py``),
a request the schema refuses, and an answer that can never be read — refused XML, over
``MAX_ANSWER_BYTES``, not XML or not a SOAP envelope — → ``TransportError(permanent=True)``:
the request is Failed at once with the reason (retriable), instead of stalling its card.
"""

import base64
import http.client
import json
import select
import threading
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
import zeep
from zeep import exceptions as zeep_errors
from zeep.helpers import serialize_object

from providers import env_secrets, tls
from providers.registry import TransportError

NS = "http://www.conax.com/contego/ca-server/webservices/7.5"
# Far above any answer about one card (a few KB); a larger one is refused, not read.
MAX_ANSWER_BYTES = 1 << 20
WSDL_FILE = Path(__file__).with_name("wsdl") / "conax.wsdl"
SETTINGS = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)
# Operation -> the WSDL binding (one per web service) that carries it.
BINDINGS = {
    "AddSubscriptions": "SubscriptionManagementBinding",
    "CancelSubscriptions": "SubscriptionManagementBinding",
    "GetActiveSubscriptions": "SubscriptionManagementBinding",
    "CreatePairing": "PairingBinding",
    "AddToExistingPairing": "PairingBinding",
    "GetPairingStatusForCard": "PairingBinding",
    "GetPairingStatusForPairingModule": "PairingBinding",
    "SendMailMessageToClients": "UserTextMessagingBinding",
    "SendBarkMessageToClients": "UserTextMessagingBinding",
    "SendRepeatingBarkMessageToClients": "UserTextMessagingBinding",
    "DisplayFingerprint": "FingerprintBinding",
    "UpdateCaPinToDefaultValue": "CaPinBinding",
    "UpdateCaPinToGivenValue": "CaPinBinding",
}


class CasRefusal(Exception):
    """The CAS answered with a SOAP Fault: ``code`` (its ErrorCode, else the faultcode) and
    ``message`` (the faultstring)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _plain(value):
    """zeep's answer objects as JSON-ready values (dates as ISO 8601)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _http_failure(status: int, where: str) -> TransportError:
    if status in (401, 403):
        return TransportError(
            f"The CAS refused our credentials (HTTP {status}) {where}; check the username and "
            "password variable.",
            permanent=True,
            kind="auth",
        )
    if status == 404:
        return TransportError(
            f"Nothing at the CAS's address (HTTP 404) {where}; check the endpoint URL.",
            permanent=True,
        )
    return TransportError(
        f"HTTP {status} from the CAS {where}", kind="unavailable" if status >= 500 else ""
    )


def _refused_xml(exc: Exception, where: str) -> TransportError:
    kind = {
        zeep_errors.DTDForbidden: "a DTD",
        zeep_errors.EntitiesForbidden: "an entity declaration",
        zeep_errors.ExternalReferenceForbidden: "an external reference",
    }[type(exc)]
    return TransportError(
        f"Refused {where}: it carries {kind}, which is never parsed ({exc}).", permanent=True
    )


class _Oversized(Exception):
    """The CAS's answer is over ``MAX_ANSWER_BYTES``; it was not read."""


def _read(reply: http.client.HTTPResponse) -> bytes:
    """The answer's body, refused unread when it is over ``MAX_ANSWER_BYTES``."""
    if reply.length is not None:
        if reply.length > MAX_ANSWER_BYTES:
            raise _Oversized(f"{reply.length} bytes announced")
        return reply.read()
    content = reply.read(MAX_ANSWER_BYTES + 1)  # chunked, or until the CAS closes
    if len(content) > MAX_ANSWER_BYTES:
        raise _Oversized("sent without a length")
    return content


class _Session(requests.Session):
    """Reads the environment's proxies and CA bundle once per address, when first used, as the
    password variable is read once, when the client is made. requests reads them again for
    every call, scanning the whole environment, which cost about a fifth of a call's CPU; a
    worker's environment does not change while it runs. Set the session's own settings
    (``cert``, ``verify``, ``proxies``) before the first call."""

    def __init__(self):
        super().__init__()
        self._settings: dict[tuple, dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        key = (url, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        found = self._settings.get(key)
        if found is None:
            found = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._settings[key] = found
        return {**found, "proxies": dict(found["proxies"])}


class _Answer:
    """An HTTP answer as zeep's ``process_reply`` reads it (what it uses of requests'
    ``Response``)."""

    def __init__(self, reply: http.client.HTTPResponse, content: bytes):
        self.status_code = reply.status
        self.headers = reply.headers  # case-insensitive ``get``, as requests' headers
        self.encoding = reply.headers.get_content_charset()
        self.content = content


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection has something to read: the server has closed it
    (or it is out of step), so it must not carry a request."""
    poller = select.poll()
    poller.register(connection.sock, select.POLLIN)
    return bool(poller.poll(0))


class _Transport(zeep.Transport):
    """Sends the operations with ``http.client`` over one kept-alive connection per thread.

    requests around each POST (preparing the request, the cookie jar, merging settings, the
    adapter and urllib3's pool) cost about 1.5 ms of a slow worker's CPU per call, more than
    zeep's own work; what a call needs of it is decided once per address here instead. The
    WSDL still loads through the session, and a call that a proxy from the environment would
    carry is sent through it too, as before.

    A kept-alive connection the server closed while idle is noticed before sending and made
    anew. One found closed once the request is sent, before any byte of the answer (the server
    closed it as idle just as the request came, unread), gives the request to a new connection,
    once. Nothing else is sent again, nor ever over a connection made for this request: a
    timeout, a reset or a cut answer is the caller's failure, retried with backoff, where the
    RequestId makes a repeat harmless."""

    def __init__(self, session: requests.Session, connection: dict, timeout: int):
        super().__init__(session=session, timeout=timeout, operation_timeout=timeout)
        self.connection = connection
        # The answer as it is sent, nothing to decompress.
        self.headers = {"User-Agent": session.headers["User-Agent"], "Accept-Encoding": "identity"}
        if connection.get("username"):
            # Encoded as requests encodes it for the WSDL.
            pair = f"{connection['username']}:{session.auth.password}".encode("latin1")
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self.routes: dict[str, tuple | None] = {}
        self.tls_context = None
        self.local = threading.local()

    def route(self, address: str) -> tuple | None:
        """(scheme, host, path) to send to ``address`` directly; None through the session."""
        if address not in self.routes:
            parts = urlsplit(address)
            found = self.session.merge_environment_settings(address, {}, None, None, None)
            direct = None
            if parts.scheme in ("http", "https") and not requests.utils.select_proxy(
                address, found["proxies"]
            ):
                path = parts.path or "/"
                direct = (
                    parts.scheme,
                    parts.netloc,
                    f"{path}?{parts.query}" if parts.query else path,
                )
                if parts.scheme == "https" and self.tls_context is None:
                    # The environment's CA bundle, as requests would take it (the provider's
                    # own bundle wins: tls.context).
                    bundle = found["verify"]
                    if not isinstance(bundle, str):
                        bundle = requests.utils.DEFAULT_CA_BUNDLE_PATH
                    self.tls_context = tls.context(self.connection, bundle)
            self.routes[address] = direct
        return self.routes[address]

    def post(self, address, message, headers):
        route = self.route(address)
        if route is None:
            return super().post(address, message, headers)
        scheme, host, path = route
        connections = self.local.__dict__.setdefault("connections", {})
        connection = connections.get((scheme, host))
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, timeout=self.operation_timeout, context=self.tls_context
                )
            else:
                connection = http.client.HTTPConnection(host, timeout=self.operation_timeout)
            connections[(scheme, host)] = connection
        reused = connection.sock is not None
        if reused and _dropped(connection):
            connection.close()
            reused = False
        try:
            reply = self.exchange(connection, path, message, {**self.headers, **headers}, reused)
            return _Answer(reply, _read(reply))
        except BaseException:
            connection.close()  # in an unknown state: the next call starts afresh
            raise

    def exchange(self, connection, path, message, headers, again: bool):
        """Send; the answer's status and headers. With ``again``, a connection found closed
        by the server before any byte of the answer carries the request once more, anew."""
        sent = False
        try:
            connection.request("POST", path, message, headers)
            sent = True
            return connection.getresponse()
        except ConnectionError as exc:
            # A reset while waiting may come after the CAS took the request: not sent again.
            if not again or (sent and not isinstance(exc, http.client.RemoteDisconnected)):
                raise
        connection.close()
        return self.exchange(connection, path, message, headers, False)


class ConaxClient:
    """A zeep client bound to every web service of one CAS."""

    def __init__(self, connection: dict):
        if not connection.get("wsdl_url") and not connection.get("endpoint_url"):
            raise TransportError(
                "The provider has no WSDL location or endpoint URL; set its connection.",
                permanent=True,
            )
        self.timeout = int(connection.get("timeout_seconds") or 10)
        self.has_certificate = bool(connection.get("client_certificate_path"))
        tls.check_files(connection, peer="CAS")
        session = _Session()
        if connection.get("username"):
            password = ""
            if connection.get("password_env"):
                password = env_secrets.read(connection["password_env"], "password")
            session.auth = requests.auth.HTTPBasicAuth(connection["username"], password)
        tls.configure(session, connection)
        self.session = session
        transport = _Transport(session, connection, self.timeout)
        wsdl = connection.get("wsdl_url") or str(WSDL_FILE)
        try:
            self.client = zeep.Client(wsdl, transport=transport, settings=SETTINGS)
        except (
            zeep_errors.DTDForbidden,
            zeep_errors.EntitiesForbidden,
            zeep_errors.ExternalReferenceForbidden,
        ) as exc:
            raise _refused_xml(exc, f"the WSDL at {wsdl}") from exc
        except requests.HTTPError as exc:
            raise _http_failure(exc.response.status_code, f"loading the WSDL {wsdl}") from exc
        except requests.RequestException as exc:
            where = f"loading the WSDL {wsdl}"
            raise self._tls_failure(exc, where) or TransportError(
                f"Could not load the WSDL {wsdl}: {tls.why(exc)}"
            ) from exc
        except (zeep_errors.Error, OSError) as exc:
            raise TransportError(f"Unusable WSDL at {wsdl}: {exc}", permanent=True) from exc
        self.services, self.addresses = {}, {}
        endpoint = (connection.get("endpoint_url") or "").rstrip("/")
        for binding in set(BINDINGS.values()):
            port = next(
                (
                    p
                    for s in self.client.wsdl.services.values()
                    for p in s.ports.values()
                    if p.binding.name.localname == binding
                ),
                None,
            )
            if port is None:
                raise TransportError(
                    f"The WSDL at {wsdl} has no port for {binding}: not a Conax Contego 7.5 "
                    "web services WSDL.",
                    permanent=True,
                )
            address = port.binding_options["address"]
            if endpoint:
                # The endpoint URL names the CAS (scheme, host, port); each web service keeps
                # its path under /ca-server/webservices/ from the WSDL.
                address = endpoint + urlsplit(address).path
            self.services[binding] = self.client.create_service(f"{{{NS}}}{binding}", address)
            self.addresses[binding] = address

    def call(self, operation: str, **values) -> dict:
        """Call one operation; its answer as plain JSON-ready data."""
        where = f"for {operation}"
        binding = BINDINGS[operation]
        service = self.services[binding]
        try:
            result = getattr(service, operation)(**values)
        except zeep_errors.Fault as fault:
            code = fault.code or "Fault"
            if fault.detail is not None:
                found = fault.detail.find(f"{{{NS}}}ErrorCode")
                if found is not None and (found.text or "").strip():
                    code = found.text.strip()
            raise CasRefusal(code, fault.message or "") from fault
        except (
            zeep_errors.DTDForbidden,
            zeep_errors.EntitiesForbidden,
            zeep_errors.ExternalReferenceForbidden,
        ) as exc:
            raise _refused_xml(exc, f"the CAS's answer {where}") from exc
        except _Oversized as exc:
            raise TransportError(
                f"Refused the CAS's answer {where}: over {MAX_ANSWER_BYTES} bytes ({exc}), "
                "never read",
                permanent=True,
            ) from exc
        except zeep_errors.TransportError as exc:
            if exc.status_code and exc.status_code != 200:
                raise _http_failure(exc.status_code, where) from exc
            # zeep's words name what lxml refused; the content it quotes stays out.
            cause = str(exc).split("\nContent:", 1)[0].rstrip(".")
            raise TransportError(
                f"Unreadable answer from the CAS {where}: {cause}", permanent=True
            ) from exc
        except (zeep_errors.XMLSyntaxError, zeep_errors.XMLParseError) as exc:
            raise TransportError(
                f"Unreadable answer from the CAS {where}: {exc}", permanent=True
            ) from exc
        except zeep_errors.ValidationError as exc:
            raise TransportError(
                f"The request does not fit the WSDL: {exc}", permanent=True
            ) from exc
        except (requests.Timeout, TimeoutError) as exc:
            raise TransportError(f"No answer within {self.timeout} s {where}") from exc
        except requests.ConnectionError as exc:
            raise self._unreachable(exc, binding, where) from exc
        except requests.RequestException as exc:
            raise TransportError(f"{type(exc).__name__} {where}: {exc}") from exc
        except OSError as exc:  # from http.client (_Transport): refused, reset, TLS
            raise self._unreachable(exc, binding, where) from exc
        except http.client.LineTooLong as exc:
            raise TransportError(
                f"Refused the CAS's answer {where}: {exc}, never read", permanent=True
            ) from exc
        except http.client.HTTPException as exc:  # a cut answer: may pass
            raise TransportError(
                f"Unreadable answer from the CAS {where}: {type(exc).__name__}"
            ) from exc
        return _plain(serialize_object(result, dict)) or {}

    def _tls_failure(self, exc: Exception, where: str) -> TransportError | None:
        return tls.failure(exc, where, has_certificate=self.has_certificate, peer="CAS")

    def _unreachable(self, exc: OSError, binding: str, where: str) -> TransportError:
        address = urlsplit(self.addresses[binding]).netloc
        return self._tls_failure(exc, where) or TransportError(
            f"Could not connect to the CAS at {address} {where}: {tls.why(exc)}"
        )


_clients: dict[int, tuple[str, ConaxClient]] = {}
_lock = threading.Lock()


def client_for(provider) -> ConaxClient:
    """This process's client for ``provider``, made on first use and when its settings
    change."""
    key = json.dumps([str(provider.updated_at), provider.connection], sort_keys=True)
    with _lock:
        cached = _clients.get(provider.pk)
        if cached is not None and cached[0] == key:
            return cached[1]
    made = ConaxClient(provider.connection or {})  # outside the lock: it may load a WSDL
    with _lock:
        _clients[provider.pk] = (key, made)
    return made
