# The moved models' content types change app label, so their permissions (and the roles and
# people holding them) and the back office's history keep their rows.

from django.db import migrations

MOVED = {
    "subscriptions": ("product", "subscriptiontype", "externalsystem"),
    "providers": ("provider", "distributor", "productcaid"),
}


def relabel(apps, to_catalogue: bool):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app, models in MOVED.items():
        source, target = (app, "catalogue") if to_catalogue else ("catalogue", app)
        for model in models:
            # A fresh database has none yet: post_migrate creates them under the new label.
            moving = ContentType.objects.filter(app_label=source, model=model)
            if moving.exists():
                # One under the new label was made by post_migrate after a migration back: it
                # holds no history, the one moving does (people's permissions, admin log).
                ContentType.objects.filter(app_label=target, model=model).delete()
                moving.update(app_label=target)


def forwards(apps, schema_editor):
    relabel(apps, to_catalogue=True)


def backwards(apps, schema_editor):
    relabel(apps, to_catalogue=False)


class Migration(migrations.Migration):

    dependencies = [
        ("catalogue", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        # Their rows go with a content type deleted above.
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
