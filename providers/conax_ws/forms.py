"""Settings of this provider type: connection and operation parameters."""

from django import forms

from providers.types import SecretFromEnv


class ConaxWSConnection(forms.Form):
    wsdl_url = forms.CharField(
        label="WSDL location",
        max_length=500,
        required=False,
        help_text="The CAS's WSDL (e.g. https://cas.example.net/ca-server/webservices/"
        "subscription-management?wsdl) or a file path; empty: the WSDL shipped with the product.",
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
    client_certificate_path = forms.CharField(
        label="TLS client certificate file", max_length=500, required=False
    )
    client_key_path = forms.CharField(
        label="TLS client key file",
        max_length=500,
        required=False,
        help_text="Path of the private key (readable by the workers only); the key itself is "
        "never stored here.",
    )
    timeout_seconds = forms.IntegerField(min_value=1, max_value=300, initial=10)

    def clean(self):
        data = super().clean()
        if not data.get("wsdl_url") and not data.get("endpoint_url"):
            raise forms.ValidationError(
                "Give the WSDL location or the endpoint URL (the shipped WSDL is then used)."
            )
        if data.get("client_key_path") and not data.get("client_certificate_path"):
            self.add_error("client_certificate_path", "A client key needs its certificate.")
        return data


class ConaxWSParameters(forms.Form):
    max_attempts = forms.IntegerField(
        label="Delivery attempts before Failed", min_value=1, max_value=50, initial=8
    )
