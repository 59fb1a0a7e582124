"""Options shared by the provisioning commands."""

from datetime import date

from django.core.management.base import CommandError

from catalogue.models import Provider, SubscriptionType
from providers.batch import Selection
from subscriptions.models import Subscription


def add_selection_arguments(parser, *, filters: bool = True) -> None:
    parser.add_argument("--provider", required=True, help="The provider's name.")
    if filters:
        parser.add_argument("--created-from", type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--created-to", type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument(
            "--type", action="append", default=[], help="Subscription type code (repeatable)."
        )
    parser.add_argument("--chunk-size", type=int, default=2000)


def selection_from(options) -> Selection:
    provider = Provider.objects.filter(name=options["provider"]).first()
    if provider is None:
        names = ", ".join(Provider.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"No provider named {options['provider']!r} (there are: {names}).")
    if not provider.enabled:
        raise CommandError(f"Provider {provider.name} is disabled.")
    type_ids = []
    for code in options.get("type") or []:
        subscription_type = SubscriptionType.objects.filter(code=code).first()
        if subscription_type is None:
            raise CommandError(f"No subscription type with code {code!r}.")
        type_ids.append(subscription_type.pk)
    return Selection(
        provider,
        created_from=options.get("created_from"),
        created_to=options.get("created_to"),
        subscription_type_ids=tuple(type_ids),
    )


def report_problems(stream, problems: list[tuple[int | None, str]]) -> None:
    """What a run could not provision, one line per subscription."""
    numbers = Subscription.objects.in_bulk([sub_id for sub_id, _ in problems if sub_id])
    for sub_id, message in problems:
        stream.write(f"{numbers[sub_id].number}: {message}" if sub_id in numbers else message)
