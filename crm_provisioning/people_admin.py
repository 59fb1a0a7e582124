"""People in the back office: the user list shows and filters by role, and the role groups'
permissions are shown read-only, since core/roles.py alone defines them (``migrate`` sets them)."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Prefetch
from django.utils.html import format_html, format_html_join

from core import roles

NO_ROLE = "none"
ROLE_SOURCE_NOTE = (
    "A role: its permissions are defined in core/roles.py and set by every migrate, so they "
    "cannot be changed here. Give a person a role on their user page (Groups)."
)


class RoleFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"

    def lookups(self, request, model_admin):
        return [*((role, role) for role in roles.ROLES), (NO_ROLE, "no role")]

    def queryset(self, request, queryset):
        if self.value() == NO_ROLE:
            return queryset.exclude(groups__name__in=roles.ROLES)
        if self.value() in roles.ROLES:
            return queryset.filter(groups__name=self.value())
        return queryset


class PeopleAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "role_names", "is_superuser", "is_active")
    list_filter = (RoleFilter, "is_staff", "is_superuser", "is_active", "groups")

    def get_queryset(self, request):
        # The roles column from one query per page, not one per user.
        role_groups = Group.objects.filter(name__in=roles.ROLES).order_by("name")
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("groups", queryset=role_groups, to_attr="role_groups"))
        )

    @admin.display(description="roles")
    def role_names(self, user: User) -> str:
        names = [group.name for group in getattr(user, "role_groups", user.groups.all())]
        return ", ".join(name for name in roles.ROLES if name in names) or "—"


class RoleGroupAdmin(GroupAdmin):
    def _is_role(self, group: Group | None) -> bool:
        return group is not None and group.name in roles.ROLES

    def has_change_permission(self, request, obj=None):
        return not self._is_role(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._is_role(obj) and super().has_delete_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        if self._is_role(obj):
            fields = ("name", "permission_list")
            return [(None, {"fields": fields, "description": ROLE_SOURCE_NOTE})]
        return super().get_fieldsets(request, obj)

    @admin.display(description="permissions")
    def permission_list(self, group: Group) -> str:
        perms = group.permissions.select_related("content_type").order_by(
            "content_type__app_label", "content_type__model", "codename"
        )
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{}.{}: {}</li>",
                ((p.content_type.app_label, p.codename, p.name) for p in perms),
            ),
        )


admin.site.unregister(User)
admin.site.register(User, PeopleAdmin)
admin.site.unregister(Group)
admin.site.register(Group, RoleGroupAdmin)
