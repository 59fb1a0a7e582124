"""Irdeto KMS's wire format: the one module a deployment replaces with Irdeto's own.

Irdeto's interface is confidential to its customers (seed 001: ask for the connection
parameters), so this is a plain JSON-over-HTTPS protocol of our own, written so that the
client (``client.py``), the adapter and the simulator (``simulator.py``) know nothing of the
wire beyond what is here. A deployment holding Irdeto's real specification rewrites this module
and keeps the names it exports.

Authentication: OAuth2 client credentials. ``POST <token_url>`` with the form
``grant_type=client_credentials`` and HTTP Basic ``client_id:client_secret`` answers
``{"access_token": …, "token_type": "Bearer", "expires_in": seconds}``.

Every call: ``POST <endpoint_url>/kms/v1/<path>`` with ``Authorization: Bearer <token>`` and a
JSON body carrying ``requestId`` (the request's uid: the KMS applies a request id once and
answers a repeat as it answered the first, with ``"duplicate": true``). Answers:

- ``200`` — done: ``{"requestId": …, "duplicate": bool, …}`` plus the call's result;
- ``400``, ``404``, ``409``, ``422`` — refused: ``{"error": {"code": …, "message": …}}``
  (the request is Rejected with that code and text, and its change rolled back);
- ``401`` — the token expired or was revoked: fetch a new one and send again, once;
- ``429``, ``5xx``, no answer — the KMS cannot act now: sent again later (same request id).
"""

from dataclasses import dataclass

API_PREFIX = "/kms/v1/"
# Where tokens are fetched, under the endpoint URL, when the connection names no token URL.
OAUTH_PATH = "/oauth/token"

# Commands (``ProvisioningRequest.command``) -> path under API_PREFIX.
ADD_ENTITLEMENT = "ADD_ENTITLEMENT"
REMOVE_ENTITLEMENT = "REMOVE_ENTITLEMENT"
PAIR_SECURE_CLIENTS = "PAIR_SECURE_CLIENTS"
ADD_TO_PAIRING = "ADD_TO_PAIRING"
SEND_MAIL = "SEND_MAIL"
SEND_SCREEN_MESSAGE = "SEND_SCREEN_MESSAGE"
SET_PARENTAL_PIN = "SET_PARENTAL_PIN"
REAUTHORIZE_SECTOR = "REAUTHORIZE_SECTOR"
QUERY_SECURE_CLIENT = "QUERY_SECURE_CLIENT"

PATHS = {
    ADD_ENTITLEMENT: "entitlements/add",
    REMOVE_ENTITLEMENT: "entitlements/remove",
    PAIR_SECURE_CLIENTS: "pairings/create",
    ADD_TO_PAIRING: "pairings/add",
    SEND_MAIL: "messages/mail",
    SEND_SCREEN_MESSAGE: "messages/screen",
    SET_PARENTAL_PIN: "secure-clients/pin",
    REAUTHORIZE_SECTOR: "secure-clients/reauthorize-sector",
    QUERY_SECURE_CLIENT: "secure-clients/query",
}

REFUSED = frozenset({400, 404, 409, 422})
UNAUTHORIZED = 401

# Error codes the KMS answers with (``error.code``).
UNKNOWN_SECURE_CLIENT = "UNKNOWN_SECURE_CLIENT"  # no device with that id
INVALID_REQUEST = "INVALID_REQUEST"  # a field missing or malformed; the message names it
NOT_ENTITLED = "NOT_ENTITLED"  # removing an entitlement the device does not hold
PAYLOAD_TOO_LONG = "PAYLOAD_TOO_LONG"
INVALID_PIN = "INVALID_PIN"
REFUSED_BY_KMS = "REFUSED_BY_KMS"  # the KMS's own policy (the simulator's reject control)

# Message text modes: what the operator picks -> how the text becomes the bytes on the wire.
ANSI = "ANSI"  # Windows-1252, one byte a character (advised by the seed)
UNICODE = "UNICODE"  # UTF-16 big-endian, two bytes a character (four beyond the BMP)
RAW = "RAW"  # the bytes themselves, typed as hex digits
TEXT_MODES = {ANSI: "ANSI", UNICODE: "Unicode", RAW: "Raw"}
MAX_PAYLOAD_BYTES = 1000

# Query secure client: the sections the KMS answers, in the order a person reads them.
QUERY_SECTIONS = {
    "basic": "Basic information",
    "pairing": "Pairing information",
    "entitlements": "Entitlements information",
    "security": "Security information",
    "anchoring": "Anchoring information",
    "tms_attributes": "TMS attribute information",
    "sector": "Sector information",
    "pvr": "PVR information",
    "device_domain": "Device domain information",
}


