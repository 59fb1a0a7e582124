"""What a list reads from the query string, checked as strictly as the schema states it: pages
(``limit``, ``offset``) and related objects by id.

DRF's pages read ``offset=true`` as 0 and any ``limit`` as the page size, and django-filter
answers an id nothing has with 400 ("Select a valid choice"); here a value the schema refuses
is a 400 naming it, and an id the schema allows but nothing has lists nothing.
"""

import re

import django_filters
from django import forms
from django.db import models
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.rest_framework import FilterSet as DrfFilterSet
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination

MAX_ID = 2**63 - 1
MAX_PAGE = 1000
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_DIGITS = re.compile(r"[0-9]{1,19}")


@extend_schema_field(ID_SCHEMA)
class IdFilter(django_filters.NumberFilter):
    """A related object by its id, a whole number from 1."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=MAX_ID, **kwargs)


class TrueOrFalse(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        if value not in ("true", "false"):
            raise forms.ValidationError("Give true or false.")
        return value == "true"


class BooleanFilter(django_filters.BooleanFilter):
    """``true`` or ``false``, as the schema's boolean is written in a query string; anything
    else is refused (django-filter would ignore it, and list everything)."""

    field_class = TrueOrFalse


class FilterSet(DrfFilterSet):
    """Filters by a foreign key take its id (``IdFilter``), not a choice among existing rows;
    booleans are ``true`` or ``false``; a filter given no value is refused, but for text."""

    FILTER_DEFAULTS = {
        **DrfFilterSet.FILTER_DEFAULTS,
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
        models.BooleanField: {"filter_class": BooleanFilter},
    }

    def is_valid(self):
        valid = super().is_valid()
        for name, value in self.data.items():
            field = self.form.fields.get(name)
            if value == "" and field is not None and type(field) is not forms.CharField:
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid


class FilterBackend(DjangoFilterBackend):
    """django-filter, building a view's ``filterset_fields`` on ``FilterSet``."""

    filterset_base = FilterSet


def whole_number(request, name: str, default: int, minimum: int, maximum: int) -> int:
    """A query parameter that is a whole number in range; 400 naming it otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if not _DIGITS.fullmatch(value) or not minimum <= int(value) <= maximum:
        raise exceptions.ValidationError(
            {name: [f"Give a whole number from {minimum} to {maximum}."]}
        )
    return int(value)


class Pages(LimitOffsetPagination):
    """``limit`` (1 to MAX_PAGE, default PAGE_SIZE) and ``offset`` (from 0)."""

    max_limit = MAX_PAGE

    def get_limit(self, request):
        return whole_number(request, self.limit_query_param, self.default_limit, 1, MAX_PAGE)

    def get_offset(self, request):
        return whole_number(request, self.offset_query_param, 0, 0, MAX_ID)

    def get_schema_operation_parameters(self, view):
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"].update(minimum=1, maximum=MAX_PAGE, default=self.default_limit)
        offset["schema"].update(minimum=0, maximum=MAX_ID, default=0)
        return [limit, offset]
