"""A Conax Contego web services CAS simulator: a real SOAP 1.1 server of ``wsdl/conax.wsdl``.

``python manage.py cas_simulator conax-ws --port 8090 --username crm --password-env VAR``
serves the ports under ``/ca-server/webservices/…`` (and the WSDL at ``…?wsdl``, addresses
rewritten to this server), checks HTTP Basic auth (401 otherwise), and keeps a CAS's state
(``cas_state.CasState``): entitlements with end dates, pairings, mailbox and screen messages,
PINs, fingerprints. It faults on unknown cards and malformed input, answers a repeated
RequestId as before without applying it again, and refuses any request carrying a DTD.

Misbehaving on purpose, for the tests and the demo (no auth on these; bind to localhost):

- ``POST /control/down`` / ``POST /control/up``: answer every SOAP request with HTTP 503;
- ``POST /control/slow?seconds=N``: apply each request, then wait N s before answering (a
  client that times out sends it again, and the RequestId makes the repeat harmless);
- ``POST /control/reject?share=0.3&cards=CA1,CA2``: fault that share of requests (chosen by
  request id, so a request is always answered the same way) and every request naming those
  cards; ``share=0`` and no ``cards`` stop it;
- ``POST /control/register?cards=CA1,CA2``: make cards known without pairing them;
- ``POST /control/clear``: forget everything; ``GET /control/state``: the whole state as JSON,
  with how many times each request id arrived (``requests``) and every arrival in order.

In tests: ``Simulator(username, password).start()`` serves on a free port in a thread.
"""

import base64
import hmac
import json
import os
import sys
import threading
import time
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from .cas_state import CasFault, CasState

NS = "http://www.conax.com/contego/ca-server/webservices/7.5"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_FILE = Path(__file__).with_name("wsdl") / "conax.wsdl"
WSDL_HOST = "http://localhost:8080"  # the placeholder host of the shipped WSDL's addresses
BASE_PATH = "/ca-server/webservices/"
MAX_BODY = 1_000_000

# The parser refuses what a CAS must never act on: no DTD is loaded, no entity expanded, no
# network touched; a document that declares a DOCTYPE at all is refused below.
PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


# --- reading a request ------------------------------------------------------------------------


def parse_envelope(body: bytes) -> etree._Element:
    """The operation element inside the SOAP body."""
    try:
        root = etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as exc:
        raise CasFault("MALFORMED_REQUEST", f"Not well-formed XML: {exc}") from None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise CasFault("MALFORMED_REQUEST", "A request may not carry a DTD.")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise CasFault("MALFORMED_REQUEST", "Not a SOAP 1.1 envelope.")
    body_el = root.find(f"{{{SOAP_ENV}}}Body")
    if body_el is None or len(body_el) != 1:
        raise CasFault("MALFORMED_REQUEST", "The SOAP body must hold exactly one operation.")
    return body_el[0]


def text(el, name: str, *, required: bool = True) -> str | None:
    found = el.find(q(name))
    value = (found.text or "").strip() if found is not None else ""
    if not value:
        if required:
            raise CasFault("MALFORMED_REQUEST", f"{name} is missing.")
        return None
    return value


def integer(el, name: str, *, required: bool = True) -> int | None:
    value = text(el, name, required=required)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise CasFault("MALFORMED_REQUEST", f"{name} is not a whole number: {value!r}.") from None


def moment(el, name: str) -> datetime | None:
    value = text(el, name, required=False)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CasFault("MALFORMED_REQUEST", f"{name} is not a date and time: {value!r}.") from None


def iso(el, name: str) -> str | None:
    value = moment(el, name)
    return value.isoformat() if value else None


def id_list(el, list_name: str, item_name: str, *, required: bool = True) -> list[str]:
    holder = el.find(q(list_name))
    ids = [] if holder is None else [(i.text or "").strip() for i in holder.findall(q(item_name))]
    ids = [i for i in ids if i]
    if required and not ids:
        raise CasFault("MALFORMED_REQUEST", f"{list_name} names no {item_name}.")
    return ids


# --- writing an answer ------------------------------------------------------------------------


