"""The Irdeto KMS simulator at the edges of ``protocol.py``, spoken to over HTTP as a client
other than ours would: tokens and their expiry, repeats, refusals with their codes, bodies that
are not JSON, messages in each text mode, the nine query sections, the controls, and the command
line serving HTTPS to client certificates and keeping its state."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import requests

from providers.irdeto import protocol
from providers.irdeto.simulator import Simulator
from tests.fixtures import IRDETO_SECRET, IRDETO_SECRET_ENV

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def kms():
    sim = Simulator("crm", IRDETO_SECRET, known_devices=["SC-1"]).start()
    yield sim
    sim.stop()


def token(sim, secret=IRDETO_SECRET, **form) -> requests.Response:
    return requests.post(
        sim.token_url,
        data=form or {"grant_type": "client_credentials"},
        auth=("crm", secret),
        timeout=5,
    )


def bearer(sim) -> dict:
    return {"Authorization": f"Bearer {token(sim).json()['access_token']}"}


def post(sim, command: str, body, headers=None, **call) -> requests.Response:
    """``command``'s path with ``body`` (a dict or raw bytes)."""
    url = sim.url + protocol.API_PREFIX + protocol.PATHS[command]
    headers = headers if headers is not None else bearer(sim)
    if isinstance(body, bytes):
        return requests.post(url, data=body, headers=headers, timeout=5)
    return requests.post(url, json=body, headers=headers, timeout=5)


def send(sim, command: str, request_id: str, parameters: dict, headers=None):
    call = protocol.call_for(command, request_id, parameters, NOW)
    return post(sim, command, call.body, headers)


def entitle(sim, request_id, product="AF1", device="SC-1", headers=None):
    params = {"card_ca_id": device, "service_ca_id": product}
    return send(sim, protocol.ADD_ENTITLEMENT, request_id, params, headers)


def error(reply) -> tuple[int, str, str]:
    found = reply.json()["error"]
    return reply.status_code, found["code"], found["message"]


# --- Tokens -----------------------------------------------------------------------------------


def test_a_token_for_our_credentials_only(kms):
    answer = token(kms)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert token(kms, "wrong").status_code == 401
    assert token(kms, "wrong").json() == {"error": "invalid_client"}
    assert token(kms, grant_type="password").json() == {"error": "unsupported_grant_type"}
    unsigned = requests.post(kms.token_url, data={"grant_type": "client_credentials"}, timeout=5)
    assert unsigned.status_code == 401


def test_every_call_wants_a_live_token(kms):
    assert entitle(kms, "r1", headers={}).status_code == 401
    assert entitle(kms, "r2", headers={"Authorization": "Bearer made-up"}).status_code == 401
    headers = bearer(kms)
    assert entitle(kms, "r3", headers=headers).status_code == 200
    requests.post(f"{kms.url}/control/expire-tokens", timeout=5)
    revoked = entitle(kms, "r4", headers=headers)
    assert revoked.status_code == 401
    assert revoked.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    # Refused before it reached the KMS: neither applied nor counted.
    assert kms.state.requests == {"r3": 1}


def test_a_token_expires_after_its_time():
    sim = Simulator("crm", IRDETO_SECRET, known_devices=["SC-1"], token_ttl=0.5).start()
    try:
        headers = bearer(sim)
        assert token(sim).json()["expires_in"] == 0.5
        assert entitle(sim, "r1", headers=headers).status_code == 200
        time.sleep(0.6)
        assert entitle(sim, "r2", headers=headers).status_code == 401
    finally:
        sim.stop()


# --- Repeats ----------------------------------------------------------------------------------


