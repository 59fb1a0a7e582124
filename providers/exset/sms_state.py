"""The subscriber state a simulated EXSET SMS keeps, and the rules it applies to each TQUEUE entry.

No database and no HTTP here (that is ``simulator.py``): ``SmsState.handle(entry)`` takes one
entry as a dict of its columns and answers ``Outcome("Done")`` or ``Outcome("Error", code,
text)``, having changed the state or not. The simulator calls it under ``lock``.

What the SMS holds:

- **cards** by CA ID: the subscription, the entitlements by service CA ID (who authorized them
  and when, renewals), the paired decoder, individual infocas messages, fingerprints shown,
  recalls. ADD_SUBSCRIPTION and PAIR register a card; every other command naming a card the
  SMS does not know is refused (``UNKNOWN_CARD``), as Conax's CAS refuses an unknown client.
  Removing an entitlement the card does not hold changes nothing and is Done, as both Conax
  simulators do. CHANGE_DEVICE moves the whole record of the replaced card to the new one.
- **broadcasts**, apart from the cards: infocas messages and fingerprints to all subscribers
  (or to the holders of one service).
- **received**: how many times each entry_id arrived, and **answered**: the outcome each got.
  An entry arriving again (set back to 'New') gets its first answer and is not applied again.

Misbehaving on purpose (``controls``): reject a share of entries (chosen by entry_id, so an
entry is always answered the same way) or every entry naming given cards; ``down`` and
``slow_seconds`` are the simulator's loop's to obey.
"""

import json
import os
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from providers.simulators import Controls

DONE = "Done"
ERROR = "Error"
PAIR, UNPAIR = "PAIR", "UNPAIR"


@dataclass(frozen=True)
class Outcome:
    status: str  # DONE or ERROR
    error_code: str | None = None
    error_text: str | None = None


