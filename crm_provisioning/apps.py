from django.apps import AppConfig


class CompositionConfig(AppConfig):
    """The top of the stack, as an app of its own so that it can hold the commands that put
    the apps together (``load_demo``). The back office's own config is ``BackOfficeConfig``,
    which stands in for Django's admin app and so cannot hold them."""

    name = "crm_provisioning"
    verbose_name = "Composition"
