"""Settings of this provider type: connection and operation parameters.

Secrets are never stored here: the password comes from the environment variable named by
``password_env``, and the TLS client key, like the certificates, is a file on the workers.
"""

from urllib.parse import urlsplit

from django import forms

from providers import tls
from providers.types import SecretFromEnv


class ConaxWSConnection(forms.Form):
    wsdl_url = forms.CharField(
        label="WSDL location",
        max_length=500,
        required=False,
        help_text="The CAS's WSDL (e.g. https://cas.example.net/ca-server/webservices/"
        "subscription-management?wsdl) or a file path; empty: the WSDL shipped with the product. "
        "It must be self-contained: a WSDL that imports schemas from the network is refused.",
    )
    endpoint_url = forms.URLField(
        label="Endpoint URL",
        required=False,
        assume_scheme="https",
        help_text="The CAS's address (scheme, host, port), when it differs from the WSDL's; "
        "each web service keeps its path under /ca-server/webservices/.",
    )
    username = forms.CharField(max_length=100)
    password_env = SecretFromEnv(label="Password variable")
    client_certificate_path = tls.certificate_field("CAS")
    client_key_path = tls.key_field()
    server_ca_bundle_path = tls.ca_bundle_field("CAS")
    timeout_seconds = forms.IntegerField(min_value=1, max_value=300, initial=10)

    def clean(self):
        data = super().clean()
        if not data.get("wsdl_url") and not data.get("endpoint_url"):
            raise forms.ValidationError(
                "Give the WSDL location or the endpoint URL (the shipped WSDL is then used)."
            )
        for name in ("wsdl_url", "endpoint_url"):
            if urlsplit(data.get(name) or "").password is not None:
                self.add_error(
                    name, "Leave the password out of the URL: give it in the password variable."
                )
        address = data.get("endpoint_url") or data.get("wsdl_url") or ""
        tls.check_settings(self, data, address, "endpoint URL (or WSDL location)")
        return data


class ConaxWSParameters(forms.Form):
    max_attempts = forms.IntegerField(
        label="Delivery attempts before Failed", min_value=1, max_value=50, initial=8
    )
