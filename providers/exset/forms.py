"""Settings of this provider type: the SMS's database holding TQUEUE, and operation parameters.

The database is named by a URL without its password (``tqueue.parse_url`` reads it); the
password comes from the environment variable ``password_env`` names, never from the settings.
"""

from django import forms

from providers.types import SecretFromEnv

from . import tqueue


class DatabaseURLField(forms.CharField):
    """``postgresql://``, ``mysql://`` (MariaDB too) or ``sqlite:///`` URL, refused when it
    holds a password."""

    def validate(self, value):
        super().validate(value)
        try:
            tqueue.parse_url(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class TableNameField(forms.CharField):
    def validate(self, value):
        super().validate(value)
        try:
            tqueue.check_identifier(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class ExsetConnection(forms.Form):
    database_url = DatabaseURLField(
        label="SMS database URL",
        max_length=500,
        help_text="The SMS's database holding TQUEUE, without its password: e.g. "
        "postgresql://exset@sms-db:5432/sms, mysql://exset@sms-db:3306/sms (MariaDB too) or "
        "sqlite:////srv/exset/tqueue.sqlite3.",
    )
    password_env = SecretFromEnv(label="Password variable")
    table = TableNameField(
        label="TQUEUE table",
        max_length=64,
        initial="TQUEUE",
        help_text="The queue table's name in that database (letters, digits and _).",
    )


class ExsetParameters(forms.Form):
    max_records_per_file = forms.IntegerField(
        label="Maximum number of entries in each batch",
        min_value=1,
        max_value=1_000_000,
        initial=20000,
    )
    renewal_days = forms.IntegerField(
        label="Renew after days", min_value=1, max_value=365, initial=30
    )
    answer_deadline_hours = forms.IntegerField(
        label="Answer deadline in hours",
        min_value=1,
        max_value=24 * 31,
        initial=24,
        help_text="TQUEUE entries the SMS has not finished (Done or Error) this long after "
        "they were written make their requests Failed (the Read TQUEUE answers run), to be "
        "retried.",
    )