def envelope(payload: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "cx": NS})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(payload)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def fault_body(fault: CasFault) -> bytes:
    el = etree.Element(f"{{{SOAP_ENV}}}Fault", nsmap={"soap": SOAP_ENV})
    etree.SubElement(el, "faultcode").text = f"soap:{fault.sender}"
    etree.SubElement(el, "faultstring").text = fault.message
    detail = etree.SubElement(el, "detail")
    etree.SubElement(detail, q("ErrorCode"), nsmap={"cx": NS}).text = fault.code
    return envelope(el)


def add(parent, name: str, value) -> None:
    if value is not None:
        etree.SubElement(parent, q(name)).text = str(value)


def add_list(parent, list_name: str, item_name: str, values) -> None:
    holder = etree.SubElement(parent, q(list_name))
    for value in values:
        add(holder, item_name, value)


def acknowledgement(operation: str, request_id: str, result: dict) -> etree._Element:
    el = etree.Element(q(f"{operation}Response"), nsmap={"cx": NS})
    add(el, "RequestId", request_id)
    add(el, "Duplicate", "true" if result["duplicate"] else "false")
    return el


def pairing_status(operation: str, request_id: str, result: dict) -> etree._Element:
    el = etree.Element(q(f"{operation}Response"), nsmap={"cx": NS})
    add(el, "RequestId", request_id)
    if not operation.startswith("Get"):
        add(el, "Duplicate", "true" if result["duplicate"] else "false")
    if result["pairing_id"]:
        add(el, "PairingId", result["pairing_id"])
        add_list(el, "CaClientIds", "CaClientId", result["cards"])
        add_list(el, "PairingModuleIds", "PairingModuleId", result["modules"])
    return el


def active_subscriptions(operation: str, request_id: str, result: dict) -> etree._Element:
    el = etree.Element(q(f"{operation}Response"), nsmap={"cx": NS})
    add(el, "RequestId", request_id)
    add(el, "CaClientId", result["card"])
    for held in result["subscriptions"]:
        sub = etree.SubElement(el, q("Subscription"))
        add(sub, "ProductId", held["product_id"])
        add(sub, "StartDate", held["start"])
        add(sub, "EndDate", held["end"])
    return el


# --- the operations: port, how to read the request, what it does to the state ------------------


def _plan(state: CasState, operation: str, request_id: str, el):
    """(cards named, apply() -> result, query?, render) for one request, or CasFault."""
    if operation == "AddSubscriptions":
        cards, products = (
            id_list(el, "CaClientIds", "CaClientId"),
            id_list(el, "ProductIds", "ProductId"),
        )
        start, end = moment(el, "StartDate"), moment(el, "EndDate")
        return cards, lambda: state.add_subscriptions(cards, products, start, end), False, None
    if operation == "CancelSubscriptions":
        cards, products = (
            id_list(el, "CaClientIds", "CaClientId"),
            id_list(el, "ProductIds", "ProductId"),
        )
        end = moment(el, "EndDate")
        return cards, lambda: state.cancel_subscriptions(cards, products, end), False, None
    if operation == "GetActiveSubscriptions":
        card = text(el, "CaClientId")
        return (
            [card],
            lambda: {"card": card, "subscriptions": state.active_subscriptions(card)},
            True,
            active_subscriptions,
        )
    if operation == "CreatePairing":
        cards = id_list(el, "CaClientIds", "CaClientId")
        modules = id_list(el, "PairingModuleIds", "PairingModuleId", required=False)
        return cards, lambda: state.create_pairing(cards, modules), False, pairing_status
    if operation == "AddToExistingPairing":
        paired = text(el, "PairedCaClientId")
        cards = id_list(el, "CaClientIds", "CaClientId", required=False)
        modules = id_list(el, "PairingModuleIds", "PairingModuleId", required=False)
        return (
            [paired, *cards],
            lambda: state.add_to_pairing(paired, cards, modules),
            False,
            pairing_status,
        )
    if operation == "GetPairingStatusForCard":
        card = text(el, "CaClientId")
        return [card], lambda: state.pairing_for_card(card), True, pairing_status
    if operation == "GetPairingStatusForPairingModule":
        module = text(el, "PairingModuleId")
        return [], lambda: state.pairing_for_module(module), True, pairing_status
    if operation in (
        "SendMailMessageToClients",
        "SendBarkMessageToClients",
        "SendRepeatingBarkMessageToClients",
    ):
        cards = id_list(el, "CaClientIds", "CaClientId")
        message = {
            "text": text(el, "Message"),
            "start": iso(el, "StartDateTime"),
            "sequence_number": integer(el, "SequenceNumber", required=False),
        }
        box = "mailbox"
        if operation != "SendMailMessageToClients":
            box = "screen"
            message["kind"] = "bark"
            message["display_seconds"] = integer(el, "DisplayDurationInSeconds")
        if operation == "SendRepeatingBarkMessageToClients":
            message["kind"] = "repeating_bark"
            message["repetition_count"] = integer(el, "RepetitionCount")
            message["repetition_interval"] = integer(el, "RepetitionIntervalInSeconds")
        return cards, lambda: state.message(request_id, cards, box, message), False, None
    if operation == "DisplayFingerprint":
        cards = id_list(el, "CaClientIds", "CaClientId")
        shown = {
            "display_at": iso(el, "DisplayDateTime"),
            "duration_seconds": integer(el, "DisplayDurationInSeconds"),
            "x": integer(el, "PositionX", required=False),
            "y": integer(el, "PositionY", required=False),
            "height": integer(el, "Height"),
            "slot": text(el, "Slot"),
        }
        return cards, lambda: state.fingerprint(request_id, cards, shown), False, None
    if operation == "UpdateCaPinToDefaultValue":
        cards = id_list(el, "CaClientIds", "CaClientId")
        return cards, lambda: state.set_pin(cards), False, None
    if operation == "UpdateCaPinToGivenValue":
        cards = id_list(el, "CaClientIds", "CaClientId")
        pin = text(el, "Pin")
        return cards, lambda: state.set_pin(cards, pin), False, None
    raise CasFault("MALFORMED_REQUEST", f"Unknown operation {operation}.")


