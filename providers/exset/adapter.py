"""EXSET SMS (seed 002): batch, each request a TQUEUE entry in the SMS's own database.

How a request travels:

1. The *Process Provisioning Requests* run (and utilities, message runs) create Pending
   requests; the processing run writes each chunk's as TQUEUE entries once the chunk
   committed (``after_chunk``), and the *Write TQUEUE entries* run writes what else waits.
2. The SMS takes New entries, lowest priority then sequence first, and marks them Done or
   Error.
3. The *Read TQUEUE answers* run reads the finished entries back (``queue.py``, ``tqueue.py``)
   and records each answer: Completed, or Rejected with the SMS's error (the change rolled
   back); what the SMS never finishes fails at the answer deadline.
"""

from providers import failure_kinds, registry
from providers.extensions import Health
from providers.models import ProvisioningRequest

from . import commands as exset_commands
from .forms import ExsetConnection, ExsetParameters

Op = ProvisioningRequest.Operation
# The run this worker process last wrote chunks of, and the last id its chunks' exports read per
# priority (``after_chunk``): kept across the run's parts, which each get an adapter of their own.
_CHUNKS_READ: dict[int, dict[int, int]] = {}


class ExsetAdapter(registry.Adapter):
    code = "exset"
    name = "EXSET SMS"
    model = registry.BATCH
    delivery = registry.FILE
    connection_form = ExsetConnection
    parameters_form = ExsetParameters
    commands = exset_commands.COMMANDS
    # SPEC: usage services are never sent as ADD_SUBSCRIPTION (nor renewed).
    provisions_usage_services = False

    @classmethod
    def run_types(cls):
        from . import message_runs, runs

        return (
            "process_provisioning_requests",
            runs.WRITE,
            runs.READ,
            message_runs.INFOCAS_MESSAGES,
            message_runs.FINGERPRINTING,
            "archive_requests",
        )

    @classmethod
    def utilities(cls):
        from . import utilities

        return (
            utilities.SEND_INFOCAS_MESSAGE,
            utilities.DISPLAY_FINGERPRINT,
            utilities.RECALL_SUBSCRIPTION,
            "reset_subscription",
        )

    def extra_commands(self, subscriptions, today, ca_ids):
        return exset_commands.renewal_commands(self.provider, subscriptions, today, ca_ids)

    def rewrite_commands(self, planned):
        return exset_commands.rewrite(self.provider, planned)

    def parameters_for(self, command, context) -> dict:
        return exset_commands.parameters(command, context)

    @classmethod
    def simulator(cls):
        from . import simulator

        return simulator.SIMULATOR

    @classmethod
    def demo(cls):
        from . import demo

        return demo.DEMO

    def after_chunk(self, process_run_id: int) -> list[tuple[int | None, str]]:
        """The chunk's requests written to TQUEUE now, under the run. The first chunk's
        export writes every waiting request; each later one reads on from where the last one
        stopped in this worker process, not again through the run's earlier requests (Pending,
        in batches already: reading them each time made a run's writing grow with the square of
        its requests). A chunk's requests are always past that point (ids are handed out in
        order and the chunk began after it); what another transaction commits late below it
        waits for the *Write TQUEUE entries* run."""
        from providers.file_delivery.runs import export_at_end

        from .queue import PIPELINE

        # Taken out while it moves on, and kept only if this export wrote all it read: after a
        # failure the next chunk reads from the start, and writes what this one could not.
        read = _CHUNKS_READ.pop(process_run_id, {})
        _CHUNKS_READ.clear()  # another run's is of no use to this one
        problems = export_at_end(PIPELINE, self.provider, process_run_id, after=read)
        if not problems:
            _CHUNKS_READ[process_run_id] = read
        return problems

    def check(self) -> Health:
        """Connect, check TQUEUE's columns and count the entries waiting New; writes nothing."""
        from . import tqueue

        try:
            database = tqueue.open_for(self.provider)
        except registry.TransportError as error:
            return failure_kinds.failed(self.provider.name, error)
        try:
            missing = database.missing_columns()
            if missing:
                return Health(
                    False,
                    f"Table {database.table_name} in the {database.target.label} lacks the "
                    f"columns {', '.join(missing)}.",
                )
            waiting = database.count_new()
        except registry.TransportError as error:
            return Health(False, str(error))
        finally:
            database.close()
        return Health(
            True,
            f"Connected to the {database.target.label}; table {database.table_name} has the "
            f"TQUEUE columns, {waiting} entr{'y' if waiting == 1 else 'ies'} waiting New.",
        )
