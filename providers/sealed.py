"""Values a request must carry to the platform but nobody may read in our records (a new PIN).

Sealed with Fernet (``cryptography``) under a key derived from ``SECRET_KEY``: the request's
parameters, the Web API, the admin and the logs show only the sealed token; the worker unseals
it at send time. A request sealed under an older ``SECRET_KEY`` cannot be unsealed and fails
with that reason (it is then sent again from the utility).
"""

import base64

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
