"""Settings of this provider type: connection and operation parameters."""

from django import forms

from providers.types import SecretFromEnv


class ExsetConnection(forms.Form):
    database_url_env = SecretFromEnv(label="TQUEUE database URL variable")


class ExsetParameters(forms.Form):
    renewal_days = forms.IntegerField(
        label="Renew after days", min_value=1, max_value=365, initial=30
    )
