"""Values a request must carry to the platform but nobody may read in our records (a new PIN).

Sealed with Fernet (``cryptography``) under a key derived from ``SECRET_KEY``, in the request's
parameters as ``pin_sealed`` (``PIN``); the worker unseals it at send time (``opened``), and the
answer drops it (``providers.answers``): an answered request keeps no PIN at all. Wherever a
request's parameters or response are shown, PINs are masked (``masked``). A request sealed
under an older ``SECRET_KEY`` cannot be unsealed and fails with that reason (it is then sent
again from the utility).
"""

import base64
import re

from cryptography.fernet import Fernet, InvalidToken
from django.utils.crypto import salted_hmac

from .errors import TransportError


def _fernet() -> Fernet:
    digest = salted_hmac("providers.sealed", "request parameters", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def unseal(token: str) -> str:
    """The sealed value; a permanent ``TransportError`` when this deployment cannot open it."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise TransportError(
            "A sealed value of this request cannot be opened (SECRET_KEY changed since it was "
            "made): send it again.",
            permanent=True,
        ) from None


# The one parameter that carries a sealed PIN, for every provider that sends one.
PIN = "pin_sealed"


def sealed_pin(pin: str) -> dict:
    """The request parameter that carries ``pin``, sealed."""
    return {PIN: seal(pin)}


def opened(parameters: dict | None) -> dict:
    """The request's parameters as the platform needs them: a sealed PIN opened as ``pin``,
    in memory only (the request's own parameters are not changed)."""
    parameters = dict(parameters or {})
    if PIN in parameters:
        parameters["pin"] = unseal(parameters.pop(PIN))
    return parameters


def without_pin_sql(column: str, vendor: str) -> str:
    """SQL for the JSON ``column`` without its sealed PIN: what an answered request keeps."""
    if vendor == "postgresql":
        return f"({column} - '{PIN}')"
    return f"json_remove({column}, '$.{PIN}')"


MASK = "****"
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _is_pin(key) -> bool:
    # By words, so that "pin", "pin_sealed", "parentalPin" and "PIN" match but "mapping" not.
    return "pin" in (word.lower() for word in _WORDS.findall(str(key)))


def masked(value):
    """``value`` (a request's parameters or response) with every PIN hidden, for showing."""
    if isinstance(value, dict):
        return {k: MASK if _is_pin(k) else masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value
