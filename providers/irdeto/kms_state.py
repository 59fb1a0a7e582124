"""The state a simulated Irdeto KMS keeps, and the rules it applies to each call of
``protocol.py``.

No HTTP here (that is ``simulator.py``): ``KmsState.handle(command, body)`` takes a call's JSON
body and either changes the state and returns the answer's body, or raises ``KmsRefusal`` with
a protocol error code. The simulator serialises every call with one lock, so a state is always
what some order of the requests made it.

What the KMS knows:

- **secure clients** (smartcards and set-top boxes, by CA ID), known once paired (Pair secure
  clients / Add to pairing) or registered up front (``--device``, ``/control/register``). A
  call naming one the KMS does not know is refused (``UNKNOWN_SECURE_CLIENT``): the
  provisioning engine always pairs before it entitles. Each has entitlements (product id →
  start, end), a parental PIN, a sector (authorized, how many re-authorizations and the
  last), a mailbox (Send mail) and a screen (Send screen message).
- **pairings**: id → smartcards and set-top boxes; pairing takes the devices out of any other
  pairing, and a pairing left empty is removed.
- **broadcasts**: messages sent to every secure client (no ``secureClientId``).
- **answered**: every request id with the answer it got. A request id seen before is answered
  as before — with ``duplicate`` true — and not applied again; queries change nothing and are
  answered afresh. ``requests`` counts how many times each id arrived, ``received`` lists the
  arrivals in order with the wall-clock time each came in (what the benchmark measures).

Removing an entitlement the device never held is refused (``NOT_ENTITLED``); removing one
already ended changes nothing and is done, so a reset that sends it again does no harm.
"""

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

from providers.simulators import SavedState

from . import protocol

DEFAULT_PIN = "0000"
SMARTCARD, STB = "smartcard", "stb"
# The HTTP status each refusal is answered with (all of them in protocol.REFUSED).
STATUS = {
    protocol.INVALID_REQUEST: HTTPStatus.BAD_REQUEST,
    protocol.UNKNOWN_SECURE_CLIENT: HTTPStatus.NOT_FOUND,
    protocol.NOT_ENTITLED: HTTPStatus.CONFLICT,
    protocol.REFUSED_BY_KMS: HTTPStatus.CONFLICT,
    protocol.INVALID_PIN: HTTPStatus.UNPROCESSABLE_ENTITY,
    protocol.PAYLOAD_TOO_LONG: HTTPStatus.UNPROCESSABLE_ENTITY,
}
COMMANDS = {path: command for command, path in protocol.PATHS.items()}


