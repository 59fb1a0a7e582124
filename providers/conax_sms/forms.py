"""Settings of this provider type: connection and operation parameters."""

import ssl

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
    tls_ca_certificate = forms.CharField(
        label="FTPS CA certificate",
        max_length=20000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="FTPS: the PEM certificate of the CA that signed the server's certificate "
        "(or the server's own self-signed certificate). Empty: the system's trusted CAs. The "
        "server's certificate and host name are always checked.",
    )
    upload_directory = forms.CharField(max_length=255, initial="/in")
    response_directory = forms.CharField(max_length=255, initial="/out")

    def clean(self):
        data = super().clean()
        if data.get("protocol") == "sftp" and not data.get("host_key"):
            self.add_error("host_key", "SFTP needs the server's host key to check it.")
        pem = (data.get("tls_ca_certificate") or "").strip()
        if pem:
            try:
                ssl.create_default_context(cadata=pem)
            except (ssl.SSLError, ValueError):
                self.add_error("tls_ca_certificate", "Not a PEM certificate.")
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
    answer_deadline_hours = forms.IntegerField(
        label="Answer deadline in hours",
        min_value=1,
        max_value=24 * 31,
        initial=24,
        help_text="Requests in an uploaded file that Conax has not answered this long after "
        "the upload become Failed (the Error Handling run), to be retried.",
    )