class SmsError(Exception):
    """A refusal: the entry ends 'Error' with this code and text."""

    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(params: dict, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SmsError("INVALID_PARAMETERS", f"Parameter {key!r} is missing or empty.")
    return value


def _minutes(params: dict, key: str) -> int:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SmsError("INVALID_PARAMETERS", f"Parameter {key!r} must be a whole number >= 1.")
    return value


def _fingerprint(params: dict) -> dict:
    value = params.get("fingerprint")
    if not isinstance(value, dict) or not value:
        raise SmsError("INVALID_PARAMETERS", "Parameter 'fingerprint' must be a JSON object.")
    return value


class SmsState:
    """One SMS's state; every public method is called under ``lock``."""

    def __init__(self, path: str | Path | None = None):
        self.lock = threading.RLock()
        self.path = Path(path) if path else None
        self.controls = Controls("cards")
        self.reset()
        if self.path and self.path.exists():
            self._load(json.loads(self.path.read_text()))

    def reset(self) -> None:
        """Forget every card, broadcast and entry (the controls stay)."""
        self.cards: dict[str, dict] = {}
        self.broadcasts: dict[str, list] = {"infocas": [], "fingerprints": []}
        self.received: Counter[str] = Counter()
        self.answered: dict[str, dict] = {}

    # --- persistence (the demo's simulator keeps its state across restarts) ----------------

    def _persisted(self) -> dict:
        return {
            "cards": self.cards,
            "broadcasts": self.broadcasts,
            "received": self.received,
            "answered": self.answered,
        }

    def _load(self, data: dict) -> None:
        self.cards = data["cards"]
        self.broadcasts = data["broadcasts"]
        self.received = Counter(data["received"])
        self.answered = data["answered"]

    def save(self) -> None:
        """Write the state file, if any (after each entry: a demo's state is small)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._persisted()))
        os.replace(temporary, self.path)

    def counts(self) -> dict:
        cards = self.cards.values()
        outcomes = Counter(a["status"] for a in self.answered.values())
        return {
            "cards": len(self.cards),
            "entitlements": sum(len(c["entitlements"]) for c in cards),
            "paired": sum(1 for c in cards if c["decoder"]),
            "infocas": sum(len(c["infocas"]) for c in cards),
            "fingerprints": sum(len(c["fingerprints"]) for c in cards),
            "recalls": sum(len(c["recalls"]) for c in cards),
            "broadcast_infocas": len(self.broadcasts["infocas"]),
            "broadcast_fingerprints": len(self.broadcasts["fingerprints"]),
            "entries": len(self.received),
            "arrivals": sum(self.received.values()),
            "repeated": sum(1 for n in self.received.values() if n > 1),
            "done": outcomes[DONE],
            "error": outcomes[ERROR],
        }

    def snapshot(self, card: str | None = None) -> dict:
        """What ``/control/state`` shows: everything, or one card (``card``)."""
        if card is not None:
            return {"card": card, "state": self.cards.get(card), "counts": self.counts()}
        return {
            "cards": self.cards,
            "broadcasts": self.broadcasts,
            "counts": self.counts(),
            "received": self.received,
            "answered": self.answered,
            "controls": self.controls.as_dict(),
        }

    # --- entries ------------------------------------------------------------------------------

    def handle(self, entry: dict, *, resumed: bool = False) -> Outcome:
        """Apply one entry (its columns by name) and answer it. An entry_id answered before is
        answered the same way, not applied again; ``resumed``: an entry this SMS had taken
        before a restart (already counted if it had been applied)."""
        entry_id = entry["entry_id"]
        first = self.answered.get(entry_id)
        if first is not None:
            if not resumed:
                self.received[entry_id] += 1
            return Outcome(**first)
        self.received[entry_id] += 1
        try:
            params = self._parameters(entry)
            self._misbehave(entry_id, self._cards_named(entry, params))
            apply = COMMANDS.get(entry["command"])
            if apply is None:
                raise SmsError("UNKNOWN_COMMAND", f"Unknown command {entry['command']!r}.")
            apply(self, entry, params)
            outcome = Outcome(DONE)
        except SmsError as refusal:
            outcome = Outcome(ERROR, refusal.code, refusal.text)
        self.answered[entry_id] = asdict(outcome)
        return outcome

    @staticmethod
    def _parameters(entry: dict) -> dict:
        try:
            params = json.loads(entry["parameters"] or "")
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise SmsError("INVALID_PARAMETERS", "The entry's parameters are not a JSON object.")
        return params

    @staticmethod
    def _cards_named(entry: dict, params: dict) -> set[str]:
        named = {entry.get("card_ca_id")}
        named |= {params.get(k) for k in ("card_ca_id", "replaced_ca_id", "new_ca_id")}
        return {c for c in named if isinstance(c, str) and c}

    def _misbehave(self, entry_id: str, cards: set[str]) -> None:
        blocked = self.controls.blocked(cards)
        if blocked:
            raise SmsError("CARD_BLOCKED", f"Card {', '.join(blocked)} is blocked in the SMS.")
        # From the entry id, so the same entry always gets the same answer.
        if self.controls.refuses_share(entry_id):
            share = self.controls.reject_share
            raise SmsError(
                "REJECTED", f"The SMS rejected the entry (simulated rejection of {share:.0%})."
            )

    # --- cards ----------------------------------------------------------------------------

    @staticmethod
    def _card_id(entry: dict, params: dict) -> str:
        """The card addressed: in the parameters, else the entry's card_ca_id column."""
        return _text(
            {"card_ca_id": params.get("card_ca_id") or entry.get("card_ca_id")}, "card_ca_id"
        )

    def _register(self, card_id: str, entry: dict, params: dict) -> dict:
        card = self.cards.setdefault(
            card_id,
            {
                "subscription": None,
                "entitlements": {},
                "decoder": None,
                "infocas": [],
                "fingerprints": [],
                "recalls": [],
            },
        )
        card["subscription"] = entry.get("subscription") or params.get("subscription")
        return card

    def _known(self, card_id: str) -> dict:
        card = self.cards.get(card_id)
        if card is None:
            raise SmsError("UNKNOWN_CARD", f"Card {card_id} is unknown to the SMS.")
        return card

    # --- commands -------------------------------------------------------------------------

    def add_subscription(self, entry: dict, params: dict) -> None:
        service = _text(params, "service_ca_id")
        card = self._register(self._card_id(entry, params), entry, params)
        card["entitlements"][service] = {
            "distributor": params.get("distributor"),
            "authorized_at": _now(),
            "renewed_at": None,
            "entry_id": entry["entry_id"],
        }

    def remove_subscription(self, entry: dict, params: dict) -> None:
        service = _text(params, "service_ca_id")
        card = self._known(self._card_id(entry, params))
        card["entitlements"].pop(service, None)

    def renew_subscription(self, entry: dict, params: dict) -> None:
        service = _text(params, "service_ca_id")
        card = self._known(self._card_id(entry, params))
        held = card["entitlements"].setdefault(
            service, {"distributor": params.get("distributor"), "authorized_at": _now()}
        )
        held.update(renewed_at=_now(), entry_id=entry["entry_id"])

    def change_device(self, entry: dict, params: dict) -> None:
        replaced, new = _text(params, "replaced_ca_id"), _text(params, "new_ca_id")
        if replaced == new:
            raise SmsError("INVALID_PARAMETERS", f"Card {new} cannot replace itself.")
        card = self._known(replaced)
        taken = self.cards.get(new)
        if taken and taken["entitlements"] and taken["subscription"] != card["subscription"]:
            raise SmsError(
                "CARD_IN_USE",
                f"Card {new} holds services of subscription {taken['subscription']}.",
            )
        self.cards[new] = {**self.cards.pop(replaced), "replaced_ca_id": replaced}

    def pair_unpair(self, entry: dict, params: dict) -> None:
        action = params.get("action")
        if action == PAIR:
            card_id, decoder = self._card_id(entry, params), _text(params, "decoder_ca_id")
            for other in self.cards.values():  # a decoder is paired with one card at a time
                if other["decoder"] == decoder:
                    other["decoder"] = None
            self._register(card_id, entry, params)["decoder"] = decoder
        elif action == UNPAIR:
            card_id = params.get("card_ca_id") or entry.get("card_ca_id")
            if card_id:
                card = self._known(card_id)
            else:
                decoder = _text(params, "decoder_ca_id")
                card = next((c for c in self.cards.values() if c["decoder"] == decoder), None)
                if card is None:
                    raise SmsError("NOT_PAIRED", f"Decoder {decoder} is paired with no card.")
            if not card["decoder"]:
                raise SmsError("NOT_PAIRED", f"Card {card_id} is paired with no decoder.")
            card["decoder"] = None
        else:
            raise SmsError("INVALID_PARAMETERS", f"Action {action!r}: give PAIR or UNPAIR.")

    def broadcast_infocas(self, entry: dict, params: dict) -> None:
        self.broadcasts["infocas"].append(self._infocas(entry, params))

    def individual_infocas(self, entry: dict, params: dict) -> None:
        message = self._infocas(entry, params)
        self._known(self._card_id(entry, params))["infocas"].append(message)

    @staticmethod
    def _infocas(entry: dict, params: dict) -> dict:
        return {
            "entry_id": entry["entry_id"],
            "message": _text(params, "message"),
            "duration_minutes": _minutes(params, "duration_minutes"),
            "interval_minutes": _minutes(params, "interval_minutes"),
            "communication": params.get("communication"),
            "at": _now(),
        }

    def broadcast_fingerprint(self, entry: dict, params: dict) -> None:
        shown = self._shown(entry, params)
        service = shown["service_ca_id"]
        # To the holders of one service when one is given (as they hold it now).
        shown["cards"] = sorted(
            card_id
            for card_id, card in self.cards.items()
            if service is None or service in card["entitlements"]
        )
        self.broadcasts["fingerprints"].append(shown)

    def individual_fingerprint(self, entry: dict, params: dict) -> None:
        shown = self._shown(entry, params)
        self._known(self._card_id(entry, params))["fingerprints"].append(shown)

    @staticmethod
    def _shown(entry: dict, params: dict) -> dict:
        return {
            "entry_id": entry["entry_id"],
            "fingerprint": _fingerprint(params),
            "service_ca_id": params.get("service_ca_id") or None,
            "communication": params.get("communication"),
            "at": _now(),
        }

    def recall(self, entry: dict, params: dict) -> None:
        card = self._known(self._card_id(entry, params))
        services = params.get("service_ca_ids")
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise SmsError("INVALID_PARAMETERS", "Parameter 'service_ca_ids' must be a list.")
        for service in services:  # re-authorized: held again, from now
            card["entitlements"][service] = {
                **card["entitlements"].get(service, {"renewed_at": None}),
                "authorized_at": _now(),
                "entry_id": entry["entry_id"],
            }
        card["recalls"].append(
            {
                "entry_id": entry["entry_id"],
                "service_ca_ids": services,
                "distributors": params.get("distributors"),
                "at": _now(),
            }
        )


COMMANDS = {
    "ADD_SUBSCRIPTION": SmsState.add_subscription,
    "REMOVE_SUBSCRIPTION": SmsState.remove_subscription,
    "RENEW_SUBSCRIPTION": SmsState.renew_subscription,
    "CHANGE_DEVICE": SmsState.change_device,
    "PAIR_UNPAIR_DEVICE_RECEIVER": SmsState.pair_unpair,
    "ADD_BROADCAST_INFOCAS_MESSAGE": SmsState.broadcast_infocas,
    "ADD_INDIVIDUAL_INFOCAS_MESSAGE": SmsState.individual_infocas,
    "ADD_BROADCAST_FINGERPRINT_MESSAGE": SmsState.broadcast_fingerprint,
    "ADD_INDIVIDUAL_FINGERPRINT_MESSAGE": SmsState.individual_fingerprint,
    "RECALL_SUBSCRIPTION": SmsState.recall,
}