def test_a_request_id_is_applied_once_and_a_repeat_answered_as_the_first(kms):
    first, again = entitle(kms, "r1"), entitle(kms, "r1")
    assert first.json() == {
        "requestId": "r1",
        "secureClientId": "SC-1",
        "productId": "AF1",
        "duplicate": False,
    }
    assert again.json() == {**first.json(), "duplicate": True}
    assert kms.state.requests == {"r1": 2} and kms.state.duplicates == 1
    # A refusal is repeated too, with the same code.
    params = {"card_ca_id": "SC-NOBODY", "service_ca_id": "AF1"}
    refused = [send(kms, protocol.ADD_ENTITLEMENT, "r2", params) for _ in range(2)]
    assert [error(r)[:2] for r in refused] == [(404, "UNKNOWN_SECURE_CLIENT")] * 2
    assert [r.json()["duplicate"] for r in refused] == [False, True]
    # The same id for another call is a mistake the KMS names.
    reused = send(kms, protocol.REAUTHORIZE_SECTOR, "r1", {"device_ca_id": "SC-1"})
    assert error(reused) == (
        400,
        "INVALID_REQUEST",
        "requestId r1 was already used for ADD_ENTITLEMENT.",
    )


# --- Refusals ---------------------------------------------------------------------------------


def test_refusals_carry_the_protocol_codes(kms):
    assert error(entitle(kms, "r1", device="SC-9")) == (
        404,
        "UNKNOWN_SECURE_CLIENT",
        "Secure client SC-9 is unknown to the KMS.",
    )
    missing = post(kms, protocol.ADD_ENTITLEMENT, {"requestId": "r2", "secureClientId": "SC-1"})
    assert error(missing) == (400, "INVALID_REQUEST", "productId is missing.")
    bad_date = {"requestId": "r3", "secureClientId": "SC-1", "productId": "AF1", "start": "soon"}
    assert error(post(kms, protocol.ADD_ENTITLEMENT, bad_date)) == (
        400,
        "INVALID_REQUEST",
        "start is not a date and time: 'soon'.",
    )
    removal = {"card_ca_id": "SC-1", "service_ca_id": "EFA2"}
    assert error(send(kms, protocol.REMOVE_ENTITLEMENT, "r4", removal)) == (
        409,
        "NOT_ENTITLED",
        "Secure client SC-1 holds no entitlement to EFA2.",
    )
    pin = {"device_ca_id": "SC-1", "pin": "12a4"}
    assert error(send(kms, protocol.SET_PARENTAL_PIN, "r5", pin)) == (
        422,
        "INVALID_PIN",
        "A parental PIN is 4 digits.",
    )
    long = {"device_ca_id": "SC-1", "text_mode": protocol.RAW, "payload_hex": "41" * 1001}
    assert error(send(kms, protocol.SEND_MAIL, "r6", long)) == (
        422,
        "PAYLOAD_TOO_LONG",
        "The payload is 1001 bytes; at most 1000 fit.",
    )
    mode = {"device_ca_id": "SC-1", "text_mode": "EBCDIC", "payload_hex": "41"}
    assert error(send(kms, protocol.SEND_MAIL, "r7", mode))[2] == (
        "textMode 'EBCDIC' is not one of ANSI, UNICODE, RAW."
    )
    assert kms.client("SC-1")["mailbox"] == [] and kms.client("SC-1")["pin"] == "0000"


def test_a_body_that_is_not_a_json_object_is_refused_unread(kms):
    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    for body in (dtd, b'{"requestId": "r1", ', "é".encode("latin-1")):
        status, code, message = error(post(kms, protocol.ADD_ENTITLEMENT, body))
        assert (status, code) == (400, "INVALID_REQUEST")
        assert message.startswith("The body is not JSON:")
    assert error(post(kms, protocol.ADD_ENTITLEMENT, b"[1, 2]")) == (
        400,
        "INVALID_REQUEST",
        "The body is no object.",
    )
    assert error(post(kms, protocol.ADD_ENTITLEMENT, {"secureClientId": "SC-1"})) == (
        400,
        "INVALID_REQUEST",
        "requestId is missing.",
    )
    assert kms.state.requests == {}
    unknown_path = requests.post(
        f"{kms.url}{protocol.API_PREFIX}entitlements/grant", json={}, headers=bearer(kms), timeout=5
    )
    assert (unknown_path.status_code, unknown_path.text) == (404, "Not found")


