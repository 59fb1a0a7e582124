"""Building blocks of the settings forms each adapter declares (``providers/<type>/forms.py``).

The admin shows an adapter's connection and parameters forms, and ``provider_settings`` validates
the stored JSON through them, so a value out of the ranges in SPEC never reaches the database.
Secrets (passwords, private keys) are never stored: a setting names the environment variable
that holds the secret (``*_env`` fields), and only that name is shown anywhere; it must start
with ``PROVIDER_SECRET_ENV_PREFIX`` (``providers.env_secrets``).
"""

import re

from django import forms
from django.conf import settings

from . import env_secrets


class NoSettings(forms.Form):
    pass


class SecretFromEnv(forms.CharField):
    """The *name* of an environment variable holding a secret, never the secret itself."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 100)
        kwargs.setdefault("help_text", "Name of the environment variable that holds the secret.")
        super().__init__(**kwargs)

    def validate(self, value):
        super().validate(value)
        if not value:
            return
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
            raise forms.ValidationError(
                "Give the name of an environment variable (capital letters, digits and _, "
                f"e.g. {settings.PROVIDER_SECRET_ENV_PREFIX}CONAX_PASSWORD), not the secret "
                "itself."
            )
        refused = env_secrets.refusal(value)
        if refused:
            raise forms.ValidationError(refused)


def months(label: str, maximum: int, initial: int = 1) -> forms.IntegerField:
    return forms.IntegerField(label=label, min_value=1, max_value=maximum, initial=initial)


def defaults(form_class: type[forms.Form]) -> dict:
    """The initial values a form declares, as stored JSON."""
    return {name: field.initial for name, field in form_class.base_fields.items() if field.initial}


def validate(form_class: type[forms.Form], data: dict) -> tuple[dict, dict]:
    """Validate stored settings through a type's form; returns (cleaned, errors)."""
    merged = {**defaults(form_class), **(data or {})}
    unknown = set(merged) - set(form_class.base_fields)
    form = form_class(data=merged)
    valid = form.is_valid()
    errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
    for name in sorted(unknown):
        errors[name] = [f"Unknown setting '{name}' for this provider type."]
    return (form.cleaned_data if valid and not unknown else {}), errors
