"""The state a simulated Conax Contego CAS keeps, and the rules it applies to each operation.

No HTTP and no XML here (that is ``simulator.py``): operations take plain values and either
change the state and return a result, or raise ``CasFault``. The simulator serialises every
call with one lock, so a state is always what some order of the requests made it.

What the CAS knows:

- **cards** (CA client ids) and **pairing modules** (STB CA IDs). A card is *known* once it has
  been paired (Create Pairing / Add to Existing Pairing) or registered up front (``--card`` on
  the command line, ``/control/register``). Entitlements, messages, fingerprints and PINs for a
  card the CAS does not know are refused with ``UNKNOWN_CA_CLIENT``, as a real CAS refuses a
  client id it was never given: the provisioning engine always pairs before it entitles.
- **entitlements** per card: product id → start and end date (end ``None``: open-ended).
  Cancel sets the end date; Get Active Subscriptions lists those running now.
- **pairings**: id → cards and modules. Creating a pairing takes its devices out of any other
  pairing (that is how *New* cancels a card's other pairing); a pairing left empty is removed.
- per card: **mailbox** (mail messages), **screen** (bark and repeating bark messages),
  **PIN** and **fingerprints** shown.
- **answered**: every request id with the answer it got. A request id seen before is answered
  as before — with ``Duplicate`` true — and not applied again. ``requests`` counts how many
  times each id arrived, ``received`` lists arrivals in order with the wall-clock time each
  came in (what the tests check order by, and the benchmark measures latency with).

With a state file, the state survives restarts (written in the background:
``providers.simulators.SavedState``). ``received`` is a log, not state: it is not written.
"""

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from providers.simulators import SAVE_EVERY as SAVE_EVERY  # how often the file is written
from providers.simulators import SavedState

DEFAULT_PIN = "1234"
MAIL_MAX = 141
BARK_MAX = 129


