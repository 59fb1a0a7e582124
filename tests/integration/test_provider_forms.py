"""A provider's page: its type's settings as form fields, saved as the same JSON, and Test
connection against the real simulators."""

import pytest
from django.contrib.messages import get_messages

from catalogue.models import Provider
from monitoring.models import ProviderHealth
from tests.fixtures import CONAX_WS_PASSWORD_ENV, IRDETO_SECRET_ENV


def change_url(provider) -> str:
    return f"/admin/catalogue/provider/{provider.pk}/change/"


def check_url(provider) -> str:
    return f"/admin/catalogue/provider/{provider.pk}/test-connection/"


def form_data(provider, **settings) -> dict:
    """The provider's page as the back office posts it: every setting a field of its own."""
    data = {
        "name": provider.name,
        "type": provider.type,
        "enabled": "on",
        "external_system": provider.external_system_id or "",
    }
    for group in ("connection", "parameters"):
        for name, value in getattr(provider, group).items():
            data[f"{group}__{name}"] = "" if value is None else value
    data.update(settings)
    return data


def shown(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_the_conax_ws_page_shows_its_settings_as_fields(client, operator, conax):
    client.force_login(operator)
    page = client.get(change_url(conax.provider)).content.decode()
    assert 'name="connection__wsdl_url"' in page
    assert "WSDL location" in page  # the field's label
    assert "Password variable" in page
    assert f'value="{CONAX_WS_PASSWORD_ENV}"' in page  # the variable's name, never a secret
    assert 'name="connection__timeout_seconds"' in page and "From 1 to 300." in page
    assert 'name="parameters__max_attempts"' in page and 'max="50"' in page
    assert 'name="connection"' not in page  # no raw JSON box


def test_editing_conax_ws_saves_the_same_json(client, operator, conax):
    provider = conax.provider
    client.force_login(operator)
    response = client.post(
        change_url(provider),
        form_data(
            provider,
            connection__timeout_seconds="7",
            connection__password_env="CRM_SECRET_OTHER",
            parameters__max_attempts="5",
        ),
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    provider.refresh_from_db()
    assert provider.connection["timeout_seconds"] == 7
    assert provider.connection["password_env"] == "CRM_SECRET_OTHER"
    assert provider.parameters == {"max_attempts": 5}


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("parameters__max_attempts", "51", "Ensure this value is less than or equal to 50."),
        ("connection__timeout_seconds", "0", "Ensure this value is greater than or equal to 1."),
        ("connection__password_env", "hunter2", "not the secret itself"),
        ("connection__password_env", "SECRET_KEY", "is not a secret variable this deployment"),
    ],
)
def test_a_wrong_conax_ws_setting_is_shown_on_its_field(
    client, operator, conax, field, value, error
):
    provider = conax.provider
    before = (dict(provider.connection), dict(provider.parameters))
    client.force_login(operator)
    response = client.post(change_url(provider), form_data(provider, **{field: value}))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == [field]
    assert error in " ".join(form.errors[field])
    provider.refresh_from_db()
    assert (provider.connection, provider.parameters) == before


def test_settings_that_go_together_are_said_above_the_form(client, operator, conax):
    client.force_login(operator)
    response = client.post(
        change_url(conax.provider),
        form_data(conax.provider, connection__wsdl_url="", connection__endpoint_url=""),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "Connection: Give the WSDL location or the endpoint URL (the shipped WSDL is then used)."
    ]


def test_editing_irdeto(client, administrator, irdeto):
    provider = irdeto.provider
    client.force_login(administrator)
    page = client.get(change_url(provider)).content.decode()
    assert ">Client id:<" in page and ">Default pin:<" in page  # labels of the type's form
    assert "empty: &lt;endpoint URL&gt;/oauth/token." in page  # help shown as text
    wrong = client.post(change_url(provider), form_data(provider, parameters__default_pin="12"))
    assert wrong.context["adminform"].form.errors == {
        "parameters__default_pin": ["A PIN is exactly 4 digits."]
    }
    response = client.post(
        change_url(provider),
        form_data(
            provider,
            connection__client_secret_env=IRDETO_SECRET_ENV,
            parameters__default_pin="4321",
        ),
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.parameters == {"default_pin": "4321", "max_attempts": 3}
    assert provider.connection["client_secret_env"] == IRDETO_SECRET_ENV


def test_adding_a_provider_picks_the_type_first(client, operator, conax_ws_simulator):
    client.force_login(operator)
    blank = client.get("/admin/catalogue/provider/add/").content.decode()
    assert "Pick the provider type" in blank and "connection__" not in blank
    picked = client.get("/admin/catalogue/provider/add/?type=conax_ws").content.decode()
    assert 'name="connection__username"' in picked
    assert 'value="10"' in picked  # the declared default timeout
    response = client.post(
        "/admin/catalogue/provider/add/?type=conax_ws",
        {
            "name": "New CAS",
            "type": "conax_ws",
            "enabled": "on",
            "external_system": "",
            "connection__wsdl_url": conax_ws_simulator.wsdl_url,
            "connection__username": "crm",
            "connection__password_env": CONAX_WS_PASSWORD_ENV,
            "connection__timeout_seconds": "10",
            "parameters__max_attempts": "8",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    provider = Provider.objects.get(name="New CAS")
    assert provider.connection["wsdl_url"] == conax_ws_simulator.wsdl_url
    assert provider.connection["password_env"] == CONAX_WS_PASSWORD_ENV
    assert provider.parameters == {"max_attempts": 8}


# --- Test connection ----------------------------------------------------------------------------


def pressed(client, user, provider) -> tuple[str, str]:
    client.force_login(user)
    response = client.post(check_url(provider), follow=True)
    assert response.redirect_chain[-1][0] == change_url(provider)
    [said] = shown(response)
    return said


def test_conax_ws_answers_the_test(client, operator, conax):
    level, message = pressed(client, operator, conax.provider)
    assert level == "success"
    assert message.startswith("Test connection OK: The CAS at 127.0.0.1:")
    health = ProviderHealth.objects.get(provider=conax.provider)
    assert health.reachable is True and health.message in message


def test_conax_ws_down_says_what_failed(client, operator, conax, conax_ws_simulator):
    conax_ws_simulator.state.controls.down = True
    level, message = pressed(client, operator, conax.provider)
    assert level == "error"
    assert "Test connection failed: Conax WS" in message
    assert "HTTP 503" in message
    assert ProviderHealth.objects.get(provider=conax.provider).reachable is False


def test_conax_ws_with_a_wrong_password_says_so(client, operator, conax, monkeypatch):
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, "not-the-password")
    level, message = pressed(client, operator, conax.provider)
    assert level == "error"
    assert "refused our credentials" in message


def test_irdeto_answers_and_fails_the_test(client, administrator, irdeto, irdeto_simulator):
    level, message = pressed(client, administrator, irdeto.provider)
    assert (level, message.split(":")[0]) == ("success", "Test connection OK")
    irdeto_simulator.state.controls.down = True
    level, message = pressed(client, administrator, irdeto.provider)
    assert level == "error"
    assert "HTTP 503" in message
    assert ProviderHealth.objects.get(provider=irdeto.provider).reachable is False


def test_an_agent_cannot_test_a_connection(client, agent, conax):
    client.force_login(agent)
    assert client.post(check_url(conax.provider)).status_code == 403
    assert not ProviderHealth.objects.exists()
