"""Who may call what in the Web API, and the base viewset every resource is built on.

People are authorized by their role's Django permissions: a viewset names the permission that
reads it (``read_permission``) and, per action, the one that writes (``write_permissions``,
falling back to ``write_permission``). Connector tokens are not people: they authenticate only
for the Generic provider's Get Pending / Send Response (``providers.generic.api``), so every
viewset here refuses them, whatever they ask.

The base viewset also documents the one error shape (``core.api_errors``) on every
operation of the schema, and turns the service layers' errors into it.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, permissions, serializers, viewsets

from core import person_permissions


class RolePermission(permissions.BasePermission):
    """Authenticated people whose role holds the permission the action needs; never a connector."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if getattr(user, "is_connector", False):  # a platform's connector, not a person
            self.message = "A connector token may only use the Generic pending and responses API."
            return False
        if not (user and user.is_authenticated):
            return False
        needed = view.permission_for(request)
        # An action that names no permission is closed to everyone: deny by default.
        return bool(needed) and has_permission(user, needed)


def has_permission(user, perm: str) -> bool:
    """``user.has_perm(perm)`` for an active person, asked of the database in one statement:
    the model backend would load every permission of the user and of their groups (two
    queries and a set of all of them) to answer for one, on every API call. A person who
    signed in with an API token had them read with the token, in the same statement
    (``core.person_permissions``)."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return perm in person_permissions.of(user)


# --- The one error shape in the schema --------------------------------------------------------


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for programs: e.g. invalid, not_found.")
    message = serializers.CharField(help_text="For people: what is wrong.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="On validation errors: each offending field (e.g. items[1].ca_id) → messages.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


class ConnectorTokenScheme(OpenApiAuthenticationExtension):
    target_class = "providers.authentication.ConnectorTokenAuthentication"
    name = "connectorToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A connector's key, 'Token <key>': Generic pending and responses only.",
        }


_choice_classes: dict[str, type] = {}


def choice_field(name: str, choices, **kwargs) -> serializers.ChoiceField:
    """A ChoiceField whose enum is its own schema component ``<name>Enum``: model fields that
    share a name (``state`` of a subscription, a service, a request) keep their own values."""
    cls = _choice_classes.get(name)
    if cls is None:
        cls = type(f"{name}ChoiceField", (serializers.ChoiceField,), {})
        schema = {"type": "string", "enum": [value for value, _ in choices]}
        cls = extend_schema_field(schema, component_name=f"{name}Enum")(cls)
        _choice_classes[name] = cls
    return cls(choices=choices, **kwargs)


class ErrorAwareSchema(AutoSchema):
    """Every operation documents the error shape on 400, 401, 403 and, where they can happen,
    404 (an object in the path), 409 (a write that the current state refuses) and 413 (a body
    over ``DATA_UPLOAD_MAX_MEMORY_SIZE``)."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400", "401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes.append("409")
        if self.method in ("POST", "PUT", "PATCH"):
            codes.append("413")
        for code in codes:
            responses.setdefault(
                code, self._get_response_for_code(ErrorSerializer, code, direction=direction)
            )
        return responses


# --- Errors from the service layers -----------------------------------------------------------


class ServiceRefused(exceptions.APIException):
    """A service function said no: 409 when the current state forbids it, 400 for bad input."""

    def __init__(self, message: str, code: str, status_code: int = 409):
        super().__init__(message, code)
        self.status_code = status_code
        self.default_code = code


def field_errors(error: DjangoValidationError) -> exceptions.ValidationError:
    """A model or service ValidationError as DRF's, so each field keeps its messages."""
    if hasattr(error, "error_dict"):
        return exceptions.ValidationError(error.message_dict)
    return exceptions.ValidationError({"non_field_errors": error.messages})


class ApiViewSet(viewsets.GenericViewSet):
    """Base of every resource: role permissions, the error shape in the schema."""

    permission_classes = [RolePermission]
    schema = ErrorAwareSchema()
    read_permission: str | None = None
    write_permission: str | None = None
    write_permissions: dict[str, str] = {}

    def filter_queryset(self, queryset):
        # Filters narrow lists. An object named in the path is found by its id within
        # get_queryset alone: django-filter would otherwise build its filter set (a form of
        # every filter) on every action, a real-time action's costliest step after its SQL.
        if self.detail:
            return queryset
        return super().filter_queryset(queryset)

    def permission_for(self, request) -> str | None:
        if request.method in permissions.SAFE_METHODS:
            return self.read_permission
        return self.write_permissions.get(self.action, self.write_permission)
