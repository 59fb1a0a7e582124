"""Settings of this provider type: connection and operation parameters.

Secrets are never stored here: the OAuth2 client secret comes from the environment variable
named by ``client_secret_env``, and the TLS client key, like the certificates, is a file on
the workers.
"""

from urllib.parse import urlsplit

from django import forms

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
    client_certificate_path = forms.CharField(
        label="TLS client certificate file",
        max_length=500,
        required=False,
        help_text="PEM file of the certificate this product shows the KMS (HTTPS only).",
    )
    client_key_path = forms.CharField(
        label="TLS client key file",
        max_length=500,
        required=False,
        help_text="Path of the unencrypted PEM private key (readable by the workers only); the "
        "key itself is never stored here.",
    )
    server_ca_bundle_path = forms.CharField(
        label="CA bundle of the KMS's server certificate",
        max_length=500,
        required=False,
        help_text="PEM file of the authority that signed the KMS's server certificate; empty: "
        "the system's trusted authorities. The server certificate is always verified.",
    )
    timeout_seconds = forms.IntegerField(min_value=1, max_value=300, initial=10)

    def clean(self):
        data = super().clean()
        if data.get("client_key_path") and not data.get("client_certificate_path"):
            self.add_error("client_certificate_path", "A client key needs its certificate.")
        for name in ("endpoint_url", "token_url"):
            if urlsplit(data.get(name) or "").password is not None:
                self.add_error(
                    name, "Leave the secret out of the URL: give it in the client secret variable."
                )
        if (data.get("endpoint_url") or "").startswith("http://"):
            for name in ("client_certificate_path", "server_ca_bundle_path"):
                if data.get(name):
                    self.add_error(name, "TLS settings need an https:// endpoint URL.")
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
