"""Settings of this provider type: connection and operation parameters.

Secrets are never stored here: the OAuth2 client secret comes from the environment variable
named by ``client_secret_env``, and the TLS client key, like the certificates, is a file on
the workers.
"""

from urllib.parse import urlsplit

from django import forms

from providers import tls
from providers.types import SecretFromEnv


class IrdetoConnection(forms.Form):
    endpoint_url = forms.URLField(
        label="Endpoint URL",
        assume_scheme="https",
        help_text="The KMS's address (e.g. https://kms.example.net); the API is under /kms/v1/.",
    )
    token_url = forms.URLField(
        label="Token URL",
        required=False,
        assume_scheme="https",
        help_text="Where OAuth2 access tokens are fetched; empty: <endpoint URL>/oauth/token.",
    )
    client_id = forms.CharField(label="Client id", max_length=200)
    client_secret_env = SecretFromEnv(label="Client secret variable")
    client_certificate_path = tls.certificate_field("KMS")
    client_key_path = tls.key_field()
    server_ca_bundle_path = tls.ca_bundle_field("KMS")
    timeout_seconds = forms.IntegerField(min_value=1, max_value=300, initial=10)

    def clean(self):
        data = super().clean()
        for name in ("endpoint_url", "token_url"):
            if urlsplit(data.get(name) or "").password is not None:
                self.add_error(
                    name, "Leave the secret out of the URL: give it in the client secret variable."
                )
        tls.check_settings(self, data, data.get("endpoint_url") or "", "endpoint URL")
        return data


class IrdetoParameters(forms.Form):
    default_pin = forms.RegexField(
        regex=r"^\d{4}$",
        required=False,
        initial="0001",
        error_messages={"invalid": "A PIN is exactly 4 digits."},
    )
    max_attempts = forms.IntegerField(
        label="Delivery attempts before Failed", min_value=1, max_value=50, initial=8
    )
