"""The CA systems the real-time figure measures, and what it needs to know of each: how its
simulator starts, how the bench's provider connects to it, what it must know of the cards
before the actions, and one activation written by hand (for the floors).

``bench.realtime`` and ``bench.realtime_floor`` take a ``Cas`` and know nothing of the wire;
``CONAX_WS`` and ``IRDETO`` are the two there are (``BY_CODE`` by provider type).
"""

import base64
import http.client
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests

from providers.conax_ws.cas_soap import NS, SOAP_ENV
from providers.irdeto import protocol

USERNAME = "crm"


@dataclass(frozen=True)
class Card:
    """A card the simulator must know before the actions, and what it holds there: the
    product's CA ID when the bench's data says it is authorized (a stop's card), else None."""

    ca_id: str
    holds: str | None


@dataclass(frozen=True)
class Cas:
    code: str  # the provider type (and the floor's sender's argument)
    label: str  # "Conax WS": the simulator, as the figures' detail names it
    provider: str  # the bench's provider of that type
    # What the figures' names add after "Real-time actions" etc.: nothing for Conax WS, whose
    # figures had the names first.
    figure: str
    secret_env: str  # the variable holding the secret the simulator and the worker share
    activate: str  # the command of an activation: the floor's requests
    raw: str  # the raw floor, as the detail names it ("raw SOAP")
    raw_key: str  # … and as its counts do
    simulator_args: Callable[[], list[str]]
    address: str  # the regular expression of the simulator's URL in what it prints
    connection: Callable[[str], dict]
    # (url, secret, cards): the simulator made to know the cards, and hold what they hold
    prepare: Callable[[str, str, list[Card]], None]
    # The headers of every call: fetched once (a token) by hand.
    headers: Callable[[str, str], dict]
    # (path, body) of one hand-written activation of ``card`` with ``product``.
    call: Callable[[str, str, str, str], tuple[str, bytes]]


def _post_control(url: str, path: str, **kwargs) -> None:
    answer = requests.post(f"{url}/control/{path}", timeout=60, **kwargs)
    answer.raise_for_status()


# --- Conax WS -----------------------------------------------------------------------------------

SOAP_PATH = "/ca-server/webservices/subscription-management"
ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:cx="{NS}"><soap:Body>'
    "<cx:AddSubscriptions><cx:RequestId>{request_id}</cx:RequestId>"
    "<cx:CaClientIds><cx:CaClientId>{card}</cx:CaClientId></cx:CaClientIds>"
    "<cx:ProductIds><cx:ProductId>{product}</cx:ProductId></cx:ProductIds>"
    "<cx:StartDate>{start}</cx:StartDate></cx:AddSubscriptions>"
    "</soap:Body></soap:Envelope>"
)


def _conax_connection(url: str) -> dict:
    return {
        "wsdl_url": f"{url}{SOAP_PATH}?wsdl",
        "endpoint_url": url,
        "username": USERNAME,
        "password_env": CONAX_WS_SECRET_ENV,
        "timeout_seconds": 5,
    }


def _conax_prepare(url: str, secret: str, cards: list[Card], chunk: int = 400) -> None:
    """Cards made known, nothing held: the CAS cancels what a card does not hold silently."""
    ids = sorted({c.ca_id for c in cards})
    for start in range(0, len(ids), chunk):
        _post_control(url, "register", params={"cards": ",".join(ids[start : start + chunk])})


def _conax_headers(url: str, password: str) -> dict:
    auth = base64.b64encode(f"{USERNAME}:{password}".encode()).decode()
    return {"Authorization": f"Basic {auth}", "Content-Type": "text/xml; charset=utf-8"}


def _conax_call(request_id: str, card: str, product: str, start: str) -> tuple[str, bytes]:
    body = ENVELOPE.format(request_id=request_id, card=card, product=product, start=start)
    return SOAP_PATH, body.encode()


