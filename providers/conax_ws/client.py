"""The SOAP transport to a Conax Contego CAS: one zeep client per provider per worker process.

Making a zeep client parses the WSDL and builds its types, which costs far more than a
request; so each process keeps one client per provider (with one pooled ``requests.Session``
inside, HTTP Basic auth and the TLS client certificate set on it) and reuses it for every
request. The cache is keyed by the provider's ``updated_at`` and connection settings, so an
operator's change of settings takes effect on the next request without restarting workers.

XML safety: zeep parses the WSDL and every answer with DTDs, entity declarations and external
references forbidden (``Settings(strict=True, forbid_dtd=True, forbid_entities=True,
forbid_external=True)``). Such a document is *refused*: ``TransportError(permanent=True)``, so
the request is Failed at once with the reason, never retried against a CAS (or a man in the
middle) that answers like that; a Reset repairs the subscription once it is sorted out.

How answers map (see ``call``): a SOAP Fault is the CAS's refusal → ``CasRefusal`` (the
adapter makes it a Rejected request). A timeout, a refused connection, HTTP 5xx without a
Fault, or garbage instead of XML → ``TransportError`` (retried with backoff). HTTP 401/403/404
(wrong credentials, wrong address), a TLS handshake the settings cannot pass (``tls.py``), a
request the schema refuses, and refused XML → ``TransportError(permanent=True)``.
"""

import json
import os
import threading
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
import zeep
from zeep import exceptions as zeep_errors
from zeep.helpers import serialize_object

from providers.registry import TransportError

from . import tls

NS = "http://www.conax.com/contego/ca-server/webservices/7.5"
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


def _why(exc: requests.RequestException) -> str:
    """The operating system's reason under requests' wrapping ("Connection refused"), or the
    kind of failure."""
    # requests' own exceptions are OSErrors too, without an operating system's reason.
    cause = tls.underlying(exc, OSError, lambda e: e.strerror)
    return cause.strerror if cause is not None else type(exc).__name__


def _secret(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise TransportError(
            f"The {what} variable {variable} is not set in this worker's environment.",
            permanent=True,
        )
    return value


def _http_failure(status: int, where: str) -> TransportError:
    if status in (401, 403):
        return TransportError(
            f"The CAS refused our credentials (HTTP {status}) {where}; check the username and "
            "password variable.",
            permanent=True,
        )
    if status == 404:
        return TransportError(
            f"Nothing at the CAS's address (HTTP 404) {where}; check the endpoint URL.",
            permanent=True,
        )
    return TransportError(f"HTTP {status} from the CAS {where}")


def _refused_xml(exc: Exception, where: str) -> TransportError:
    kind = {
        zeep_errors.DTDForbidden: "a DTD",
        zeep_errors.EntitiesForbidden: "an entity declaration",
        zeep_errors.ExternalReferenceForbidden: "an external reference",
    }[type(exc)]
    return TransportError(
        f"Refused {where}: it carries {kind}, which is never parsed ({exc}).", permanent=True
    )


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
        tls.check_files(connection)
        session = _Session()
        if connection.get("username"):
            password = ""
            if connection.get("password_env"):
                password = _secret(connection["password_env"], "password")
            session.auth = requests.auth.HTTPBasicAuth(connection["username"], password)
        tls.configure(session, connection)
        self.session = session
        transport = zeep.Transport(
            session=session, timeout=self.timeout, operation_timeout=self.timeout
        )
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
                f"Could not load the WSDL {wsdl}: {_why(exc)}"
            ) from exc
        except (zeep_errors.Error, OSError) as exc:
            raise TransportError(f"Unusable WSDL at {wsdl}: {exc}", permanent=True) from exc
        self.services = {}
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

    def call(self, operation: str, **values) -> dict:
        """Call one operation; its answer as plain JSON-ready data."""
        where = f"for {operation}"
        service = self.services[BINDINGS[operation]]
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
        except zeep_errors.TransportError as exc:
            if exc.status_code and exc.status_code != 200:
                raise _http_failure(exc.status_code, where) from exc
            raise TransportError(f"Unreadable answer from the CAS {where}") from exc
        except (zeep_errors.XMLSyntaxError, zeep_errors.XMLParseError) as exc:
            raise TransportError(f"Unreadable answer from the CAS {where}: {exc}") from exc
        except zeep_errors.ValidationError as exc:
            raise TransportError(
                f"The request does not fit the WSDL: {exc}", permanent=True
            ) from exc
        except requests.Timeout as exc:
            raise TransportError(f"No answer within {self.timeout} s {where}") from exc
        except requests.ConnectionError as exc:
            address = urlsplit(exc.request.url).netloc if exc.request is not None else "?"
            raise self._tls_failure(exc, where) or TransportError(
                f"Could not connect to the CAS at {address} {where}: {_why(exc)}"
            ) from exc
        except requests.RequestException as exc:
            raise TransportError(f"{type(exc).__name__} {where}: {exc}") from exc
        return _plain(serialize_object(result, dict)) or {}

    def _tls_failure(self, exc: Exception, where: str) -> TransportError | None:
        return tls.failure(exc, where, has_certificate=self.has_certificate)


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