class CasFault(Exception):
    """A refusal, sent back as a SOAP Fault: ``code`` (detail/ErrorCode), ``message``
    (faultstring); ``sender`` is the SOAP 1.1 faultcode's local part (Client or Server)."""

    def __init__(self, code: str, message: str, *, sender: str = "Client"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.sender = sender


def now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class Controls:
    """How the simulator misbehaves, set through ``/control/...``."""

    down: bool = False
    slow_seconds: float = 0.0
    reject_share: float = 0.0
    reject_cards: frozenset[str] = frozenset()

    def as_dict(self) -> dict:
        return {
            "down": self.down,
            "slow_seconds": self.slow_seconds,
            "reject_share": self.reject_share,
            "reject_cards": sorted(self.reject_cards),
        }


class CasState(SavedState):
    """One CAS's state; every public method is called under ``lock``."""

    def __init__(self, known_cards=(), path: str | Path | None = None):
        super().__init__(path)
        self.controls = Controls()
        self.clear()
        for card in known_cards:
            self._card(card)
        self._open()

    def clear(self) -> None:
        self.cards: dict[str, dict] = {}
        self.modules: set[str] = set()
        self.pairings: dict[str, dict] = {}
        self.next_pairing = 1
        self.answered: dict[str, dict] = {}
        self.requests: dict[str, int] = {}
        self.received: list[dict] = []
        self.duplicates = 0

    # --- persistence (optional: the demo's simulator keeps its state across restarts) -------

    def _persisted(self) -> dict:
        return {
            "cards": self.cards,
            "modules": sorted(self.modules),
            "pairings": self.pairings,
            "next_pairing": self.next_pairing,
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
        self.cards = data.get("cards", {})
        self.modules = set(data.get("modules", []))
        self.pairings = data.get("pairings", {})
        self.next_pairing = data.get("next_pairing", 1)
        self.answered = data.get("answered", {})
        self.requests = data.get("requests", {})
        self.duplicates = data.get("duplicates", 0)

    # --- requests: dedupe, misbehaviour, dispatch -------------------------------------------

    def handle(
        self,
        request_id: str,
        operation: str,
        cards: list[str],
        apply,
        *,
        query: bool = False,
        received_at: float | None = None,
    ) -> dict:
        """Answer one request: a repeat of a known id gets the first answer (``duplicate``),
        else the controls may reject it, else ``apply()`` runs. Raises ``CasFault``. A
        ``query`` changes nothing, so it is answered afresh each time and not remembered.
        ``received_at`` (``time.time()`` when it came in) is logged in ``received``."""
        self.requests[request_id] = self.requests.get(request_id, 0) + 1
        first = None if query else self.answered.get(request_id)
        self.received.append(
            {
                "request_id": request_id,
                "received_at": received_at if received_at is not None else time.time(),
                "operation": operation,
                "cards": cards,
                "duplicate": bool(first),
            }
        )
        if first is not None:
            self.duplicates += 1
            if first["operation"] != operation:
                raise CasFault(
                    "DUPLICATE_REQUEST_ID",
                    f"Request id {request_id} was already used for {first['operation']}.",
                )
            if first.get("fault"):
                raise CasFault(**first["fault"])
            return {**first["result"], "duplicate": True}
        try:
            self._misbehave(request_id, cards)
            result = apply()
            if query:
                return {**result, "duplicate": False}
        except CasFault as fault:
            if query:
                raise
            self.answered[request_id] = {
                "operation": operation,
                "fault": {"code": fault.code, "message": fault.message, "sender": fault.sender},
            }
            self.mark_changed()
            raise
        self.answered[request_id] = {"operation": operation, "result": result}
        self.mark_changed()
        return {**result, "duplicate": False}

    def _misbehave(self, request_id: str, cards: list[str]) -> None:
        blocked = sorted(set(cards) & self.controls.reject_cards)
        if blocked:
            raise CasFault("CA_CLIENT_BLOCKED", f"CA client {', '.join(blocked)} is blocked.")
        share = self.controls.reject_share
        if share:
            # From the request id, so the same request always gets the same answer.
            draw = int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if draw < share:
                raise CasFault(
                    "REQUEST_REJECTED",
                    f"The CAS rejected the request (simulated rejection of {share:.0%}).",
                )

    # --- devices ----------------------------------------------------------------------------

    def _card(self, card_id: str) -> dict:
        return self.cards.setdefault(
            card_id,
            {
                "entitlements": {},
                "mailbox": [],
                "screen": [],
                "pin": DEFAULT_PIN,
                "fingerprints": [],
            },
        )

    def known(self, card_id: str) -> dict:
        card = self.cards.get(card_id)
        if card is None:
            raise CasFault("UNKNOWN_CA_CLIENT", f"CA client {card_id} is unknown to the CAS.")
        return card

    def register(self, cards) -> None:
        for card in cards:
            self._card(card)
        self.mark_changed()

    def _pairing_of(self, device: str, kind: str) -> str | None:
        for pairing_id, pairing in self.pairings.items():
            if device in pairing[kind]:
                return pairing_id
        return None

    def _detach(self, cards, modules) -> None:
        for pairing in self.pairings.values():
            pairing["cards"] = [c for c in pairing["cards"] if c not in cards]
            pairing["modules"] = [m for m in pairing["modules"] if m not in modules]
        self.pairings = {k: p for k, p in self.pairings.items() if p["cards"] or p["modules"]}

    def _status(self, pairing_id: str | None) -> dict:
        if pairing_id is None:
            return {"pairing_id": None, "cards": [], "modules": []}
        pairing = self.pairings[pairing_id]
        return {"pairing_id": pairing_id, "cards": pairing["cards"], "modules": pairing["modules"]}

    # --- operations -------------------------------------------------------------------------

    def create_pairing(self, cards: list[str], modules: list[str]) -> dict:
        if not cards:
            raise CasFault("MALFORMED_REQUEST", "A pairing needs at least one CA client id.")
        self._detach(cards, modules)
        pairing_id = f"P{self.next_pairing:06d}"
        self.next_pairing += 1
        self.pairings[pairing_id] = {"cards": list(cards), "modules": list(modules)}
        for card in cards:
            self._card(card)
        self.modules.update(modules)
        return self._status(pairing_id)

    def add_to_pairing(self, paired_card: str, cards: list[str], modules: list[str]) -> dict:
        self.known(paired_card)
        pairing_id = self._pairing_of(paired_card, "cards")
        if pairing_id is None:
            raise CasFault("NOT_PAIRED", f"CA client {paired_card} is in no pairing.")
        if not cards and not modules:
            raise CasFault("MALFORMED_REQUEST", "Name a CA client or a pairing module to add.")
        self._detach([c for c in cards if c != paired_card], modules)
        pairing = self.pairings[pairing_id]
        pairing["cards"] += [c for c in cards if c not in pairing["cards"]]
        pairing["modules"] += [m for m in modules if m not in pairing["modules"]]
        for card in cards:
            self._card(card)
        self.modules.update(modules)
        return self._status(pairing_id)

    def add_subscriptions(self, cards, products, start: datetime | None, end: datetime | None):
        found = [self.known(c) for c in cards]
        for card in found:
            for product in products:
                card["entitlements"][product] = {"start": _iso(start or now()), "end": _iso(end)}
        return {}

    def cancel_subscriptions(self, cards, products, end: datetime | None) -> dict:
        found = [self.known(c) for c in cards]
        for card in found:
            for product in products:
                held = card["entitlements"].get(product)
                if held is not None:
                    held["end"] = _iso(end or now())
        return {}

    def active_subscriptions(self, card_id: str, at: datetime | None = None) -> list[dict]:
        at = at or now()
        card = self.known(card_id)
        active = []
        for product, held in sorted(card["entitlements"].items()):
            start, end = _parse(held["start"]), _parse(held["end"])
            if start <= at and (end is None or end > at):
                active.append({"product_id": product, **held})
        return active

    def pairing_for_card(self, card_id: str) -> dict:
        self.known(card_id)
        return self._status(self._pairing_of(card_id, "cards"))

    def pairing_for_module(self, module_id: str) -> dict:
        if module_id not in self.modules:
            raise CasFault("UNKNOWN_PAIRING_MODULE", f"Pairing module {module_id} is unknown.")
        return self._status(self._pairing_of(module_id, "modules"))

    def message(self, request_id: str, cards, box: str, message: dict) -> dict:
        limit = MAIL_MAX if box == "mailbox" else BARK_MAX
        if not 1 <= len(message["text"]) <= limit:
            raise CasFault(
                "INVALID_MESSAGE",
                f"The message has {len(message['text'])} characters; at most {limit} fit.",
            )
        interval = message.get("repetition_interval")
        if interval is not None and (not 10 <= interval <= 2550 or interval % 10):
            raise CasFault(
                "INVALID_REPETITION_INTERVAL",
                f"Repetition interval {interval} s: give 10 to 2550 in steps of 10.",
            )
        found = [self.known(c) for c in cards]
        for card in found:
            card[box].append({"request_id": request_id, **message})
        return {}

    def fingerprint(self, request_id: str, cards, shown: dict) -> dict:
        if shown["slot"] not in ("A", "B"):
            raise CasFault("MALFORMED_REQUEST", f"Fingerprint slot {shown['slot']!r}: A or B.")
        found = [self.known(c) for c in cards]
        for card in found:
            card["fingerprints"].append({"request_id": request_id, **shown})
        return {}

    def set_pin(self, cards, pin: str = DEFAULT_PIN) -> dict:
        if not re.fullmatch(r"[0-9]{4}", pin or ""):
            raise CasFault("INVALID_PIN", "A CA PIN is 4 digits.")
        found = [self.known(c) for c in cards]
        for card in found:
            card["pin"] = pin
        return {}
