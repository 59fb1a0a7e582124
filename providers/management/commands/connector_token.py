from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from catalogue.models import Provider
from providers.models import ConnectorToken


class Command(BaseCommand):
    help = (
        "Issue a connector token for a provider and print its key (shown only now; only a "
        "hash is stored). --replace revokes the provider's other tokens of the same name."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", required=True, help="The provider's name.")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument("--replace", action="store_true")

    def handle(self, *args, **options):
        provider = Provider.objects.filter(name=options["provider"]).first()
        if provider is None:
            raise CommandError(f"No provider named {options['provider']!r}.")
        if options["replace"]:
            provider.tokens.filter(name=options["name"], revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
        _, key = ConnectorToken.issue(provider, options["name"])
        self.stdout.write(key)