PORTS = {
    "subscription-management": {
        "AddSubscriptions",
        "CancelSubscriptions",
        "GetActiveSubscriptions",
    },
    "pairing": {
        "CreatePairing",
        "AddToExistingPairing",
        "GetPairingStatusForCard",
        "GetPairingStatusForPairingModule",
    },
    "user-text-messaging": {
        "SendMailMessageToClients",
        "SendBarkMessageToClients",
        "SendRepeatingBarkMessageToClients",
    },
    "fingerprint": {"DisplayFingerprint"},
    "ca-pin": {"UpdateCaPinToDefaultValue", "UpdateCaPinToGivenValue"},
}


def answer(state: CasState, port: str, body: bytes) -> tuple[int, bytes]:
    """(HTTP status, SOAP envelope) for one request to one port."""
    try:
        el = parse_envelope(body)
        if etree.QName(el).namespace != NS:
            raise CasFault("MALFORMED_REQUEST", f"Unknown namespace {etree.QName(el).namespace}.")
        operation = etree.QName(el).localname
        if operation not in PORTS[port]:
            raise CasFault("MALFORMED_REQUEST", f"{operation} is not an operation of {port}.")
        request_id = text(el, "RequestId")
        with state.lock:
            cards, apply, query, render = _plan(state, operation, request_id, el)
            result = state.handle(request_id, operation, cards, apply, query=query)
    except CasFault as fault:
        return HTTPStatus.INTERNAL_SERVER_ERROR, fault_body(fault)
    return HTTPStatus.OK, envelope((render or acknowledgement)(operation, request_id, result))


