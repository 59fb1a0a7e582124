"""Conax SMS over FTPS (explicit TLS): the simulator's FTPS server with a throwaway CA; the
export and the error handling go through it with the server's certificate verified, and a
certificate the provider does not trust is refused with a clear error."""

import pytest

from providers import provider_settings
from providers.conax_sms import transport
from providers.conax_sms.files import PIPELINE
from providers.conax_sms.simulator import Simulator
from providers.file_delivery import export, responses
from providers.models import ProvisioningRequest, TransferFile
from providers.registry import TransportError
from runs import services
from runs.models import ProcessRun, RunDefinition
from tests.fixtures import CONAX_SMS_PASSWORD, conax_sms_connection, out_files, request_files
from tests.integration.test_conax_sms_export import bulk_requests

Req = ProvisioningRequest


@pytest.fixture
def ftps(tmp_path):
    """The simulator with only its FTPS server; its CA made for this test alone."""
    sim = Simulator(
        tmp_path / "tls",
        password=CONAX_SMS_PASSWORD,
        sftp_port=None,
        ftp_port=None,
        ftps_port=0,
        key_dir=tmp_path / "tls-keys",
        poll_interval=None,
    )
    with sim:
        yield sim


def on(provider, sim, **changes) -> None:
    provider.connection = {**conax_sms_connection(sim, "ftps"), **changes}
    provider_settings.full_clean(provider)
    provider.save()


def test_export_and_responses_over_ftps_with_the_certificate_verified(sms, ftps):
    on(sms, ftps)
    bulk_requests(sms, 5, express_every=5)

    result = export.export(PIPELINE, sms)
    ftps.cas.run_once()
    answered = responses.process_responses(PIPELINE, sms)

    (file,) = out_files(sms)
    assert result.uploaded == [file.name]
    assert ftps.cas.deliveries == {file.name: 1}
    assert (answered.files, answered.completed, answered.problems) == (1, 5, [])
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    file.refresh_from_db()
    assert file.state == TransferFile.State.ANSWERED
    assert len(ftps.cas.received) == 5


def test_the_certificate_is_checked_against_the_configured_ca(sms, ftps, tmp_path):
    other_ca = Simulator(
        tmp_path / "other",
        sftp_port=None,
        ftp_port=None,
        ftps_port=0,
        key_dir=tmp_path / "other-keys",
        poll_interval=None,
    ).tls_ca_certificate
    assert other_ca != ftps.tls_ca_certificate
    on(sms, ftps, tls_ca_certificate=other_ca)
    bulk_requests(sms, 2)

    with pytest.raises(transport.CertificateRefused) as refused:
        export.export(PIPELINE, sms)

    assert str(refused.value) == (
        f"The FTPS server 127.0.0.1:{ftps.ftps_port} presented a certificate that could not be "
        "verified (unable to get local issuer certificate). Refusing to connect: if the "
        "server's certificate or CA changed on purpose, put the CA in the provider's "
        "connection settings."
    )
    assert refused.value.permanent
    assert request_files(ftps) == {}

    # As a run: Failed with the reason; nothing sent.
    definition = RunDefinition.objects.create(
        name="Export", run_type="conax_sms_export_files", provider=sms
    )
    run = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    assert run.status == ProcessRun.Status.FAILED
    assert "could not be verified" in run.message


def test_without_a_configured_ca_the_systems_cas_decide(sms, ftps):
    """No CA in the settings does not mean no check: the simulator's private CA is not one
    the system trusts, so the server is refused."""
    on(sms, ftps, tls_ca_certificate="")
    bulk_requests(sms, 1)

    with pytest.raises(transport.CertificateRefused, match="could not be verified"):
        export.export(PIPELINE, sms)


def test_the_host_name_is_checked_too(sms, tmp_path):
    # The certificate names localhost and 127.0.0.1, not 127.0.0.2 (still this machine).
    elsewhere = Simulator(
        tmp_path / "elsewhere",
        host="127.0.0.2",
        password=CONAX_SMS_PASSWORD,
        sftp_port=None,
        ftp_port=None,
        ftps_port=0,
        key_dir=tmp_path / "keys",
        poll_interval=None,
    )
    with elsewhere:
        on(sms, elsewhere)
        bulk_requests(sms, 1)

        with pytest.raises(transport.CertificateRefused, match="IP address mismatch"):
            export.export(PIPELINE, sms)


def test_a_ca_setting_that_is_not_a_certificate_is_refused_by_the_form(sms, ftps):
    from django.core.exceptions import ValidationError

    sms.connection = {
        **conax_sms_connection(ftps, "ftps"),
        "tls_ca_certificate": "not a certificate",
    }
    with pytest.raises(ValidationError, match=r"tls_ca_certificate: Not a PEM certificate\."):
        provider_settings.full_clean(sms)


def test_plain_ftp_is_not_let_in_to_the_ftps_server(sms, ftps):
    on(sms, ftps, protocol="ftp")
    bulk_requests(sms, 1)

    with pytest.raises(TransportError, match="refused the login"):
        export.export(PIPELINE, sms)
