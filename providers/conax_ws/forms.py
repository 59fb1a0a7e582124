"""Settings of this provider type: connection and operation parameters."""

from django import forms

from providers.types import SecretFromEnv


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
