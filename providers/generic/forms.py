"""Settings of this provider type: connection and operation parameters."""

from django import forms

from providers.types import SecretFromEnv


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
