"""Settings of this provider type: connection and operation parameters."""

from django import forms

from providers.types import SecretFromEnv, months


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
