"""HTTPS with a TLS client certificate, as a production Conax CAS asks: the simulator serves
TLS and requires a client certificate from the operator's authority; the provider's settings
name our certificate, its key and the authority of the CAS's server certificate, which is
always verified. Each way the handshake can fail reaches the operator as a reason that names
the problem, and the request is Failed at once (sending again would change nothing).
"""

import uuid

import pytest
from django.core.exceptions import ValidationError

from providers import provider_settings
from providers.conax_ws import client
from providers.conax_ws.simulator import TLS, Simulator
from providers.models import ProvisioningRequest

from . import conax_ws_fixtures as cws
from .conax_ws_fixtures import card_of, deliver, requests_of

pytestmark = pytest.mark.django_db
conax, conax_subscribe, pki = cws.conax, cws.conax_subscribe, cws.pki

Req = ProvisioningRequest


@pytest.fixture
def simulator(monkeypatch, pki):
    """The CAS over HTTPS, taking only client certificates of the operator's authority."""
    monkeypatch.setenv(cws.PASSWORD_ENV, cws.PASSWORD)
    tls = TLS(*pki.server, client_ca=str(pki.authority.path))
    sim = Simulator("crm", cws.PASSWORD, tls=tls).start()
    yield sim
    sim.stop()


def connect(conax, simulator, pki, *, certificate=None, **settings) -> None:
    """Point the provider at the CAS over HTTPS, through its settings form."""
    connection = cws.connection(
        simulator, server_ca_bundle_path=str(pki.authority.path), **settings
    )
    if certificate:
        connection["client_certificate_path"], connection["client_key_path"] = certificate
    conax.provider.connection = connection
    provider_settings.full_clean(conax.provider)
    conax.provider.save()


def active(conax, card: str) -> list[str]:
    answer = client.client_for(conax.provider).call(
        "GetActiveSubscriptions", RequestId=str(uuid.uuid4()), CaClientId=card
    )
    return sorted(s["ProductId"] for s in answer.get("Subscription") or [])


def test_with_our_client_certificate_the_cas_takes_the_requests(
    conax, conax_subscribe, simulator, pki, monkeypatch
):
    assert simulator.url.startswith("https://127.0.0.1:")
    # An environment bundle that would not verify the CAS: the provider's setting wins.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_authority.path))
    connect(conax, simulator, pki, certificate=pki.client)
    sub = conax_subscribe("AGRICULTURE")
    assert deliver(conax) == 2
    assert requests_of(sub) == [
        ("CREATE_PAIRING", "", "completed"),
        ("ADD_SUBSCRIPTIONS", "AF1", "completed"),
    ]
    assert active(conax, card_of(sub)) == ["AF1"]


def test_without_a_client_certificate_the_handshake_fails_and_says_why(
    conax, conax_subscribe, simulator, pki
):
    connect(conax, simulator, pki)  # the WSDL is loaded from the CAS: it fails there
    sub = conax_subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error == (
        f"Attempt 1 failed: The CAS requires a TLS client certificate loading the WSDL "
        f"{simulator.wsdl_url} (tlsv13 alert certificate required) and the provider has none; "
        "set the TLS client certificate and key files. Gave up after 1 attempts."
    )
    assert simulator.state.received == []


def test_a_client_certificate_of_another_authority_is_refused_and_says_why(
    conax, conax_subscribe, simulator, pki
):
    # The shipped WSDL, so that the refusal comes at the first call.
    connect(
        conax, simulator, pki, certificate=pki.stranger, wsdl_url="", endpoint_url=simulator.url
    )
    sub = conax_subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error == (
        "Attempt 1 failed: The CAS refused our TLS client certificate for CreatePairing "
        "(tlsv1 alert unknown ca); it must be issued by an authority the CAS trusts, and "
        "valid. Gave up after 1 attempts."
    )
    assert simulator.state.received == []


def test_a_cas_certificate_we_cannot_verify_is_never_trusted(
    conax, conax_subscribe, simulator, pki
):
    # The other authority's bundle does not vouch for the CAS's certificate.
    connect(conax, simulator, pki, certificate=pki.client)
    conax.provider.connection["server_ca_bundle_path"] = str(pki.other_authority.path)
    conax.provider.save()
    sub = conax_subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    reason, because = pairing.last_error.split(" (", 1)
    assert reason == (
        "Attempt 1 failed: The CAS's TLS server certificate could not be verified loading the "
        f"WSDL {simulator.wsdl_url}"
    )
    # OpenSSL's words for why (here: the CAS sent its authority along, which we do not trust).
    assert because.endswith(
        "); set the CA bundle of the authority that signed it in the provider's connection. "
        "Gave up after 1 attempts."
    )


def test_a_cas_certificate_for_another_host_is_refused(
    conax, conax_subscribe, pki, tmp_path, monkeypatch
):
    monkeypatch.setenv(cws.PASSWORD_ENV, cws.PASSWORD)
    elsewhere = pki.authority.issue(tmp_path, "elsewhere", server=True, hosts=["cas.example.net"])
    sim = Simulator("crm", cws.PASSWORD, tls=TLS(*elsewhere)).start()
    try:
        connect(conax, sim, pki, certificate=pki.client)
        sub = conax_subscribe("AGRICULTURE")
        deliver(conax)
    finally:
        sim.stop()
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error == (
        "Attempt 1 failed: The CAS's TLS server certificate could not be verified loading the "
        f"WSDL {sim.wsdl_url} (IP address mismatch, certificate is not valid for '127.0.0.1'.); "
        "the endpoint URL must name a host the certificate is issued for. Gave up after 1 "
        "attempts."
    )


def test_unusable_certificate_files_are_named(conax, conax_subscribe, simulator, pki, tmp_path):
    certificate, _key = pki.client
    _stranger, stranger_key = pki.stranger
    connect(conax, simulator, pki, certificate=(certificate, str(tmp_path / "missing.key")))
    sub = conax_subscribe("AGRICULTURE")
    deliver(conax)
    assert Req.objects.get(subscription=sub, command="CREATE_PAIRING").last_error == (
        f"Attempt 1 failed: The TLS client key file {tmp_path / 'missing.key'} is missing or "
        "unreadable on this worker. Gave up after 1 attempts."
    )
    connect(conax, simulator, pki, certificate=(certificate, stranger_key))
    other = conax_subscribe("AGRICULTURE")
    deliver(conax)
    assert Req.objects.get(subscription=other, command="CREATE_PAIRING").last_error.startswith(
        f"Attempt 1 failed: The TLS client certificate {certificate} cannot be used with its "
        f"key {stranger_key}: key values mismatch."
    )


def test_tls_settings_need_https_and_passwords_stay_out_of_urls(conax):
    provider = conax.provider
    provider.connection = {
        "endpoint_url": "http://cas.example.net",
        "username": "crm",
        "password_env": cws.PASSWORD_ENV,
        "client_certificate_path": "/etc/crm/conax.crt",
        "server_ca_bundle_path": "/etc/crm/conax-ca.pem",
    }
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(provider)
    assert err.value.message_dict["connection"] == [
        "client_certificate_path: TLS settings need an https:// endpoint URL (or WSDL location).",
        "server_ca_bundle_path: TLS settings need an https:// endpoint URL (or WSDL location).",
    ]
    provider.connection = {
        "endpoint_url": "https://crm:s3cret@cas.example.net",
        "username": "crm",
    }
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(provider)
    assert err.value.message_dict["connection"] == [
        "endpoint_url: Leave the password out of the URL: give it in the password variable."
    ]
