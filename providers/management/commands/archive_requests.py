from django.core.management.base import BaseCommand

from providers.archive import archive


class Command(BaseCommand):
    help = "Move Completed and Rejected requests older than N days to the archive."

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, required=True)

    def handle(self, *args, **options):
        moved = archive(options["older_than_days"])
        self.stdout.write(f"Archived {moved} requests.")