class TextModeError(ValueError):
    """The text cannot be sent in that mode; the message says which character or byte."""


def payload(mode: str, text: str) -> bytes:
    """The message's bytes in ``mode``; raises ``TextModeError`` naming what does not fit."""
    if mode == ANSI:
        for position, char in enumerate(text, start=1):
            try:
                char.encode("cp1252")
            except UnicodeEncodeError:
                raise TextModeError(
                    f"'{char}' (U+{ord(char):04X}, character {position}) has no ANSI "
                    "(Windows-1252) code: choose Unicode, or leave it out."
                ) from None
        data = text.encode("cp1252")
    elif mode == UNICODE:
        data = text.encode("utf-16-be")
    elif mode == RAW:
        digits = "".join(text.split())
        if len(digits) % 2:
            raise TextModeError("Raw text is hex bytes: an even number of hex digits (0-9, A-F).")
        try:
            data = bytes.fromhex(digits)
        except ValueError:
            bad = next(c for c in digits if c not in "0123456789abcdefABCDEF")
            raise TextModeError(
                f"Raw text is hex bytes (0-9, A-F); '{bad}' is not a hex digit."
            ) from None
    else:
        raise TextModeError(f"'{mode}' is not a text mode: {', '.join(TEXT_MODES)}.")
    if not data:
        raise TextModeError("The message is empty.")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise TextModeError(
            f"The message is {len(data)} bytes in {TEXT_MODES[mode]}; at most "
            f"{MAX_PAYLOAD_BYTES} fit."
        )
    return data


def text_of(mode: str, data: bytes) -> str:
    """What a device shows for a payload (the simulator's mailbox and screen)."""
    if mode == ANSI:
        return data.decode("cp1252", errors="replace")
    if mode == UNICODE:
        return data.decode("utf-16-be", errors="replace")
    return data.hex(" ").upper()


def _devices(parameters: dict, kind: str, *, leave_out: str = "") -> list[str]:
    return [
        d["ca_id"]
        for d in parameters.get("devices", [])
        if d["kind"] == kind and d["ca_id"] != leave_out
    ]


@dataclass(frozen=True)
class Call:
    """One HTTP call to the KMS: ``POST API_PREFIX + path`` with ``body`` as JSON."""

    path: str
    body: dict


def call_for(command: str, request_id: str, parameters: dict, created_at) -> Call:
    """The call that carries a request. ``created_at`` (the request's) dates entitlements, so
    a repeat sends exactly the same thing. Raises ``KeyError`` for an unknown command or a
    missing parameter."""
    p = parameters
    if command in (ADD_ENTITLEMENT, REMOVE_ENTITLEMENT):
        body = {
            "secureClientId": p["card_ca_id"],
            "productId": p["service_ca_id"],
            ("start" if command == ADD_ENTITLEMENT else "end"): created_at.isoformat(),
        }
    elif command == PAIR_SECURE_CLIENTS:
        body = {"smartcards": _devices(p, "smartcard"), "stbs": _devices(p, "stb")}
    elif command == ADD_TO_PAIRING:
        anchor = p["paired_card_ca_id"]
        body = {
            "pairedSecureClientId": anchor,
            "smartcards": _devices(p, "smartcard", leave_out=anchor),
            "stbs": _devices(p, "stb"),
        }
    elif command in (SEND_MAIL, SEND_SCREEN_MESSAGE):
        # No device: a broadcast to every secure client of the operator.
        body = {
            "secureClientId": p.get("device_ca_id"),
            "textMode": p["text_mode"],
            "payload": p["payload_hex"],
        }
    elif command == SET_PARENTAL_PIN:
        body = {"secureClientId": p["device_ca_id"], "pin": p["pin"]}
    elif command == REAUTHORIZE_SECTOR:
        body = {"secureClientId": p["device_ca_id"]}
    elif command == QUERY_SECURE_CLIENT:
        body = {"secureClientId": p["device_ca_id"], "sections": list(QUERY_SECTIONS)}
    else:
        raise KeyError(command)
    return Call(PATHS[command], {"requestId": request_id, **body})


def refusal_of(body: dict) -> tuple[str, str]:
    """(code, message) of a refusal's body; a body that does not say gets a code that does."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return INVALID_REQUEST, "The KMS refused the request without saying why."
    return str(error.get("code") or INVALID_REQUEST), str(error.get("message") or "")


def refusal_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}
