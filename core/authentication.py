"""People's API tokens: DRF's ``TokenAuthentication``, its look-up by hand (ADR 0007).

Compiling ``Token.objects.select_related("user").get(key=…)`` through the ORM on every call
cost a real-time action more than the action's own statements; the hand-written query reads
the same rows (the token's user, and the token's creation time) through the same converters
(``core.rawsql``) and says the same on failure. The person's permissions come
in the same statement.
"""

from functools import cache

from django.contrib.auth.models import User
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from core import person_permissions, rawsql


@cache
def _sql() -> str:
    return (
        f"SELECT {rawsql.columns(User, 'u')}, t.created, {person_permissions.sql('u.id')} "  # noqa: S608 (names and placeholders only)
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
        *own, created, permissions = row
        user = rawsql.instance(User, own)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # The role's permissions, read in the same statement: the API's permission check asks
        # for one on every call (core.person_permissions).
        person_permissions.remember(user, permissions)
        created = rawsql.convert(Token._meta.get_field("created"), created)
        return user, Token(key=key, user=user, created=created)
