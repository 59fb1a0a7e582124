"""PINs that Conax WS's Reset smartcard PIN kept in clear: sealed where the request may still be
sent (Pending, Failed), dropped where it was answered or archived."""

from django.db import migrations

from providers import sealed

COMMAND = "UPDATE_CA_PIN_TO_GIVEN_VALUE"
OPEN = ("pending", "failed")


def seal_or_drop(apps, schema_editor):
    for name in ("ProvisioningRequest", "ArchivedRequest"):
        model = apps.get_model("providers", name)
        for row in model.objects.filter(command=COMMAND, parameters__has_key="pin").iterator():
            parameters = dict(row.parameters)
            pin = parameters.pop("pin")
            if getattr(row, "state", None) in OPEN:
                parameters.update(sealed.sealed_pin(pin))
            model.objects.filter(pk=row.pk).update(parameters=parameters)


class Migration(migrations.Migration):
    dependencies = [("providers", "0014_request_created_by")]

    operations = [migrations.RunPython(seal_or_drop, migrations.RunPython.noop, elidable=True)]
