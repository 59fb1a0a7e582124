"""Secrets of providers: a setting names an environment variable, the worker reads it at send time.

Only variables whose name starts with ``settings.PROVIDER_SECRET_ENV_PREFIX`` may be named. A
worker's environment also holds ``SECRET_KEY`` and ``DATABASE_URL``, and a provider sends its
secret to the endpoint it is configured with: whoever may change a provider must not be able to
have the worker send those anywhere. The settings form refuses other names, and ``read`` refuses
them again at send time, for a row written some other way.
"""

import os

from django.conf import settings

from .errors import TransportError


def refusal(name: str) -> str | None:
    """Why ``name`` may not be named as a secret variable, or None if it may."""
    prefix = settings.PROVIDER_SECRET_ENV_PREFIX
    if name.startswith(prefix) and len(name) > len(prefix):
        return None
    return (
        f"{name} is not a secret variable this deployment allows: name one that starts with "
        f"{prefix} (PROVIDER_SECRET_ENV_PREFIX), e.g. {prefix}CONAX_PASSWORD."
    )


def read(name: str, what: str) -> str:
    """The secret in variable ``name``; ``TransportError`` (permanent: a retry would read the
    same) naming the variable, never its value, when it may not be read or is not set."""
    if not name:
        raise TransportError(f"No variable is named for the {what}.", permanent=True, kind="secret")
    refused = refusal(name)
    if refused:
        raise TransportError(
            f"Refusing to read the {what}: {refused}", permanent=True, kind="secret"
        )
    value = os.environ.get(name)
    if not value:
        raise TransportError(
            f"The {what} variable {name} is not set in this worker's environment.",
            permanent=True,
            kind="secret",
        )
    return value