# --- Messages, PIN, sector, query ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "text", "shown"),
    [
        (protocol.ANSI, "Your bill: 12 €", "Your bill: 12 €"),
        (protocol.UNICODE, "Καλησπέρα 📺", "Καλησπέρα 📺"),
        (protocol.RAW, "1B 5B 41", "1B 5B 41"),
    ],
)
def test_mail_is_decoded_in_its_text_mode(kms, mode, text, shown):
    hex_payload = protocol.payload(mode, text).hex()
    params = {"device_ca_id": "SC-1", "text_mode": mode, "payload_hex": hex_payload}
    answer = send(kms, protocol.SEND_MAIL, "m1", params)
    assert answer.json()["broadcast"] is False
    (mail,) = kms.client("SC-1")["mailbox"]
    assert (mail["request_id"], mail["text_mode"], mail["text"]) == ("m1", mode, shown)


def test_a_screen_message_without_a_device_goes_to_everyone(kms):
    payload = protocol.payload(protocol.ANSI, "Maintenance tonight").hex()
    params = {"text_mode": protocol.ANSI, "payload_hex": payload}
    answer = send(kms, protocol.SEND_SCREEN_MESSAGE, "b1", params)
    assert answer.json() == {
        "requestId": "b1",
        "secureClientId": None,
        "broadcast": True,
        "duplicate": False,
    }
    (shown,) = kms.state.broadcasts["screen"]
    assert shown["text"] == "Maintenance tonight"
    assert kms.client("SC-1")["screen"] == []


def test_pin_and_sector_reauthorization(kms):
    answer = send(kms, protocol.SET_PARENTAL_PIN, "p1", {"device_ca_id": "SC-1", "pin": "4321"})
    assert "4321" not in answer.text  # the PIN never comes back
    assert kms.client("SC-1")["pin"] == "4321"
    for n in (1, 2):
        sector = send(kms, protocol.REAUTHORIZE_SECTOR, f"s{n}", {"device_ca_id": "SC-1"})
        assert sector.json()["sector"]["reauthorizations"] == n
    held = kms.client("SC-1")["sector"]
    assert held["authorized"] and held["reauthorizedAt"]


def test_query_answers_all_nine_sections_from_the_state(kms):
    devices = [{"kind": "smartcard", "ca_id": "SC-2"}, {"kind": "stb", "ca_id": "STB-2"}]
    send(kms, protocol.PAIR_SECURE_CLIENTS, "pair", {"devices": devices})
    entitle(kms, "e1", device="SC-2")
    first = send(kms, protocol.QUERY_SECURE_CLIENT, "q1", {"device_ca_id": "SC-2"}).json()
    sections = first["sections"]
    assert list(sections) == list(protocol.QUERY_SECTIONS)
    assert sections["basic"]["kind"] == "smartcard"
    assert sections["pairing"]["smartcards"] == ["SC-2"] and sections["pairing"]["stbs"] == [
        "STB-2"
    ]
    assert [(e["productId"], e["active"]) for e in sections["entitlements"]] == [("AF1", True)]
    assert sections["anchoring"] == {"anchored": True, "anchorSecureClientId": "SC-2"}
    assert sections["device_domain"]["members"] == ["SC-2", "STB-2"]
    box = send(kms, protocol.QUERY_SECURE_CLIENT, "q2", {"device_ca_id": "STB-2"}).json()
    assert box["sections"]["basic"]["kind"] == "stb" and box["sections"]["pvr"]["enabled"]
    # A query changes nothing: asked again, it is answered afresh, not as a repeat.
    again = send(kms, protocol.QUERY_SECURE_CLIENT, "q1", {"device_ca_id": "SC-2"}).json()
    assert again == first
    some = {"requestId": "q3", "secureClientId": "SC-2", "sections": ["pvr", "gps"]}
    assert error(post(kms, protocol.QUERY_SECURE_CLIENT, some))[2].startswith(
        "sections: gps is not a section"
    )


# --- Controls ---------------------------------------------------------------------------------


