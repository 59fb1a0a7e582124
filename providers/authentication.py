"""Connector tokens: ``Authorization: Token <key>`` for a platform's connector."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ConnectorToken

LAST_USED_RESOLUTION = timedelta(minutes=1)


class Connector:
    """The principal a connector token authenticates: a provider's connector, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_connector = True  # what the Web API's role checks (core.api_permissions) look for
    is_staff = False
    is_superuser = False

    def __init__(self, token: ConnectorToken):
        self.token = token
        self.provider_id = token.provider_id
        self.username = f"connector:{token.name}"

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


class ConnectorTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Give the token as 'Authorization: Token <key>'.")
        key = header[1].decode(errors="replace")
        if len(key) != ConnectorToken.KEY_LENGTH:
            return None  # not a connector's key (a person's API token has 40 characters)
        token = (
            ConnectorToken.objects.filter(
                key_hash=ConnectorToken.hash(key),
                revoked_at__isnull=True,
            )
            .select_related("provider")
            .first()
        )
        if token is None:
            return None  # another scheme (a person's API token) may still know it
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            # A connector calls many times a second: a write (and a commit) on each call
            # would cost more than the call; "last used" to the minute is what people read.
            ConnectorToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return Connector(token), token

    def authenticate_header(self, request) -> str:
        return self.keyword