# --- the HTTP server --------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "ConaxContegoSimulator/7.5"
    state: CasState
    credentials: tuple[str, str]

    def log_message(self, format, *args):
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            want_user, want_password = self.server.credentials
            return hmac.compare_digest(user.encode(), want_user.encode()) & hmac.compare_digest(
                password.encode(), want_password.encode()
            )
        return False

    def _refuse(self) -> None:
        self._send(
            HTTPStatus.UNAUTHORIZED,
            b"Authentication required",
            "text/plain",
            [("WWW-Authenticate", 'Basic realm="ca-server"')],
        )

    def _port(self, path: str) -> str | None:
        if path.startswith(BASE_PATH) and path[len(BASE_PATH) :] in PORTS:
            return path[len(BASE_PATH) :]
        return None

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/control/state":
            with self.server.state.lock:
                body = json.dumps(self.server.state.snapshot(), default=str).encode()
            return self._send(HTTPStatus.OK, body, "application/json")
        if self._port(url.path) and url.query.lower() == "wsdl":
            if not self._authorized():
                return self._refuse()
            address = "{}:{}".format(*self.server.server_address[:2])
            host = f"http://{self.headers.get('Host') or address}"
            return self._send(
                HTTPStatus.OK,
                WSDL_FILE.read_text().replace(WSDL_HOST, host).encode(),
                "text/xml; charset=utf-8",
            )
        return self._send(HTTPStatus.NOT_FOUND, b"Not found", "text/plain")

    def do_POST(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"Too large", "text/plain")
        body = self.rfile.read(length)
        if url.path.startswith("/control/"):
            return self._control(url.path[len("/control/") :], parse_qs(url.query))
        port = self._port(url.path)
        if port is None:
            return self._send(HTTPStatus.NOT_FOUND, b"Not found", "text/plain")
        if not self._authorized():
            return self._refuse()
        state = self.server.state
        if state.controls.down:
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"CAS is down", "text/plain")
        status, reply = answer(state, port, body)
        if state.controls.slow_seconds:
            time.sleep(state.controls.slow_seconds)
        self._send(status, reply, "text/xml; charset=utf-8")

    def _control(self, what: str, query: dict) -> None:
        state = self.server.state

        def first(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        with state.lock:
            controls = state.controls
            try:
                if what == "down":
                    controls.down = True
                elif what == "up":
                    controls.down = False
                elif what == "slow":
                    controls.slow_seconds = float(first("seconds", "0"))
                elif what == "reject":
                    controls.reject_share = float(first("share", "0"))
                    cards = first("cards")
                    controls.reject_cards = frozenset(c for c in cards.split(",") if c)
                elif what == "register":
                    state.register(c for c in first("cards").split(",") if c)
                elif what == "clear":
                    state.clear()
                    state.save()
                else:
                    return self._send(HTTPStatus.NOT_FOUND, b"Unknown control", "text/plain")
            except ValueError as exc:
                return self._send(HTTPStatus.BAD_REQUEST, str(exc).encode(), "text/plain")
            body = json.dumps(controls.as_dict()).encode()
        self._send(HTTPStatus.OK, body, "application/json")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up waiting (a timeout): nothing to report
        super().handle_error(request, client_address)


def make_server(
    state: CasState, *, host: str = "127.0.0.1", port: int = 0, username: str, password: str
) -> Server:
    server = Server((host, port), Handler)
    server.state = state
    server.credentials = (username, password)
    server.verbose = False
    return server


class Simulator:
    """The simulator in this process, on a free port, for tests."""

    def __init__(self, username: str, password: str, *, known_cards=()):
        self.state = CasState(known_cards)
        self.server = make_server(self.state, username=username, password=password)
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.wsdl_url = f"{self.url}{BASE_PATH}subscription-management?wsdl"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> "Simulator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def active(self, card: str) -> list[str]:
        """Product ids active on a card now (for checks beside the SOAP query)."""
        with self.state.lock:
            return [s["product_id"] for s in self.state.active_subscriptions(card)]


# --- the management command -------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--username", default="crm")
    parser.add_argument(
        "--password-env",
        default="CONAX_WS_PASSWORD",
        help="Name of the environment variable holding the password clients must give.",
    )
    parser.add_argument(
        "--card", action="append", default=[], help="A CA client id known from the start."
    )
    parser.add_argument(
        "--state-file", default="", help="Keep the CAS's state in this JSON file across restarts."
    )
    parser.add_argument("--verbose", action="store_true", help="Log every HTTP request.")


def serve(options: dict, stdout) -> None:
    password = os.environ.get(options["password_env"])
    if not password:
        sys.exit(f"Set the password in ${options['password_env']} (see --password-env).")
    state = CasState(options["card"], path=options["state_file"] or None)
    server = make_server(
        state,
        host=options["host"],
        port=options["port"],
        username=options["username"],
        password=password,
    )
    server.verbose = options["verbose"]
    host, port = server.server_address[:2]
    stdout.write(
        f"Conax Contego WS simulator on http://{host}:{port}{BASE_PATH}… "
        f"(WSDL: http://{host}:{port}{BASE_PATH}subscription-management?wsdl; "
        f"user {options['username']}; state {options['state_file'] or 'in memory'})\n"
    )
    stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
