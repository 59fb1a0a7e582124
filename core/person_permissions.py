"""A person's permissions (``app_label.codename``), their own and their groups', read in one
statement — or within another: the API token's look-up reads them in its own statement
(``core.authentication``), and the permission check of the same request takes
them from there instead of asking the database again.

``IsPerson`` is the Web API's default permission (the API root, the schema and its docs): here,
not in ``api_permissions``, since DRF imports its default permission while defining its views.
"""

from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from rest_framework import permissions

from core import rawsql

# Where the permissions read with a person's API token are kept for the request.
_READ = "_api_permissions"


def sql(user_id: str) -> str:
    """SQL: one text of the permissions of the person whose id is ``user_id`` (a column, or
    a placeholder that then takes the id twice), separated by spaces."""
    table = rawsql.table
    joined = "string_agg" if connection.vendor == "postgresql" else "group_concat"
    return (
        f"(SELECT {joined}(c.app_label || '.' || p.codename, ' ') FROM {table(Permission)} p "  # noqa: S608 (names and placeholders only)
        f"JOIN {table(ContentType)} c ON c.id = p.content_type_id WHERE p.id IN ("
        f"SELECT permission_id FROM {table(User.user_permissions.through)} "
        f"WHERE user_id = {user_id} UNION SELECT gp.permission_id "
        f"FROM {table(User.groups.through)} ug JOIN {table(Group.permissions.through)} gp "
        f"ON gp.group_id = ug.group_id WHERE ug.user_id = {user_id}))"
    )


def remember(user, text: str | None) -> None:
    """Keep what ``sql`` read for ``user`` for this request."""
    setattr(user, _READ, frozenset((text or "").split()))


def of(user) -> frozenset[str]:
    """The person's permissions: those read with their token, else from the database."""
    known = getattr(user, _READ, None)
    if known is None:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {sql('%s')}", [user.pk, user.pk])
            remember(user, cursor.fetchone()[0])
        known = getattr(user, _READ)
    return known


class IsPerson(permissions.BasePermission):
    """Any signed-in person, whatever their role; never a connector token, which authenticates
    as a ``providers.authentication.Connector`` and may use only Get Pending / Send Response."""

    message = "Only people may use this; a connector token may not."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and isinstance(user, User))
