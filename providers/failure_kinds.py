"""What failed when a platform could not be asked, in words an operator acts on: DNS, a
refused connection, a timeout, TLS, authentication, a secret variable, the platform's own error
or its protocol. Said by the adapters' health checks (``Adapter.check``)."""

import socket
import ssl

import requests

from .errors import TransportError
from .extensions import Health
from .tls import underlying

DNS, REFUSED, TIMEOUT, TLS = "dns", "refused", "timeout", "tls"
AUTH, SECRET, UNAVAILABLE, PROTOCOL = "auth", "secret", "unavailable", "protocol"

WORDS = {
    DNS: "DNS: the host name is not known",
    REFUSED: "connection refused",
    TIMEOUT: "no answer in time",
    TLS: "TLS",
    AUTH: "authentication refused",
    SECRET: "secret variable",
    UNAVAILABLE: "the platform answered with an error",
    PROTOCOL: "protocol",
}

# The cause inside requests' and urllib3's wrapping that tells the kind, checked in order.
CAUSES = (
    (socket.gaierror, DNS),
    (ssl.SSLError, TLS),
    (ConnectionRefusedError, REFUSED),
    (TimeoutError, TIMEOUT),
    (requests.Timeout, TIMEOUT),
)


def kind(error: TransportError, otherwise: str = "") -> str:
    """The kind of the failure: as raised, else by its cause, else ``otherwise``."""
    if error.kind:
        return error.kind
    for cause, found in CAUSES:
        if underlying(error, cause) is not None:
            return found
    return otherwise


def failed(name: str, error: TransportError, otherwise: str = "") -> Health:
    """A failed health check of provider ``name``, saying what failed first."""
    what = WORDS.get(kind(error, otherwise))
    said = f" ({what})" if what else ""
    return Health(False, f"{name} cannot be reached{said}: {error}")
