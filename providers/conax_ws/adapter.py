"""Conax Contego Web Services (seed 000): real-time SOAP over zeep, with reset runs.

Every command is one operation of the CAS's web services (``wsdl/conax.wsdl``) naming the
card(s) by CA client id, with the request's uid as ``RequestId`` so that the CAS drops a
repeat. The transport (one cached zeep client per provider and process) is ``client.py``.
"""

import uuid
from datetime import datetime
from urllib.parse import urlsplit

from providers import failure_kinds, registry, sealed
from providers.extensions import Health
from providers.models import ProvisioningRequest

from . import client, utilities
from .forms import ConaxWSConnection, ConaxWSParameters

Op = ProvisioningRequest.Operation


def _cards(*ids) -> dict | None:
    ids = [i for i in ids if i]
    return {"CaClientId": ids} if ids else None


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _devices(params: dict, kind: str, *, leave_out: str = "") -> list[str]:
    return [
        d["ca_id"]
        for d in params.get("devices", [])
        if d["kind"] == kind and d["ca_id"] != leave_out
    ]


def _modules(ids: list[str]) -> dict | None:
    return {"PairingModuleId": ids} if ids else None


def _message(r, p: dict) -> dict:
    return {
        "CaClientIds": _cards(p["card_ca_id"]),
        "Message": p["text"],
        "StartDateTime": _moment(p.get("start_at")),
        "SequenceNumber": p.get("sequence_number"),
    }


def _bark(r, p: dict) -> dict:
    return {**_message(r, p), "DisplayDurationInSeconds": p["display_duration_seconds"]}


# Command -> (SOAP operation, its values from the request and its parameters).
OPERATIONS = {
    "ADD_SUBSCRIPTIONS": (
        "AddSubscriptions",
        lambda r, p: {
            "CaClientIds": _cards(p["card_ca_id"]),
            "ProductIds": {"ProductId": [p["service_ca_id"]]},
            # From the request, not the clock: a repeat sends exactly the same thing.
            "StartDate": r.created_at,
        },
    ),
    "CANCEL_SUBSCRIPTIONS": (
        "CancelSubscriptions",
        lambda r, p: {
            "CaClientIds": _cards(p["card_ca_id"]),
            "ProductIds": {"ProductId": [p["service_ca_id"]]},
            "EndDate": r.created_at,
        },
    ),
    "CREATE_PAIRING": (
        "CreatePairing",
        lambda r, p: {
            "CaClientIds": _cards(*_devices(p, "smartcard")),
            "PairingModuleIds": _modules(_devices(p, "stb")),
        },
    ),
    "ADD_TO_EXISTING_PAIRING": (
        "AddToExistingPairing",
        lambda r, p: {
            "PairedCaClientId": p["paired_card_ca_id"],
            "CaClientIds": _cards(*_devices(p, "smartcard", leave_out=p["paired_card_ca_id"])),
            "PairingModuleIds": _modules(_devices(p, "stb")),
        },
    ),
    "GET_ACTIVE_SUBSCRIPTIONS": (
        "GetActiveSubscriptions",
        lambda r, p: {"CaClientId": p["card_ca_id"]},
    ),
    "GET_PAIRING_STATUS_FOR_CARD": (
        "GetPairingStatusForCard",
        lambda r, p: {"CaClientId": p["card_ca_id"]},
    ),
    "GET_PAIRING_STATUS_FOR_PAIRING_MODULE": (
        "GetPairingStatusForPairingModule",
        lambda r, p: {"PairingModuleId": p["stb_ca_id"]},
    ),
    "SEND_MAIL_MESSAGE_TO_CLIENT": ("SendMailMessageToClients", _message),
    "SEND_BARK_MESSAGE_TO_CLIENT": ("SendBarkMessageToClients", _bark),
    "SEND_REPEATING_BARK_MESSAGE_TO_CLIENT": (
        "SendRepeatingBarkMessageToClients",
        lambda r, p: {
            **_bark(r, p),
            "RepetitionCount": p["repetition_count"],
            "RepetitionIntervalInSeconds": p["repetition_interval_seconds"],
        },
    ),
    "DISPLAY_FINGERPRINT": (
        "DisplayFingerprint",
        lambda r, p: {
            "CaClientIds": _cards(p["card_ca_id"]),
            "DisplayDateTime": _moment(p.get("display_at")),
            "DisplayDurationInSeconds": p["duration_seconds"],
            "PositionX": p.get("position_x"),
            "PositionY": p.get("position_y"),
            "Height": p["height"],
            "Slot": p["slot"],
        },
    ),
    "UPDATE_CA_PIN_TO_DEFAULT_VALUE": (
        "UpdateCaPinToDefaultValue",
        lambda r, p: {"CaClientIds": _cards(p["card_ca_id"])},
    ),
    "UPDATE_CA_PIN_TO_GIVEN_VALUE": (
        "UpdateCaPinToGivenValue",
        lambda r, p: {"CaClientIds": _cards(p["card_ca_id"]), "Pin": p["pin"]},
    ),
}


