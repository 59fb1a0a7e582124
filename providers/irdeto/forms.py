"""Settings of this provider type: connection and operation parameters."""

from django import forms

from providers.types import SecretFromEnv


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
