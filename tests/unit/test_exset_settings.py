"""EXSET SMS settings: the SMS database's URL (never with a password), the password's
variable, the TQUEUE table's name, and the operation parameters with their ranges."""

import pytest
from django.core.exceptions import ValidationError

from catalogue.models import Provider
from providers import provider_settings
from providers.exset import tqueue


def exset(connection=None, parameters=None) -> Provider:
    return Provider(
        name="EXSET", type="exset", connection=connection or {}, parameters=parameters or {}
    )


def errors(connection=None, parameters=None) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as err:
        provider_settings.full_clean(exset(connection, parameters))
    return err.value.message_dict


def test_defaults_fill_in_and_a_url_without_password_is_kept(db):
    p = exset(
        {"database_url": "postgresql://exset@sms-db:5432/sms", "password_env": "CRM_SECRET_EXSET"}
    )
    provider_settings.full_clean(p)
    assert p.connection == {
        "database_url": "postgresql://exset@sms-db:5432/sms",
        "password_env": "CRM_SECRET_EXSET",
        "table": "TQUEUE",
    }
    assert p.parameters == {
        "max_records_per_file": 20000,
        "renewal_days": 30,
        "answer_deadline_hours": 24,
    }


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://exset:s3cret@sms-db:5432/sms",
        "mysql://root:s3cret@127.0.0.1:3306/sms",
        "mariadb://:s3cret@127.0.0.1/sms",
    ],
)
def test_a_url_holding_a_password_is_refused_without_repeating_it(db, url):
    (message,) = errors({"database_url": url})["connection"]
    assert message == (
        "database_url: The SMS database URL holds a password: remove it from the URL and name "
        "the environment variable holding it in Password variable."
    )
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "This field is required."),
        ("oracle://exset@sms-db/sms", "must start with postgresql://, mysql://"),
        ("postgresql://exset@sms-db", "names a server and a database"),
        ("mysql://sms-db:port/sms", "port is not a number"),
        ("postgresql://exset@sms-db/sms?sslmode=disable", "takes no options"),
        ("sqlite://", "An SQLite URL names a file"),
    ],
)
def test_a_bad_url_is_refused_with_the_reason(db, url, says):
    (message,) = errors({"database_url": url})["connection"]
    assert message.startswith("database_url: ") and says in message


@pytest.mark.parametrize("table", ["TQUEUE; DROP TABLE x", "1QUEUE", 'TQ"UEUE', "sms.TQUEUE", ""])
def test_the_table_is_a_plain_sql_name(db, table):
    connection = {"database_url": "sqlite:///var/exset/tqueue.sqlite3", "table": table}
    (message,) = errors(connection)["connection"]
    if table == "":
        assert message == "table: This field is required."
        return
    assert message == (
        f"table: {table!r} is not a plain SQL table name: letters, digits and _, not starting "
        "with a digit, at most 63 characters."
    )


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [("renewal_days", 365, 366), ("max_records_per_file", 1, 0), ("answer_deadline_hours", 1, 0)],
)
def test_parameter_ranges(db, name, good, bad):
    connection = {"database_url": "sqlite:///var/exset/tqueue.sqlite3"}
    provider_settings.full_clean(exset(connection, {name: good}))
    (message,) = errors(connection, {name: bad})["parameters"]
    assert message.startswith(f"{name}: Ensure this value is")


def test_the_former_url_variable_setting_is_named_unknown(db):
    connection = {"database_url_env": "CRM_SECRET_EXSET_URL"}
    assert errors(connection)["connection"] == [
        "database_url: This field is required.",
        "database_url_env: Unknown setting 'database_url_env' for this provider type.",
    ]


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("postgresql://exset@sms-db/sms", "PostgreSQL database sms at sms-db:5432"),
        ("mysql://root@127.0.0.1/sms", "MySQL database sms at 127.0.0.1:3306"),
        ("sqlite:///var/exset/tqueue.sqlite3", "SQLite database var/exset/tqueue.sqlite3"),
        ("sqlite:////srv/exset/tqueue.sqlite3", "SQLite database /srv/exset/tqueue.sqlite3"),
    ],
)
def test_messages_name_the_database(url, label):
    assert tqueue.parse_url(url).label == label
