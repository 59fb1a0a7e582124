"""What each kind of provider needs configured: connection settings and operation parameters.

Each provider type declares two forms. The admin shows them, and ``Provider.clean`` validates
the stored JSON through them, so a value out of the ranges in SPEC never reaches the database.
Secrets (passwords, private keys) are never stored: a setting names the environment variable
that holds the secret (``*_env`` fields), and only that name is shown anywhere.
"""

import re
from dataclasses import dataclass

from django import forms


class Model:
    REAL_TIME = "real_time"
    BATCH = "batch"
    HYBRID = "hybrid"


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
        if value and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
            raise forms.ValidationError(
                "Give the name of an environment variable (capital letters, digits and _, "
                "e.g. CONAX_PASSWORD), not the secret itself."
            )


def months(label: str, maximum: int, initial: int = 1) -> forms.IntegerField:
    return forms.IntegerField(label=label, min_value=1, max_value=maximum, initial=initial)


class GenericConnection(forms.Form):
    mode = forms.ChoiceField(
        choices=[
            ("pull", "Pull: the connector takes Pending requests over our Web API"),
            ("push", "Push: we POST each request to the connector's URL"),
        ],
        initial="pull",
    )
    push_url = forms.URLField(
        label="Connector URL", required=False, assume_scheme="https", help_text="Push mode only."
    )
    token_env = SecretFromEnv(label="Bearer token variable")
    timeout_seconds = forms.IntegerField(min_value=1, max_value=300, initial=10)

    def clean(self):
        data = super().clean()
        if data.get("mode") == "push" and not data.get("push_url"):
            self.add_error("push_url", "Push mode needs the connector's URL.")
        return data


class GenericParameters(forms.Form):
    answer_deadline_hours = forms.IntegerField(
        label="Answer deadline in hours",
        min_value=1,
        max_value=8760,
        initial=168,
        help_text="A request unanswered this long becomes Failed (a reset repairs it).",
    )
    max_attempts = forms.IntegerField(
        label="Delivery attempts before Failed (push)", min_value=1, max_value=50, initial=8
    )


class ConaxWSConnection(forms.Form):
    wsdl_url = forms.CharField(label="WSDL location", max_length=500)
    endpoint_url = forms.URLField(label="Endpoint URL", required=False, assume_scheme="https")
    username = forms.CharField(max_length=100)
    password_env = SecretFromEnv(label="Password variable")
    client_certificate_path = forms.CharField(max_length=500, required=False)
    client_key_env = SecretFromEnv(label="Client key variable")
    timeout_seconds = forms.IntegerField(min_value=1, max_value=300, initial=10)


class ConaxWSParameters(forms.Form):
    max_attempts = forms.IntegerField(
        label="Delivery attempts before Failed", min_value=1, max_value=50, initial=8
    )


class FileTransferConnection(forms.Form):
    protocol = forms.ChoiceField(
        choices=[("sftp", "SFTP"), ("ftp", "FTP"), ("ftps", "FTPS")], initial="sftp"
    )
    host = forms.CharField(max_length=255)
    port = forms.IntegerField(min_value=1, max_value=65535, required=False)
    username = forms.CharField(max_length=100)
    password_env = SecretFromEnv(label="Password variable")
    private_key_env = SecretFromEnv(label="Private key variable")
    host_key = forms.CharField(
        max_length=2000,
        required=False,
        help_text="SFTP: the server's public host key (e.g. 'ssh-ed25519 AAAA…'); "
        "a different key is refused.",
    )
    upload_directory = forms.CharField(max_length=255, initial="/in")
    response_directory = forms.CharField(max_length=255, initial="/out")

    def clean(self):
        data = super().clean()
        if data.get("protocol") == "sftp" and not data.get("host_key"):
            self.add_error("host_key", "SFTP needs the server's host key to check it.")
        return data


class ConaxSMSParameters(forms.Form):
    max_records_per_file = forms.IntegerField(
        label="Maximum number of records in each file",
        min_value=1,
        max_value=1_000_000,
        initial=20000,
    )
    add_end_period_months = months("Add subscription end period in months", 36)
    renewal_frequency_months = months("Renewal frequency in months", 35)
    renew_end_period_months = months("Renew subscription end period in months", 36)
    cancel_end_period_months = months("Cancel subscription end period in months", 36)


class ExsetConnection(forms.Form):
    database_url_env = SecretFromEnv(label="TQUEUE database URL variable")


class ExsetParameters(forms.Form):
    renewal_days = forms.IntegerField(
        label="Renew after days", min_value=1, max_value=365, initial=30
    )


class IrdetoConnection(forms.Form):
    endpoint_url = forms.URLField(label="Endpoint URL", assume_scheme="https")
    username = forms.CharField(max_length=100)
    password_env = SecretFromEnv(label="Password variable")
    timeout_seconds = forms.IntegerField(min_value=1, max_value=300, initial=10)


class IrdetoParameters(forms.Form):
    default_pin = forms.RegexField(
        regex=r"^\d{4}$",
        required=False,
        initial="0001",
        error_messages={"invalid": "A PIN is exactly 4 digits."},
    )


@dataclass(frozen=True)
class ProviderType:
    code: str
    name: str
    model: str
    connection_form: type[forms.Form]
    parameters_form: type[forms.Form]


PROVIDER_TYPES: dict[str, ProviderType] = {
    t.code: t
    for t in [
        ProviderType(
            "generic", "Generic (Web API)", Model.HYBRID, GenericConnection, GenericParameters
        ),
        ProviderType(
            "conax_ws",
            "Conax Contego Web Services",
            Model.HYBRID,
            ConaxWSConnection,
            ConaxWSParameters,
        ),
        ProviderType(
            "conax_sms",
            "Conax Contego SMS Services",
            Model.BATCH,
            FileTransferConnection,
            ConaxSMSParameters,
        ),
        ProviderType("exset", "EXSET SMS", Model.BATCH, ExsetConnection, ExsetParameters),
        ProviderType("irdeto", "Irdeto", Model.HYBRID, IrdetoConnection, IrdetoParameters),
    ]
}


def type_choices() -> list[tuple[str, str]]:
    return [(t.code, t.name) for t in PROVIDER_TYPES.values()]


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
