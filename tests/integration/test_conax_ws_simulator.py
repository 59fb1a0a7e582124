"""The Conax WS CAS simulator as the benchmark and the demo use it: the log of received
request ids with their arrival times, the state file written in the background (not once per
request) and on exit, and the command line serving HTTPS with client certificates."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests

from providers import provider_settings
from providers.conax_ws import client
from providers.conax_ws.cas_state import SAVE_EVERY
from providers.conax_ws.simulator import Simulator
from tests.fixtures import (
    CONAX_WS_PASSWORD,
    CONAX_WS_PASSWORD_ENV,
    card_of,
    conax_ws_connection,
    deliver,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


def test_received_lists_each_request_id_with_its_arrival_time(conax, subscribe, conax_ws_simulator):
    received = f"{conax_ws_simulator.url}/control/received"
    sub = subscribe("BUNDLE_A")
    before = time.time()
    assert deliver(conax) == 3
    after = time.time()
    sent = [str(u) for u in sub.provisioning_requests.order_by("pk").values_list("uid", flat=True)]
    log = requests.get(received, timeout=5).json()
    assert [request_id for request_id, _at in log] == sent  # in arrival order
    assert all(before <= at <= after for _id, at in log)
    assert [at for _id, at in log] == sorted(at for _id, at in log)

    # Taken and cleared in one step; then empty, while the CAS keeps its state.
    assert requests.get(received, params={"clear": "1"}, timeout=5).json() == log
    assert requests.get(received, timeout=5).json() == []
    assert conax_ws_simulator.active(card_of(sub)) == ["EFA2", "GFA1"]

    # A repeat is received again; a request answered 503 while down never reached the CAS.
    card = card_of(sub)
    repeat = sent[0]
    client.client_for(conax.provider).call(
        "CreatePairing", RequestId=repeat, CaClientIds={"CaClientId": [card]}
    )
    requests.post(f"{conax_ws_simulator.url}/control/down", timeout=5)
    with pytest.raises(Exception, match="HTTP 503"):
        client.client_for(conax.provider).call(
            "GetActiveSubscriptions", RequestId="while-down", CaClientId=card
        )
    assert [i for i, _at in requests.get(received, timeout=5).json()] == [repeat]
    assert requests.delete(received, timeout=5).json() == {"cleared": 1}
    assert requests.get(received, timeout=5).json() == []


def test_the_state_file_is_written_in_the_background_not_per_request(conax, tmp_path, monkeypatch):
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    path = tmp_path / "cas.json"
    sim = Simulator("crm", CONAX_WS_PASSWORD, known_cards=["CA-1"], state_file=path).start()
    try:
        conax.provider.connection = conax_ws_connection(sim)
        conax.provider.save()
        soap = client.client_for(conax.provider)
        ids = [str(uuid.uuid4()) for _ in range(200)]
        started = time.monotonic()
        for n, request_id in enumerate(ids):
            soap.call(
                "SendMailMessageToClients",
                RequestId=request_id,
                CaClientIds={"CaClientId": ["CA-1"]},
                Message=f"Message {n}",
            )
        elapsed = time.monotonic() - started
        # At most one write per interval (plus the one under way), however many requests came.
        assert sim.state.writes <= elapsed / SAVE_EVERY + 2
    finally:
        sim.stop()  # writes what the last interval left
    saved = json.loads(path.read_text())
    assert len(saved["cards"]["CA-1"]["mailbox"]) == 200
    assert set(saved["answered"]) == set(ids)

    again = Simulator("crm", CONAX_WS_PASSWORD, state_file=path).start()
    try:
        conax.provider.connection = conax_ws_connection(again)
        conax.provider.save()
        answer = client.client_for(conax.provider).call(
            "SendMailMessageToClients",
            RequestId=ids[0],
            CaClientIds={"CaClientId": ["CA-1"]},
            Message="Message 0",
        )
        assert answer["Duplicate"] is True  # remembered across the restart: not shown twice
        assert len(again.state.cards["CA-1"]["mailbox"]) == 200
    finally:
        again.stop()


def test_the_command_line_serves_https_to_client_certificates_and_saves_on_exit(
    conax, subscribe, pki, tmp_path, monkeypatch
):
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    state_file = tmp_path / "cas.json"
    certificate, key = pki.server
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "cas_simulator",
            "conax-ws",
            "--port",
            "0",
            "--password-env",
            CONAX_WS_PASSWORD_ENV,
            "--state-file",
            str(state_file),
            "--tls-cert",
            certificate,
            "--tls-key",
            key,
            "--client-ca",
            str(pki.authority.path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        banner = process.stdout.readline()
        found = re.search(r"on (https://127\.0\.0\.1:\d+)/ca-server/webservices/", banner)
        assert found, banner + process.stderr.read()
        url = found.group(1)
        assert f"client certificates from {pki.authority.path}" in banner
        conax.provider.connection = {
            "wsdl_url": f"{url}/ca-server/webservices/subscription-management?wsdl",
            "username": "crm",
            "password_env": CONAX_WS_PASSWORD_ENV,
            "client_certificate_path": pki.client[0],
            "client_key_path": pki.client[1],
            "server_ca_bundle_path": str(pki.authority.path),
            "timeout_seconds": 5,
        }
        provider_settings.full_clean(conax.provider)
        conax.provider.save()
        sub = subscribe("AGRICULTURE")
        assert deliver(conax) == 2

        log = requests.get(
            f"{url}/control/received",
            cert=pki.client,
            verify=str(pki.authority.path),
            timeout=5,
        ).json()
        sent = sub.provisioning_requests.order_by("pk").values_list("uid", flat=True)
        assert [i for i, _at in log] == [str(u) for u in sent]
        with pytest.raises(requests.exceptions.SSLError, match="certificate required"):
            requests.get(f"{url}/control/received", verify=str(pki.authority.path), timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    saved = json.loads(state_file.read_text())
    assert list(saved["cards"][card_of(sub)]["entitlements"]) == ["AF1"]
