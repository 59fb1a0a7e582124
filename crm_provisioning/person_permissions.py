"""``IsPerson``, the Web API's default permission (the API root, the schema and its docs): here,
not in ``api_permissions``, since DRF imports its default permission while defining its views.
"""

from django.contrib.auth.models import User
from rest_framework import permissions


class IsPerson(permissions.BasePermission):
    """Any signed-in person, whatever their role; never a connector token, which authenticates
    as a ``providers.authentication.Connector`` and may use only Get Pending / Send Response."""

    message = "Only people may use this; a connector token may not."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and isinstance(user, User))