def test_controls_register_reject_and_report(kms):
    control = f"{kms.url}/control"
    requests.post(f"{control}/register", params={"devices": "STB-7", "kind": "stb"}, timeout=5)
    assert kms.client("STB-7")["kind"] == "stb"
    requests.post(f"{control}/reject", params={"devices": "SC-1"}, timeout=5)
    assert error(entitle(kms, "r1")) == (409, "REFUSED_BY_KMS", "Secure client SC-1 is blocked.")
    requests.post(f"{control}/reject", params={"share": "1"}, timeout=5)
    assert error(entitle(kms, "r2", device="STB-7"))[1] == "REFUSED_BY_KMS"
    requests.post(f"{control}/reject", timeout=5)
    assert entitle(kms, "r3").status_code == 200
    headers = bearer(kms)
    requests.post(f"{control}/down", timeout=5)
    assert entitle(kms, "r4", headers=headers).status_code == 503
    assert token(kms).status_code == 503
    requests.post(f"{control}/up", timeout=5)
    state = requests.get(f"{control}/state", timeout=5).json()
    assert state["requests"] == {"r1": 1, "r2": 1, "r3": 1}
    assert [r["request_id"] for r in state["received"]] == ["r1", "r2", "r3"]
    log = requests.get(f"{control}/received", params={"clear": "1"}, timeout=5).json()
    assert [i for i, _at in log] == ["r1", "r2", "r3"]
    assert requests.get(f"{control}/received", timeout=5).json() == []
    entitle(kms, "r5")
    assert requests.delete(f"{control}/received", timeout=5).json() == {"cleared": 1}
    requests.post(f"{control}/clear", timeout=5)
    assert requests.get(f"{control}/state", timeout=5).json()["clients"] == {}


# --- The command line ---------------------------------------------------------------------------


def test_the_command_line_serves_https_to_client_certificates_and_saves_on_exit(
    pki, tmp_path, monkeypatch
):
    monkeypatch.setenv(IRDETO_SECRET_ENV, IRDETO_SECRET)
    state_file = tmp_path / "kms.json"
    certificate, key = pki.server
    arguments = [
        sys.executable,
        "manage.py",
        "cas_simulator",
        "irdeto",
        "--port",
        "0",
        "--client-id",
        "crm",
        "--client-secret-env",
        IRDETO_SECRET_ENV,
        "--device",
        "SC-1",
        "--token-ttl",
        "60",
        "--state-file",
        str(state_file),
        "--tls-cert",
        certificate,
        "--tls-key",
        key,
        "--client-ca",
        str(pki.authority.path),
    ]
    process = subprocess.Popen(
        arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        banner = process.stdout.readline()
        found = re.search(r"on (https://127\.0\.0\.1:\d+)/kms/v1/", banner)
        assert found, banner + process.stderr.read()
        url = found.group(1)
        tls = {"cert": pki.client, "verify": str(pki.authority.path)}
        issued = requests.post(
            url + protocol.OAUTH_PATH,
            data={"grant_type": "client_credentials"},
            auth=("crm", IRDETO_SECRET),
            timeout=5,
            **tls,
        ).json()
        assert issued["expires_in"] == 60
        call = protocol.call_for(
            protocol.ADD_ENTITLEMENT, "r1", {"card_ca_id": "SC-1", "service_ca_id": "AF1"}, NOW
        )
        answer = requests.post(
            url + protocol.API_PREFIX + call.path,
            json=call.body,
            headers={"Authorization": f"Bearer {issued['access_token']}"},
            timeout=5,
            **tls,
        )
        assert answer.json()["duplicate"] is False
        with pytest.raises(requests.exceptions.SSLError, match="certificate required"):
            requests.get(f"{url}/control/state", verify=str(pki.authority.path), timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    saved = json.loads(state_file.read_text())
    assert saved["clients"]["SC-1"]["entitlements"]["AF1"]["start"] == NOW.isoformat()
    assert saved["answered"]["r1"]["status"] == 200


def test_the_command_line_wants_its_secret(monkeypatch):
    monkeypatch.delenv("CRM_SECRET_IRDETO_UNSET", raising=False)
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "cas_simulator",
            "irdeto",
            "--port",
            "0",
            "--client-secret-env",
            "CRM_SECRET_IRDETO_UNSET",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Set the client secret in $CRM_SECRET_IRDETO_UNSET" in done.stderr
