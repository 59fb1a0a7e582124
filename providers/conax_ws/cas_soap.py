"""The SOAP side of the Conax Contego CAS simulator: read a request envelope of
``wsdl/conax.wsdl``, apply its operation to the ``CasState``, and write the answer envelope
or a SOAP 1.1 Fault. No HTTP here (that is ``simulator.py``).

The parser refuses what a CAS must never act on: no DTD is loaded, no entity expanded, no
network touched, and a document that declares a DOCTYPE at all is faulted.
"""

from datetime import datetime
from http import HTTPStatus

from lxml import etree

from .cas_state import CasFault, CasState

NS = "http://www.conax.com/contego/ca-server/webservices/7.5"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
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


def answer(state: CasState, port: str, body: bytes, received_at: float) -> tuple[int, bytes]:
    """(HTTP status, SOAP envelope) for one request to one port, received at ``received_at``
    (``time.time()``)."""
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
            result = state.handle(
                request_id, operation, cards, apply, query=query, received_at=received_at
            )
    except CasFault as fault:
        return HTTPStatus.INTERNAL_SERVER_ERROR, fault_body(fault)
    return HTTPStatus.OK, envelope((render or acknowledgement)(operation, request_id, result))
