"""The run definition form of the back office.

A run type's criteria and input settings are its own forms (``runs.types``). The page shows
the fields of every run type, each set in a fieldset of its own, named ``criteria-<code>-<field>``
and ``input-<code>-<field>``; the page's script shows only the chosen type's. On save, only the
chosen type's forms are bound (with those prefixes, so their errors land on the fields shown) and
their cleaned values become the definition's ``criteria`` and ``input_settings`` JSON. Then
``services.validate`` — the one judge of a definition — checks everything again, including the
run type against the provider and the schedule; its errors are put on the fields they name.
"""

import copy
import json

from django import forms
from django.conf import settings
from django.contrib.admin import widgets
from django.core.exceptions import ValidationError
from django.utils import timezone

from providers.extensions import RunType

from . import services, types
from .models import RunDefinition

# (prefix, attribute on the definition, attribute on the run type, fieldset title)
SETTINGS = [
    ("criteria", "criteria", "criteria_form", "Criteria"),
    ("input", "input_settings", "input_form", "Input settings"),
]


def field_name(prefix: str, code: str, name: str) -> str:
    return f"{prefix}-{code}-{name}"


def _admin_widget(name: str, field: forms.Field) -> forms.Field:
    """A copy of a run type's field, with the admin's widgets where they help."""
    field = copy.deepcopy(field)
    field.label = field.label or name.replace("_", " ").capitalize()
    if isinstance(field, forms.DateTimeField):
        field.widget = widgets.AdminSplitDateTime()
    elif isinstance(field, forms.DateField):
        field.widget = widgets.AdminDateWidget()
    elif isinstance(field, forms.MultipleChoiceField):
        field.widget = forms.CheckboxSelectMultiple()
        field.widget.choices = field.choices  # a new widget does not know the field's choices
    elif isinstance(field, forms.IntegerField):
        field.widget = widgets.AdminIntegerFieldWidget()
    # The chosen type's own form judges; these copies only render (see clean()).
    field.required = False
    return field


def settings_fields() -> dict[str, forms.Field]:
    fields = {}
    for run_type in types.all_types().values():
        for prefix, _attr, form_attr, _title in SETTINGS:
            for name, field in getattr(run_type, form_attr).base_fields.items():
                fields[field_name(prefix, run_type.code, name)] = _admin_widget(name, field)
    return fields


def settings_fieldsets() -> list[tuple[str, dict]]:
    """One fieldset per run type and kind of settings that has any field."""
    fieldsets = []
    for run_type in types.all_types().values():
        for prefix, _attr, form_attr, title in SETTINGS:
            names = list(getattr(run_type, form_attr).base_fields)
            if names:
                fieldsets.append(
                    (
                        f"{title} — {run_type.name}",
                        {
                            "fields": [field_name(prefix, run_type.code, n) for n in names],
                            "classes": ["run-type-settings", f"run-type-{run_type.code}"],
                        },
                    )
                )
    return fieldsets


def run_types_by_provider(providers) -> dict[str, list[str]]:
    """For the page's script: which run types each provider offers."""
    return {str(p.pk): [t.code for t in types.for_provider(p)] for p in providers}


class RunDefinitionFormBase(forms.ModelForm):
    run_type = forms.ChoiceField(
        choices=[("", "---------"), *types.choices()],
        help_text="Only the run types the provider offers are accepted.",
    )
    run_at = forms.SplitDateTimeField(
        label="Run at", required=False, widget=widgets.AdminSplitDateTime()
    )
    at = forms.TimeField(
        label="At",
        required=False,
        widget=widgets.AdminTimeWidget(),
        help_text=f"Time of day (HH:MM) on the clock of {settings.TIME_ZONE}.",
    )
    weekdays = forms.MultipleChoiceField(
        label="On",
        required=False,
        choices=RunDefinition.WEEKDAYS,
        widget=forms.CheckboxSelectMultiple(),
    )

    class Meta:
        model = RunDefinition
        fields = [
            "name",
            "alternative_code",
            "provider",
            "run_type",
            "schedule",
            "run_at",
            "at",
            "weekdays",
            "every",
            "unit",
            "cron",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.weekdays:
            self.initial["weekdays"] = instance.weekdays.split(",")
        if instance.pk and instance.run_type in types.all_types():
            run_type = types.all_types()[instance.run_type]
            for prefix, attr, form_attr, _title in SETTINGS:
                stored = getattr(instance, attr) or {}
                for name in getattr(run_type, form_attr).base_fields:
                    key = field_name(prefix, run_type.code, name)
                    if name in stored and stored[name] is not None:
                        self.initial[key] = stored[name]
        if "provider" in self.fields:
            self.fields["provider"].queryset = self.fields["provider"].queryset.order_by("name")

    def clean_weekdays(self) -> str:
        return ",".join(self.cleaned_data.get("weekdays") or [])

    def _settings_forms(self, run_type: RunType) -> list[tuple[str, str, forms.Form]]:
        return [
            (
                prefix,
                attr,
                getattr(run_type, form_attr)(data=self.data, prefix=f"{prefix}-{run_type.code}"),
            )
            for prefix, attr, form_attr, _title in SETTINGS
        ]

    def clean(self):
        data = super().clean()
        # The rendering copies of every type's settings never judge: drop what they said.
        for name in list(self._errors or {}):
            if name.startswith(tuple(f"{prefix}-" for prefix, *_ in SETTINGS)):
                del self._errors[name]
        run_type = types.get(data.get("run_type") or "")
        self.settings = {}
        if run_type is not None:
            for prefix, attr, form in self._settings_forms(run_type):
                if form.is_valid():
                    self.settings[attr] = json.loads(json.dumps(form.cleaned_data, default=str))
                    continue
                for name, errors in form.errors.items():
                    target = field_name(prefix, run_type.code, name) if name != "__all__" else None
                    for error in errors:
                        self.add_error(target, error)
        return data

    def _placed(self, name: str, message: str) -> tuple[str | None, str]:
        """Where ``services.validate``'s error goes on the page: its field; a setting's
        ("criteria" / "input_settings", the message "setting: why") on that setting's field."""
        if name in self.fields:
            return name, message
        prefix = {attr: prefix for prefix, attr, *_ in SETTINGS}.get(name)
        setting, _, why = message.partition(": ")
        target = field_name(prefix, self.instance.run_type, setting) if prefix else ""
        return (target, why) if why and target in self.fields else (None, message)

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        definition = self.instance
        definition.criteria = self.settings.get("criteria", {})
        definition.input_settings = self.settings.get("input_settings", {})
        try:
            services.validate(definition)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                for message in messages:
                    self.add_error(*self._placed(name, message))
            return
        # A submitted definition is rescheduled on save: a moment that has passed would run it
        # at once, which is not what an edit means.
        if (
            definition.pk
            and definition.state == RunDefinition.State.SUBMITTED
            and definition.schedule == RunDefinition.Schedule.ONCE
            and definition.run_at <= timezone.now()
        ):
            self.add_error("run_at", "This moment has passed; choose a later time.")


def form_class() -> type[RunDefinitionFormBase]:
    """The form with every run type's settings fields declared (the admin lists them by name)."""
    return type("RunDefinitionForm", (RunDefinitionFormBase,), settings_fields())
