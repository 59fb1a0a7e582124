"""A provider's connection settings and operation parameters, checked and read through its
type's forms (``Adapter.connection_form`` / ``parameters_form``).

``Provider`` lives in the catalogue, below the adapters, so its ``full_clean`` cannot check
them: whatever saves a provider from outside (the back office, the API, the demo) calls
``full_clean`` here instead.
"""

from django.core.exceptions import ValidationError

from . import registry, types

GROUPS = ("connection", "parameters")


def problems(provider) -> dict[str, dict[str, list[str]]]:
    """What is wrong with ``connection`` and ``parameters``: per group, per setting name
    (``__all__``: the settings together), the messages. A group that is right is stored cleaned
    (defaults filled in). An unknown type is the model's own choice error: nothing here."""
    if provider.type not in registry.adapter_classes():
        return {}
    adapter = registry.adapter_class(provider.type)
    found = {}
    for group, form_class in zip(
        GROUPS, (adapter.connection_form, adapter.parameters_form), strict=True
    ):
        cleaned, errors = types.validate(form_class, getattr(provider, group))
        if errors:
            found[group] = errors
        else:
            setattr(provider, group, cleaned)
    return found


def clean(provider) -> None:
    """Check ``connection`` and ``parameters`` against the provider's type and store them
    cleaned (defaults filled in); raises ``ValidationError`` per field."""
    found = problems(provider)
    if found:
        raise ValidationError(
            {
                group: [
                    f"{name}: {message}"
                    for name, messages in errors.items()
                    for message in messages
                ]
                for group, errors in found.items()
            }
        )


def full_clean(provider) -> None:
    """The model's ``full_clean`` and ``clean`` above, their errors together."""
    errors = {}
    for check in (provider.full_clean, lambda: clean(provider)):
        try:
            check()
        except ValidationError as error:
            errors = error.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


def connect(provider, wanted: dict, parameters: dict | None = None) -> None:
    """A demo's provider pointed at its simulator: saved only when the connection settings it
    names differ (or it has no parameters yet), so that workers keep their clients."""
    held = {name: provider.connection.get(name) for name in wanted}
    if held != wanted or not provider.parameters:
        provider.connection = wanted
        provider.parameters = provider.parameters or dict(parameters or {})
        full_clean(provider)  # fills in the parameters' defaults
        provider.save()


def parameter(provider, name: str):
    """An operation parameter, falling back to the type's declared default."""
    form_class = registry.adapter_class(provider.type).parameters_form
    return provider.parameters.get(name, types.defaults(form_class).get(name))
