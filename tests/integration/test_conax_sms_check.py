"""Conax SMS's health check against the SFTP simulator: log in and list the upload directory."""

import pytest

from providers import registry
from providers.conax_sms.simulator import UPLOAD_DIR
from tests.fixtures import CONAX_SMS_PASSWORD_ENV, conax_sms_connection


@pytest.mark.parametrize("protocol", ["sftp", "ftp"])
def test_conax_sms_logs_in_and_lists_the_upload_directory(sms, conax_sms_simulator, protocol):
    sms.connection = conax_sms_connection(conax_sms_simulator, protocol)
    sms.save()
    health = registry.adapter_for(sms).check()
    assert health.ok, health.message
    assert health.message == (
        f"Logged in over {protocol.upper()} at {conax_sms_simulator.host} and listed /{UPLOAD_DIR} (0 files)."
    )


def test_conax_sms_refusing_our_password(sms, monkeypatch):
    monkeypatch.setenv(CONAX_SMS_PASSWORD_ENV, "not-the-password")
    health = registry.adapter_for(sms).check()
    assert not health.ok
    assert health.message.startswith("Conax SMS cannot be reached (authentication refused): ")