class KmsRefusal(Exception):
    """A refusal: ``code`` (a protocol error code) and ``message``, answered with
    ``STATUS[code]``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return int(STATUS.get(self.code, HTTPStatus.BAD_REQUEST))


def now() -> str:
    return datetime.now(UTC).isoformat()


def _moment(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise KmsRefusal(protocol.INVALID_REQUEST, f"{name} is missing: a date and time.")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise KmsRefusal(
            protocol.INVALID_REQUEST, f"{name} is not a date and time: {value!r}."
        ) from None


def _text(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise KmsRefusal(protocol.INVALID_REQUEST, f"{name} is missing.")
    return value


def _ids(body: dict, name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise KmsRefusal(protocol.INVALID_REQUEST, f"{name} must be a list of secure client ids.")
    return value


def _digest(value: str) -> int:
    return int(hashlib.sha256(value.encode()).hexdigest()[:8], 16)


@dataclass
class Controls:
    """How the simulator misbehaves, set through ``/control/...``."""

    down: bool = False
    slow_seconds: float = 0.0
    reject_share: float = 0.0
    reject_devices: frozenset[str] = frozenset()

    def as_dict(self) -> dict:
        return {
            "down": self.down,
            "slow_seconds": self.slow_seconds,
            "reject_share": self.reject_share,
            "reject_devices": sorted(self.reject_devices),
        }


class KmsState(SavedState):
    """One KMS's state; every public method is called under ``lock``."""

    def __init__(self, known_devices=(), path: str | Path | None = None):
        super().__init__(path)
        self.controls = Controls()
        self.clear()
        self.register(known_devices)
        self._open()

    def clear(self) -> None:
        self.clients: dict[str, dict] = {}
        self.pairings: dict[str, dict] = {}
        self.next_pairing = 1
        self.broadcasts: dict[str, list] = {"mailbox": [], "screen": []}
        self.answered: dict[str, dict] = {}
        self.requests: dict[str, int] = {}
        self.received: list[dict] = []
        self.duplicates = 0

    # --- persistence (optional: the demo's simulator keeps its state across restarts) -------

    def _persisted(self) -> dict:
        return {
            "clients": self.clients,
            "pairings": self.pairings,
            "next_pairing": self.next_pairing,
            "broadcasts": self.broadcasts,
            "answered": self.answered,
            "requests": self.requests,
            "duplicates": self.duplicates,
        }

    def snapshot(self) -> dict:
        """Everything, for ``/control/state``."""
        return {
            **self._persisted(),
            "received": self.received,
            "controls": self.controls.as_dict(),
            "state_file": {"path": str(self.path) if self.path else None, "writes": self.writes},
        }

    def _load(self, data: dict) -> None:
        self.clients = data.get("clients", {})
        self.pairings = data.get("pairings", {})
        self.next_pairing = data.get("next_pairing", 1)
        self.broadcasts = data.get("broadcasts", {"mailbox": [], "screen": []})
        self.answered = data.get("answered", {})
        self.requests = data.get("requests", {})
        self.duplicates = data.get("duplicates", 0)

    # --- requests: dedupe, misbehaviour, dispatch -------------------------------------------

    def handle(self, path: str, body, received_at: float | None = None) -> tuple[int, dict]:
        """(HTTP status, answer body) for one call to ``protocol.API_PREFIX + path``."""
        if not isinstance(body, dict):
            return self._refused(KmsRefusal(protocol.INVALID_REQUEST, "The body is no object."))
        request_id = body.get("requestId")
        if not isinstance(request_id, str) or not request_id:
            return self._refused(KmsRefusal(protocol.INVALID_REQUEST, "requestId is missing."))
        command = COMMANDS[path]
        query = command == protocol.QUERY_SECURE_CLIENT
        self.requests[request_id] = self.requests.get(request_id, 0) + 1
        first = None if query else self.answered.get(request_id)
        self.received.append(
            {
                "request_id": request_id,
                "received_at": received_at if received_at is not None else time.time(),
                "command": command,
                "devices": self._devices_of(body),
                "duplicate": bool(first),
            }
        )
        if first is not None:
            self.duplicates += 1
            if first["command"] != command:
                return self._refused(
                    KmsRefusal(
                        protocol.INVALID_REQUEST,
                        f"requestId {request_id} was already used for {first['command']}.",
                    )
                )
            return first["status"], {**first["body"], "duplicate": True}
        try:
            self._misbehave(request_id, body)
            result = getattr(self, command.lower())(request_id, body)
            status, answer = HTTPStatus.OK, {"requestId": request_id, **result}
        except KmsRefusal as refusal:
            status, answer = self._refused(refusal)
        if not query:
            self.answered[request_id] = {"command": command, "status": status, "body": answer}
            self.mark_changed()
        return status, {**answer, "duplicate": False}

    @staticmethod
    def _refused(refusal: KmsRefusal) -> tuple[int, dict]:
        return refusal.status, protocol.refusal_body(refusal.code, refusal.message)

    @staticmethod
    def _devices_of(body: dict) -> list[str]:
        found = []
        for name in ("secureClientId", "pairedSecureClientId"):
            if isinstance(body.get(name), str):
                found.append(body[name])
        for name in ("smartcards", "stbs"):
            if isinstance(body.get(name), list):
                found += [d for d in body[name] if isinstance(d, str)]
        return found

    def _misbehave(self, request_id: str, body: dict) -> None:
        blocked = sorted(set(self._devices_of(body)) & self.controls.reject_devices)
        if blocked:
            raise KmsRefusal(
                protocol.REFUSED_BY_KMS, f"Secure client {', '.join(blocked)} is blocked."
            )
        share = self.controls.reject_share
        # From the request id, so the same request always gets the same answer.
        if share and _digest(request_id) / 0xFFFFFFFF < share:
            raise KmsRefusal(
                protocol.REFUSED_BY_KMS,
                f"The KMS refused the request (simulated refusal of {share:.0%}).",
            )

    # --- secure clients ---------------------------------------------------------------------

    def _client(self, device: str, kind: str = SMARTCARD) -> dict:
        return self.clients.setdefault(
            device,
            {
                "kind": kind,
                "registered_at": now(),
                "entitlements": {},
                "pin": DEFAULT_PIN,
                "sector": {"authorized": True, "reauthorizations": 0, "reauthorizedAt": None},
                "mailbox": [],
                "screen": [],
            },
        )

    def register(self, devices, kind: str = SMARTCARD) -> None:
        for device in devices:
            self._client(device, kind)
        self.mark_changed()

    def known(self, body: dict, name: str = "secureClientId") -> dict:
        device = _text(body, name)
        found = self.clients.get(device)
        if found is None:
            raise KmsRefusal(
                protocol.UNKNOWN_SECURE_CLIENT, f"Secure client {device} is unknown to the KMS."
            )
        return found

    def active(self, device: str, at: str | None = None) -> list[str]:
        """Product ids entitled on ``device`` now."""
        at = datetime.fromisoformat(at or now())
        held = self.clients.get(device, {}).get("entitlements", {})
        return sorted(
            product
            for product, e in held.items()
            if datetime.fromisoformat(e["start"]) <= at
            and (e["end"] is None or datetime.fromisoformat(e["end"]) > at)
        )

    def pairing_of(self, device: str) -> str | None:
        for pairing_id, pairing in self.pairings.items():
            if device in pairing["smartcards"] or device in pairing["stbs"]:
                return pairing_id
        return None

    def _detach(self, devices) -> None:
        for pairing in self.pairings.values():
            pairing["smartcards"] = [d for d in pairing["smartcards"] if d not in devices]
            pairing["stbs"] = [d for d in pairing["stbs"] if d not in devices]
        self.pairings = {k: p for k, p in self.pairings.items() if p["smartcards"] or p["stbs"]}

    def _pairing(self, pairing_id: str) -> dict:
        pairing = self.pairings[pairing_id]
        return {
            "pairingId": pairing_id,
            "smartcards": pairing["smartcards"],
            "stbs": pairing["stbs"],
        }

    # --- the calls (one method per protocol command, named after it) ------------------------

    def add_entitlement(self, request_id: str, body: dict) -> dict:
        client = self.known(body)
        product, start = _text(body, "productId"), _moment(body, "start")
        client["entitlements"][product] = {"start": start, "end": None}
        return {"secureClientId": body["secureClientId"], "productId": product}

    def remove_entitlement(self, request_id: str, body: dict) -> dict:
        client = self.known(body)
        product, end = _text(body, "productId"), _moment(body, "end")
        held = client["entitlements"].get(product)
        if held is None:
            raise KmsRefusal(
                protocol.NOT_ENTITLED,
                f"Secure client {body['secureClientId']} holds no entitlement to {product}.",
            )
        if held["end"] is None:
            held["end"] = max(end, held["start"], key=datetime.fromisoformat)
        return {"secureClientId": body["secureClientId"], "productId": product}

    def pair_secure_clients(self, request_id: str, body: dict) -> dict:
        smartcards, stbs = _ids(body, "smartcards"), _ids(body, "stbs")
        if not smartcards and not stbs:
            raise KmsRefusal(protocol.INVALID_REQUEST, "smartcards and stbs are both empty.")
        self._detach(smartcards + stbs)
        pairing_id = f"P{self.next_pairing:06d}"
        self.next_pairing += 1
        self.pairings[pairing_id] = {"smartcards": list(smartcards), "stbs": list(stbs)}
        for device in smartcards:
            self._client(device, SMARTCARD)
        for device in stbs:
            self._client(device, STB)
        return self._pairing(pairing_id)

    def add_to_pairing(self, request_id: str, body: dict) -> dict:
        self.known(body, "pairedSecureClientId")
        anchor = body["pairedSecureClientId"]
        smartcards, stbs = _ids(body, "smartcards"), _ids(body, "stbs")
        pairing_id = self.pairing_of(anchor)
        if pairing_id is None:
            raise KmsRefusal(
                protocol.INVALID_REQUEST,
                f"pairedSecureClientId: secure client {anchor} is in no pairing.",
            )
        if not smartcards and not stbs:
            raise KmsRefusal(protocol.INVALID_REQUEST, "smartcards and stbs are both empty.")
        self._detach([d for d in smartcards + stbs if d != anchor])
        pairing = self.pairings[pairing_id]
        pairing["smartcards"] += [d for d in smartcards if d not in pairing["smartcards"]]
        pairing["stbs"] += [d for d in stbs if d not in pairing["stbs"]]
        for device in smartcards:
            self._client(device, SMARTCARD)
        for device in stbs:
            self._client(device, STB)
        return self._pairing(pairing_id)

    def _message(self, request_id: str, body: dict, box: str) -> dict:
        device = body.get("secureClientId")
        client = self.known(body) if device is not None else None
        mode = body.get("textMode")
        if mode not in protocol.TEXT_MODES:
            raise KmsRefusal(
                protocol.INVALID_REQUEST,
                f"textMode {mode!r} is not one of {', '.join(protocol.TEXT_MODES)}.",
            )
        try:
            data = bytes.fromhex(_text(body, "payload"))
        except ValueError:
            raise KmsRefusal(protocol.INVALID_REQUEST, "payload is not hex digits.") from None
        if len(data) > protocol.MAX_PAYLOAD_BYTES:
            raise KmsRefusal(
                protocol.PAYLOAD_TOO_LONG,
                f"The payload is {len(data)} bytes; at most {protocol.MAX_PAYLOAD_BYTES} fit.",
            )
        shown = {
            "request_id": request_id,
            "text_mode": mode,
            "text": protocol.text_of(mode, data),
            "bytes": len(data),
            "at": now(),
        }
        (client[box] if client is not None else self.broadcasts[box]).append(shown)
        return {"secureClientId": device, "broadcast": device is None}

    def send_mail(self, request_id: str, body: dict) -> dict:
        return self._message(request_id, body, "mailbox")

    def send_screen_message(self, request_id: str, body: dict) -> dict:
        return self._message(request_id, body, "screen")

    def set_parental_pin(self, request_id: str, body: dict) -> dict:
        client = self.known(body)
        pin = body.get("pin")
        if not isinstance(pin, str) or not re.fullmatch(r"[0-9]{4}", pin):
            raise KmsRefusal(protocol.INVALID_PIN, "A parental PIN is 4 digits.")
        client["pin"] = pin
        return {"secureClientId": body["secureClientId"]}  # never the PIN back

    def reauthorize_sector(self, request_id: str, body: dict) -> dict:
        sector = self.known(body)["sector"]
        sector.update(
            authorized=True,
            reauthorizations=sector["reauthorizations"] + 1,
            reauthorizedAt=now(),
        )
        return {"secureClientId": body["secureClientId"], "sector": dict(sector)}

    def query_secure_client(self, request_id: str, body: dict) -> dict:
        client = self.known(body)
        device = body["secureClientId"]
        sections = body.get("sections", list(protocol.QUERY_SECTIONS))
        unknown = (
            [s for s in sections if s not in protocol.QUERY_SECTIONS]
            if isinstance(sections, list)
            else [sections]
        )
        if unknown:
            raise KmsRefusal(
                protocol.INVALID_REQUEST,
                f"sections: {', '.join(map(str, unknown))} is not a section; give some of "
                f"{', '.join(protocol.QUERY_SECTIONS)}.",
            )
        answer = self._sections(device, client)
        return {"secureClientId": device, "sections": {s: answer[s] for s in sections}}

    def _sections(self, device: str, client: dict) -> dict:
        """Every section of Query secure client: made up, but derived from the state, so the
        same device always answers the same way."""
        n = _digest(device)
        pairing_id = self.pairing_of(device)
        pairing = self._pairing(pairing_id) if pairing_id else None
        members = (pairing["smartcards"] + pairing["stbs"]) if pairing else [device]
        anchor = pairing["smartcards"][0] if pairing and pairing["smartcards"] else None
        is_stb = client["kind"] == STB
        active = set(self.active(device))
        return {
            "basic": {
                "secureClientId": device,
                "kind": client["kind"],
                "registeredAt": client["registered_at"],
                "status": "ACTIVE",
            },
            "pairing": pairing or {"pairingId": None, "smartcards": [], "stbs": []},
            "entitlements": [
                {"productId": product, **e, "active": product in active}
                for product, e in sorted(client["entitlements"].items())
            ],
            "security": {
                "chipset": f"IRD-{'STB' if is_stb else 'SC'}-{n % 900 + 100}",
                "firmware": f"{5 + n % 3}.{n % 10}.{n % 7}",
                "secureCore": "Cloakware" if is_stb else "Smartcard",
                "parentalPinSet": client["pin"] != DEFAULT_PIN,
            },
            "anchoring": {"anchored": anchor is not None, "anchorSecureClientId": anchor},
            "tms_attributes": [
                {"name": "region", "value": f"R{n % 12 + 1:02d}"},
                {"name": "language", "value": ("ENG", "GRE", "TUR")[n % 3]},
            ],
            "sector": {"sectorId": n % 16, **client["sector"]},
            "pvr": {"enabled": is_stb, "storageGb": 500 if is_stb else 0},
            "device_domain": {
                "domainId": f"D-{pairing_id}" if pairing_id else None,
                "members": members,
                "limit": 4,
            },
        }