def _ids(holder: dict | None, name: str) -> list[str]:
    return list((holder or {}).get(name) or [])


def response_of(raw: dict) -> dict:
    """The CAS's answer as the request's response: snake_case, lists flattened."""
    answer = {"request_id": raw.get("RequestId")}
    if "Duplicate" in raw:
        answer["duplicate"] = bool(raw["Duplicate"])
    if "Subscription" in raw:
        answer["card_ca_id"] = raw.get("CaClientId")
        answer["subscriptions"] = [
            {"product_id": s["ProductId"], "start": s["StartDate"], "end": s.get("EndDate")}
            for s in raw.get("Subscription") or []
        ]
    if "PairingId" in raw:
        answer["pairing_id"] = raw["PairingId"]
        answer["cards"] = _ids(raw.get("CaClientIds"), "CaClientId")
        answer["modules"] = _ids(raw.get("PairingModuleIds"), "PairingModuleId")
    return answer


class ConaxWSAdapter(registry.Adapter):
    code = "conax_ws"
    name = "Conax Contego Web Services"
    model = registry.HYBRID
    delivery = registry.PUSH
    connection_form = ConaxWSConnection
    parameters_form = ConaxWSParameters
    commands = {
        Op.ACTIVATE: "ADD_SUBSCRIPTIONS",
        Op.DEACTIVATE: "CANCEL_SUBSCRIPTIONS",
        Op.CREATE_PAIRING: "CREATE_PAIRING",
        Op.ADD_TO_PAIRING: "ADD_TO_EXISTING_PAIRING",
    }

    @classmethod
    def run_types(cls):
        from . import runs

        return (
            "reset_subscriptions",
            runs.MAIL_BARK_MESSAGES,
            runs.FINGERPRINTING,
            "archive_requests",
        )

    @classmethod
    def utilities(cls):
        return (
            "reset_subscription",
            utilities.INFORMATION,
            utilities.DISPLAY_FINGERPRINT,
            utilities.PAIR,
            utilities.RESET_PIN,
            utilities.SEND_MESSAGE,
        )

    @classmethod
    def simulator(cls):
        from . import simulator

        return simulator.SIMULATOR

    @classmethod
    def demo(cls):
        from . import demo

        return demo.DEMO

    def check(self) -> Health:
        """A query about a card no CAS knows: any answer, a refusal included, shows that the
        CAS is reached and takes our credentials; nothing is changed there."""
        try:
            conax = client.client_for(self.provider)
            conax.call(
                "GetPairingStatusForCard",
                RequestId=f"check-{uuid.uuid4()}",
                CaClientId="CONNECTION-CHECK",
            )
        except registry.TransportError as error:
            return failure_kinds.failed(self.provider.name, error, otherwise=failure_kinds.PROTOCOL)
        except client.CasRefusal:
            pass  # the expected answer about an unknown card
        where = urlsplit(conax.addresses[client.BINDINGS["GetPairingStatusForCard"]]).netloc
        return Health(True, f"The CAS at {where} answered a query.")

    def platform_state(self, subscription, devices, **asking) -> dict[int, registry.Held]:
        # By the queries of Get Conax information.
        return utilities.platform_state(self.provider, subscription, devices, **asking)

    def send(self, request) -> registry.Answer:
        try:
            operation, values_of = OPERATIONS[request.command]
        except KeyError:
            raise registry.TransportError(
                f"{request.command} is not a Conax Contego web services command.", permanent=True
            ) from None
        # A sealed PIN is opened here, in memory only (TransportError if it cannot be).
        parameters = sealed.opened(request.parameters)
        try:
            values = values_of(request, parameters)
        except KeyError as exc:
            raise registry.TransportError(
                f"The request's parameters lack {exc.args[0]}.", permanent=True
            ) from None
        except (TypeError, ValueError) as exc:
            raise registry.TransportError(
                f"The request's parameters are unusable: {exc}.", permanent=True
            ) from None
        values = {k: v for k, v in values.items() if v is not None}
        try:
            raw = client.client_for(self.provider).call(
                operation, RequestId=str(request.uid), **values
            )
        except client.CasRefusal as refusal:
            return registry.Answer(
                accepted=False, error_code=refusal.code, error_description=refusal.message
            )
        return registry.Answer(accepted=True, response=response_of(raw))
