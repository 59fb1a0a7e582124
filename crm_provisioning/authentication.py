"""People's API tokens: DRF's ``TokenAuthentication``, its one look-up by hand-written SQL.

Compiling ``Token.objects.select_related("user").get(key=…)`` through the ORM on every call
cost a real-time action more than the action's own statements; the hand-written query reads
the same rows (the token's user, and the token's creation time) through the same converters
(``crm_provisioning.rawsql``) and says the same on failure.
"""

from functools import cache

from django.contrib.auth.models import User
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from crm_provisioning import rawsql


@cache
def _sql() -> str:
    return (
        f"SELECT {rawsql.columns(User, 'u')}, t.created "  # noqa: S608 (names and placeholders only)
        f"FROM {rawsql.table(Token)} t JOIN {rawsql.table(User)} u ON u.id = t.user_id "
        "WHERE t.key = %s"
    )


class PersonTokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        with connection.cursor() as cursor:
            cursor.execute(_sql(), [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = rawsql.instance(User, row[:-1])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        created = rawsql.convert(Token._meta.get_field("created"), row[-1])
        return user, Token(key=key, user=user, created=created)
