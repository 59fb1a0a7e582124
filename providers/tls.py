"""TLS towards a platform (a Conax CAS, an Irdeto KMS: its name is ``peer`` below): the client
certificate we show, the authority we trust for the platform's server certificate, and what to
tell an operator when the handshake or the connection fails.

Production platforms ask for a TLS client certificate besides their credentials. The
provider's connection names files readable by the workers (never their contents): the client
certificate and key (``client_certificate_path``, ``client_key_path``), and the CA bundle that
signed the platform's server certificate (``server_ca_bundle_path``; empty: the system's
trusted authorities). The server certificate is always verified.

The files are checked when the client is made (``check_files``), so a missing file or a
key that does not match its certificate is one clear, permanent error rather than a failure
deep inside every connection. A key that needs a passphrase is refused there too: OpenSSL
would otherwise stop the worker to ask for it on the terminal.

Handshake failures are explained (``failure``): a server certificate we cannot verify, a peer
that wants a client certificate we do not have, or one that refuses ours. They are permanent
(the request is Failed at once, like refused credentials) because sending again changes
nothing until someone fixes the settings; a connection merely cut during the handshake is
retried.
"""

import http.client
import os
import re
import ssl

import requests
from django import forms

from providers.registry import TransportError

FILES = {
    "client_certificate_path": "TLS client certificate",
    "client_key_path": "TLS client key",
    "server_ca_bundle_path": "CA bundle of the {peer}'s server certificate",
}
# OpenSSL's names for the alerts a server sends when it will not take our certificate.
CERTIFICATE_REFUSED = {
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "TLSV1_ALERT_ACCESS_DENIED",
    "TLSV1_ALERT_DECRYPT_ERROR",
}
CERTIFICATE_REQUIRED = {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE"}
# OpenSSL's verify codes with the setting to look at: X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
# _DEPTH_ZERO_SELF_SIGNED_CERT, _SELF_SIGNED_CERT_IN_CHAIN, _UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
# _UNABLE_TO_VERIFY_LEAF_SIGNATURE (an authority we do not trust); _HOSTNAME_MISMATCH,
# _IP_ADDRESS_MISMATCH (a certificate for another host than the URL names).
UNTRUSTED_ISSUER = {2, 18, 19, 20, 21}
NAME_MISMATCH = {62, 64}


def certificate_field(peer: str) -> forms.CharField:
    """The connection form's ``client_certificate_path``."""
    return forms.CharField(
        label="TLS client certificate file",
        max_length=500,
        required=False,
        help_text=f"PEM file of the certificate this product shows the {peer} (HTTPS only).",
    )


def key_field() -> forms.CharField:
    """The connection form's ``client_key_path``."""
    return forms.CharField(
        label="TLS client key file",
        max_length=500,
        required=False,
        help_text="Path of the unencrypted PEM private key (readable by the workers only); the "
        "key itself is never stored here.",
    )


def ca_bundle_field(peer: str) -> forms.CharField:
    """The connection form's ``server_ca_bundle_path``."""
    return forms.CharField(
        label=f"CA bundle of the {peer}'s server certificate",
        max_length=500,
        required=False,
        help_text=f"PEM file of the authority that signed the {peer}'s server certificate; "
        "empty: the system's trusted authorities. The server certificate is always verified.",
    )


def check_settings(form: forms.Form, data: dict, address: str, where: str) -> None:
    """The TLS fields' errors on ``form``: a key without its certificate, TLS settings for a
    plain ``http://`` ``address`` (``where`` names the setting that gives it)."""
    if data.get("client_key_path") and not data.get("client_certificate_path"):
        form.add_error("client_certificate_path", "A client key needs its certificate.")
    if address.startswith("http://"):
        for name in ("client_certificate_path", "server_ca_bundle_path"):
            if data.get(name):
                form.add_error(name, f"TLS settings need an https:// {where}.")


def _no_passphrase() -> bytes:
    return b""


def check_files(connection: dict, *, peer: str) -> None:
    """Refuse, permanently, TLS settings this worker cannot use."""
    for name, label in FILES.items():
        path = connection.get(name)
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise TransportError(
                f"The {label.format(peer=peer)} file {path} is missing or unreadable on this "
                "worker.",
                permanent=True,
            )
    certificate, key = connection.get("client_certificate_path"), connection.get("client_key_path")
    if certificate:
        try:
            ssl.create_default_context().load_cert_chain(
                certificate, key or None, password=_no_passphrase
            )
        except ssl.SSLError as exc:
            raise TransportError(
                f"The TLS client certificate {certificate} cannot be used with its key "
                f"{key or '(in the same file)'}: {_text(exc)}. Give the certificate and its "
                "unencrypted private key (PEM).",
                permanent=True,
            ) from exc
    bundle = connection.get("server_ca_bundle_path")
    if bundle:
        try:
            ssl.create_default_context(cafile=bundle)
        except ssl.SSLError as exc:
            raise TransportError(
                f"The CA bundle {bundle} holds no usable certificate: {_text(exc)}.",
                permanent=True,
            ) from exc


class _VerifyWith(requests.adapters.HTTPAdapter):
    """Verifies every HTTPS connection against the provider's CA bundle. Setting the session's
    ``verify`` is not enough: requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the
    environment override it, and the operator's setting must win."""

    def __init__(self, bundle: str):
        super().__init__()
        self.bundle = bundle

    def send(self, request, **kwargs):
        kwargs["verify"] = self.bundle
        return super().send(request, **kwargs)


def configure(session: requests.Session, connection: dict) -> None:
    """Our client certificate and the platform's authority, on the session every call uses."""
    certificate = connection.get("client_certificate_path")
    if certificate:
        key = connection.get("client_key_path")
        session.cert = (certificate, key) if key else certificate
    bundle = connection.get("server_ca_bundle_path")
    if bundle:
        session.mount("https://", _VerifyWith(bundle))


def context(connection: dict, default_bundle: str) -> ssl.SSLContext:
    """The same TLS as ``configure`` gives the session, for connections made without requests
    (``conax_ws.client._Transport``): the platform's certificate verified against the
    provider's CA bundle, else ``default_bundle`` (what requests would trust), its host name
    checked; our client certificate shown."""
    bundle = connection.get("server_ca_bundle_path") or default_bundle
    if os.path.isdir(bundle):
        made = ssl.create_default_context(capath=bundle)
    else:
        made = ssl.create_default_context(cafile=bundle)
    certificate = connection.get("client_certificate_path")
    if certificate:
        key = connection.get("client_key_path") or None
        made.load_cert_chain(certificate, key, password=_no_passphrase)
    return made


def underlying(exc: BaseException, kind: type[BaseException], test=None) -> BaseException | None:
    """The first ``kind`` (passing ``test``) inside requests' and urllib3's wrapping of
    ``exc``, if any."""
    seen, todo = set(), [exc]
    while todo:
        found = todo.pop(0)
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        if isinstance(found, kind) and (test is None or test(found)):
            return found
        todo += [found.__cause__, found.__context__, getattr(found, "reason", None)]
        todo += [a for a in getattr(found, "args", ()) if isinstance(a, BaseException)]
    return None


def _text(exc: ssl.SSLError) -> str:
    """OpenSSL's words without the library's tags: 'tlsv1 alert unknown ca'."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return exc.verify_message
    words = exc.args[1] if len(exc.args) > 1 else str(exc)
    return re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(words)).strip() or str(exc)


def _reason(exc: ssl.SSLError) -> str:
    found = getattr(exc, "reason", None)
    if found:
        return found
    tag = re.match(r"\[SSL: ([A-Z0-9_]+)\]", str(exc.args[1] if len(exc.args) > 1 else exc))
    return tag.group(1) if tag else ""


def why(exc: OSError) -> str:
    """The operating system's reason under requests' wrapping ("Connection refused"), or the
    kind of failure."""
    # requests' own exceptions are OSErrors too, without an operating system's reason.
    cause = underlying(exc, OSError, lambda e: e.strerror)
    if cause is not None:
        return cause.strerror
    # A hang-up without an answer has no operating system's reason, only http.client's words.
    hung_up = underlying(exc, http.client.RemoteDisconnected)
    return str(hung_up) if hung_up is not None else type(exc).__name__


def failure(
    exc: BaseException, where: str, *, has_certificate: bool, peer: str
) -> TransportError | None:
    """The TransportError that says why TLS failed, or None when ``exc`` is no TLS failure."""
    error = underlying(exc, ssl.SSLError)
    if error is None:
        return None
    words, reason = _text(error), _reason(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        advice = ""
        if error.verify_code in UNTRUSTED_ISSUER:
            advice = (
                "; set the CA bundle of the authority that signed it in the provider's connection"
            )
        elif error.verify_code in NAME_MISMATCH:
            advice = "; the endpoint URL must name a host the certificate is issued for"
        return TransportError(
            f"The {peer}'s TLS server certificate could not be verified {where} ({words}){advice}.",
            permanent=True,
        )
    if reason in CERTIFICATE_REQUIRED and not has_certificate:
        return TransportError(
            f"The {peer} requires a TLS client certificate {where} ({words}) and the provider has "
            "none; set the TLS client certificate and key files.",
            permanent=True,
        )
    if reason in CERTIFICATE_REFUSED | CERTIFICATE_REQUIRED:
        return TransportError(
            f"The {peer} refused our TLS client certificate {where} ({words}); it must be "
            f"issued by an authority the {peer} trusts, and valid.",
            permanent=True,
        )
    # A platform may also just hang up on a client without a certificate: say so, but retry, as a
    # cut connection may be nothing more.
    hint = "" if has_certificate else "; the provider has no TLS client certificate set"
    return TransportError(f"The TLS connection to the {peer} failed {where} ({words}){hint}")
