"""Provider settings are validated per provider type, with the ranges SPEC gives."""

import pytest
from django.core.exceptions import ValidationError

from catalogue.models import Distributor, ProductCAId, Provider
from providers import provider_settings


def provider(type_, connection=None, parameters=None):
    return Provider(
        name=f"P-{type_}", type=type_, connection=connection or {}, parameters=parameters or {}
    )


SFTP = {"host": "cas.example.net", "username": "crm", "host_key": "ssh-ed25519 AAAAC3Nza"}


def test_conax_sms_defaults_fill_in_the_operation_parameters(db):
    p = provider("conax_sms", SFTP)
    provider_settings.full_clean(p)
    assert p.parameters == {
        "max_records_per_file": 20000,
        "add_end_period_months": 1,
        "renewal_frequency_months": 1,
        "renew_end_period_months": 1,
        "cancel_end_period_months": 1,
        "answer_deadline_hours": 24,
    }
    assert p.connection["protocol"] == "sftp"


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("add_end_period_months", 36, 37),
        ("renewal_frequency_months", 35, 36),
        ("renew_end_period_months", 36, 37),
        ("cancel_end_period_months", 1, 0),
    ],
)
def test_conax_sms_period_ranges(db, name, good, bad):
    provider_settings.full_clean(provider("conax_sms", SFTP, {name: good}))
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(provider("conax_sms", SFTP, {name: bad}))
    (message,) = err.value.message_dict["parameters"]
    assert message.startswith(f"{name}: Ensure this value is")


def test_unknown_settings_and_missing_host_key_are_named(db):
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(
            provider("conax_sms", {**SFTP, "host_key": ""}, {"colour": "blue"})
        )
    assert err.value.message_dict["connection"] == [
        "host_key: SFTP needs the server's host key to check it."
    ]
    assert err.value.message_dict["parameters"] == [
        "colour: Unknown setting 'colour' for this provider type."
    ]


def test_a_secret_itself_is_refused_where_its_variable_name_belongs(db):
    conn = {"wsdl_url": "http://cas/ws?wsdl", "username": "crm", "password_env": "s3cr3t!pass"}
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(provider("conax_ws", conn))
    assert (
        "password_env: Give the name of an environment variable"
        in (err.value.message_dict["connection"][0])
    )
    conn["password_env"] = "Secret123"  # looks like a password, not a variable name
    with pytest.raises(ValidationError):
        provider_settings.full_clean(provider("conax_ws", conn))
    conn["password_env"] = "CRM_SECRET_CONAX_WS_PASSWORD"
    provider_settings.full_clean(provider("conax_ws", conn))


def test_irdeto_default_pin_is_four_digits(db):
    conn = {
        "endpoint_url": "https://irdeto.example.net",
        "client_id": "crm",
        "client_secret_env": "CRM_SECRET_IRDETO",
    }
    irdeto = provider("irdeto", conn, {"default_pin": "0001"})
    provider_settings.full_clean(irdeto)
    empty = ("token_url", "client_certificate_path", "client_key_path", "server_ca_bundle_path")
    assert irdeto.connection == {**conn, **dict.fromkeys(empty, ""), "timeout_seconds": 10}
    assert irdeto.parameters == {"default_pin": "0001", "max_attempts": 8}
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(provider("irdeto", conn, {"default_pin": "12a4"}))
    assert err.value.message_dict["parameters"] == ["default_pin: A PIN is exactly 4 digits."]


def test_irdeto_connection_names_its_secret_and_tls_files_rightly(db):
    conn = {
        "endpoint_url": "http://irdeto.example.net",
        "client_id": "crm",
        "client_secret_env": "kms-secret-in-clear",
        "client_key_path": "/etc/crm/kms.key",
        "server_ca_bundle_path": "/etc/crm/kms-ca.pem",
    }
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(provider("irdeto", conn))
    problems = err.value.message_dict["connection"]
    assert any(p.startswith("client_secret_env: Give the name of an environment") for p in problems)
    assert "client_certificate_path: A client key needs its certificate." in problems
    assert "server_ca_bundle_path: TLS settings need an https:// endpoint URL." in problems


def test_required_distributors_may_not_form_a_cycle(catalog):
    main, twin3 = catalog.main, catalog.distributors["TWIN3"]
    main.required_distributor = twin3
    with pytest.raises(ValidationError) as err:
        main.full_clean()
    assert err.value.message_dict["required_distributor"] == [
        "Required distributors would form a cycle."
    ]
    other = Provider.objects.create(name="Other", type="generic")
    foreign = Distributor(provider=other, code="MAIN", required_distributor=twin3)
    with pytest.raises(ValidationError) as err:
        foreign.full_clean()
    assert err.value.message_dict["required_distributor"] == [
        "The required distributor must be of the same provider."
    ]


def test_a_bundle_has_no_ca_id_of_its_own(catalog):
    ca = ProductCAId(product=catalog.products["BUNDLE_A"], provider=catalog.provider, ca_id="BA")
    with pytest.raises(ValidationError) as err:
        ca.full_clean()
    assert err.value.message_dict["product"] == [
        "A bundle has no CA ID of its own; give its components CA IDs."
    ]