CONAX_WS_SECRET_ENV = "CRM_SECRET_CONAX_WS_PASSWORD"  # noqa: S105 (the variable's name)
CONAX_WS = Cas(
    code="conax_ws",
    label="Conax WS",
    provider="Bench Conax WS",
    figure="",
    secret_env=CONAX_WS_SECRET_ENV,
    activate="ADD_SUBSCRIPTIONS",
    raw="raw SOAP",
    raw_key="raw_soap_per_s",
    simulator_args=lambda: [
        "conax-ws",
        "--port",
        "0",
        "--username",
        USERNAME,
        "--password-env",
        CONAX_WS_SECRET_ENV,
    ],
    address=r"on (http://127\.0\.0\.1:\d+)/",
    connection=_conax_connection,
    prepare=_conax_prepare,
    headers=_conax_headers,
    call=_conax_call,
)


# --- Irdeto -------------------------------------------------------------------------------------

IRDETO_SECRET_ENV = "CRM_SECRET_IRDETO_CLIENT_SECRET"  # noqa: S105 (the variable's name)


def _irdeto_connection(url: str) -> dict:
    return {
        "endpoint_url": url,
        "client_id": USERNAME,
        "client_secret_env": IRDETO_SECRET_ENV,
        "timeout_seconds": 5,
    }


def _irdeto_prepare(
    url: str, secret: str, cards: list[Card], chunk: int = 400, clients: int = 4
) -> None:
    """Cards made known, holding what the bench's data says they hold (the KMS refuses to
    remove an entitlement a card does not hold): registered, then entitled by calls of the
    protocol (``clients`` threads), whose receipts are then forgotten."""
    ids = sorted({c.ca_id for c in cards})
    for start in range(0, len(ids), chunk):
        _post_control(url, "register", params={"devices": ",".join(ids[start : start + chunk])})
    held = [c for c in cards if c.holds]
    headers = _irdeto_headers(url, secret)
    since = datetime.now(tz=UTC).isoformat()
    errors: list[str] = []

    def client(index: int) -> None:
        with requests.Session() as session:
            session.headers.update(headers)
            for each in held[index::clients]:
                path, body = _irdeto_call(str(uuid.uuid4()), each.ca_id, each.holds, since)
                answer = session.post(f"{url}{path}", data=body, timeout=30)
                if answer.status_code != 200:
                    errors.append(answer.text[:300])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} entitlements were refused; the first: {errors[0]}")
    requests.delete(f"{url}/control/received", timeout=60).raise_for_status()


def _irdeto_headers(url: str, secret: str) -> dict:
    """A bearer token fetched by hand (OAuth2 client credentials)."""
    address = urlsplit(url)
    auth = base64.b64encode(f"{USERNAME}:{secret}".encode()).decode()
    kms = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    kms.request(
        "POST",
        protocol.OAUTH_PATH,
        b"grant_type=client_credentials",
        {"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    answer = kms.getresponse()
    text = answer.read()
    kms.close()
    if answer.status != 200:
        raise RuntimeError(f"The KMS answered {answer.status} to the token request: {text[:300]}")
    token = json.loads(text)["access_token"]
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _irdeto_call(request_id: str, card: str, product: str, start: str) -> tuple[str, bytes]:
    body = {"requestId": request_id, "secureClientId": card, "productId": product, "start": start}
    path = protocol.API_PREFIX + protocol.PATHS[protocol.ADD_ENTITLEMENT]
    return path, json.dumps(body).encode()


IRDETO = Cas(
    code="irdeto",
    label="Irdeto",
    provider="Bench Irdeto",
    figure=" (Irdeto)",
    secret_env=IRDETO_SECRET_ENV,
    activate=protocol.ADD_ENTITLEMENT,
    raw="raw JSON calls",
    raw_key="raw_calls_per_s",
    simulator_args=lambda: [
        "irdeto",
        "--port",
        "0",
        "--client-id",
        USERNAME,
        "--client-secret-env",
        IRDETO_SECRET_ENV,
    ],
    address=r"on (http://127\.0\.0\.1:\d+)",
    connection=_irdeto_connection,
    prepare=_irdeto_prepare,
    headers=_irdeto_headers,
    call=_irdeto_call,
)

BY_CODE = {cas.code: cas for cas in (CONAX_WS, IRDETO)}
