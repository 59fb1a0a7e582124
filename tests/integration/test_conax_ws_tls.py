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
from tests.fixtures import (
    CONAX_WS_PASSWORD,
    CONAX_WS_PASSWORD_ENV,
    card_of,
    conax_ws_connection,
    deliver,
    requests_of,
)

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


@pytest.fixture
def conax_ws_simulator(monkeypatch, pki):
    """The CAS over HTTPS, taking only client certificates of the operator's authority."""
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    tls = TLS(*pki.server, client_ca=str(pki.authority.path))
    sim = Simulator("crm", CONAX_WS_PASSWORD, tls=tls).start()
    yield sim
    sim.stop()


def connect(conax, simulator, pki, *, certificate=None, **settings) -> None:
    """Point the provider at the CAS over HTTPS, through its settings form."""
    connection = conax_ws_connection(
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
    conax, subscribe, conax_ws_simulator, pki, monkeypatch
):
    assert conax_ws_simulator.url.startswith("https://127.0.0.1:")
    # An environment bundle that would not verify the CAS: the provider's setting wins.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_authority.path))
    connect(conax, conax_ws_simulator, pki, certificate=pki.client)
    sub = subscribe("AGRICULTURE")
    assert deliver(conax) == 2
    assert requests_of(sub) == [
        ("CREATE_PAIRING", "", "completed"),
        ("ADD_SUBSCRIPTIONS", "AF1", "completed"),
    ]
    assert active(conax, card_of(sub)) == ["AF1"]


def test_without_a_client_certificate_the_handshake_fails_and_says_why(
    conax, subscribe, conax_ws_simulator, pki
):
    connect(conax, conax_ws_simulator, pki)  # the WSDL is loaded from the CAS: it fails there
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error == (
        f"Attempt 1 failed: The CAS requires a TLS client certificate loading the WSDL "
        f"{conax_ws_simulator.wsdl_url} (tlsv13 alert certificate required) and the provider has none; "
        "set the TLS client certificate and key files. Gave up after 1 attempts."
    )
    assert conax_ws_simulator.state.received == []


def test_a_client_certificate_of_another_authority_is_refused_and_says_why(
    conax, subscribe, conax_ws_simulator, pki
):
    # The shipped WSDL, so that the refusal comes at the first call.
    connect(
        conax,
        conax_ws_simulator,
        pki,
        certificate=pki.stranger,
        wsdl_url="",
        endpoint_url=conax_ws_simulator.url,
    )
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error == (
        "Attempt 1 failed: The CAS refused our TLS client certificate for CreatePairing "
        "(tlsv1 alert unknown ca); it must be issued by an authority the CAS trusts, and "
        "valid. Gave up after 1 attempts."
    )
    assert conax_ws_simulator.state.received == []


def test_a_cas_certificate_we_cannot_verify_is_never_trusted(
    conax, subscribe, conax_ws_simulator, pki
):
    # The other authority's bundle does not vouch for the CAS's certificate.
    connect(conax, conax_ws_simulator, pki, certificate=pki.client)
    conax.provider.connection["server_ca_bundle_path"] = str(pki.other_authority.path)
    conax.provider.save()
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    reason, because = pairing.last_error.split(" (", 1)
    assert reason == (
        "Attempt 1 failed: The CAS's TLS server certificate could not be verified loading the "
        f"WSDL {conax_ws_simulator.wsdl_url}"
    )
    # OpenSSL's words for why (here: the CAS sent its authority along, which we do not trust).
    assert because.endswith(
        "); set the CA bundle of the authority that signed it in the provider's connection. "
        "Gave up after 1 attempts."
    )


def test_a_cas_certificate_for_another_host_is_refused(
    conax, subscribe, pki, tmp_path, monkeypatch
):
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    elsewhere = pki.authority.issue(tmp_path, "elsewhere", server=True, hosts=["cas.example.net"])
    sim = Simulator("crm", CONAX_WS_PASSWORD, tls=TLS(*elsewhere)).start()
    try:
        connect(conax, sim, pki, certificate=pki.client)
        sub = subscribe("AGRICULTURE")
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


def test_unusable_certificate_files_are_named(conax, subscribe, conax_ws_simulator, pki, tmp_path):
    certificate, _key = pki.client
    _stranger, stranger_key = pki.stranger
    connect(
        conax, conax_ws_simulator, pki, certificate=(certificate, str(tmp_path / "missing.key"))
    )
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    assert Req.objects.get(subscription=sub, command="CREATE_PAIRING").last_error == (
        f"Attempt 1 failed: The TLS client key file {tmp_path / 'missing.key'} is missing or "
        "unreadable on this worker. Gave up after 1 attempts."
    )
    connect(conax, conax_ws_simulator, pki, certificate=(certificate, stranger_key))
    other = subscribe("AGRICULTURE")
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
        "password_env": CONAX_WS_PASSWORD_ENV,
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
