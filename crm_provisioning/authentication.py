"""People's API tokens: DRF's ``TokenAuthentication``, its one look-up by hand-written SQL.

Compiling ``Token.objects.select_related("user").get(key=…)`` through the ORM on every call
cost a real-time action more than the action's own statements; the raw query reads the same
rows (the token's user, with the token's creation time) and says the same on failure.
"""

from functools import cache

from django.contrib.auth.models import User
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token


@cache
def _sql() -> str:
    def table(model) -> str:
        return connection.ops.quote_name(model._meta.db_table)

    return (
        f"SELECT u.*, t.created AS token_created FROM {table(Token)} t "  # noqa: S608 (table names only)
        f"JOIN {table(User)} u ON u.id = t.user_id WHERE t.key = %s"
    )


class PersonTokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        user = next(iter(User.objects.raw(_sql(), [key])), None)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user, created=user.token_created)
