from django.core.management.base import BaseCommand, CommandError

from providers import batch, registry
from subscriptions.models import Subscription


class Command(BaseCommand):
    help = "Reset single subscription: create the requests that bring it in step everywhere."

    def add_arguments(self, parser):
        parser.add_argument("number", help="The subscription number.")

    def handle(self, *args, **options):
        subscription = Subscription.objects.filter(number=options["number"]).first()
        if subscription is None:
            raise CommandError(f"No subscription {options['number']!r}.")
        try:
            created = batch.reset_subscription(subscription)
        except registry.PlatformQueryError as error:
            raise CommandError(f"{error}. Nothing was changed.") from None
        for request in created:
            self.stdout.write(f"{request.uid} {request.command} {request.parameters}")
        self.stdout.write(f"Created {len(created)} requests for {subscription.number}.")
