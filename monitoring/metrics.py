"""The metrics Prometheus scrapes from ``/metrics``, read from the database and the broker at
each scrape, so that every web server answers with the same figures and no worker needs a
port of its own.

Each figure is one indexed look-up per provider (or a bounded sample), never a count over
the whole request table: the scrape costs the same at a million subscriptions as at ten.
The histograms are *gauge histograms* over the newest answered requests and finished runs:
what delivery looks like now, not since the process started. docs/operations.md lists the
names.
"""

from collections.abc import Iterator, Sequence

from celery import current_app
from django.conf import settings
from django.db.models import F
from django.utils import timezone
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from providers.models import ProvisioningRequest
from runs.models import ProcessRun, WorkerHeartbeat

from . import status

State = ProvisioningRequest.State

# The states an operator watches; Completed only grows and is left to the latency sample.
WATCHED_STATES = (State.PENDING, State.FAILED, State.REJECTED)
# How many of each provider's newest answered requests the latency and attempts describe.
SAMPLE = 1000
# How many of the newest finished runs the run durations describe.
RUN_SAMPLE = 200
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
ATTEMPT_BUCKETS = (1, 2, 3, 5, 8)
RUN_BUCKETS = (1, 10, 60, 300, 900, 1800, 3600)


def _buckets(values: Sequence[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    """Cumulative counts per upper bound, then +Inf, as Prometheus histograms want them."""
    counts = [(floatToGoString(b), float(sum(1 for v in values if v <= b))) for b in bounds]
    return [*counts, ("+Inf", float(len(values)))]


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._requests(status.providers())
        yield from self._workers(now)
        yield from self._runs()
        yield from self._queues()

    def _requests(self, providers: list[status.ProviderStatus]) -> Iterator[Metric]:
        """The counts, oldest Pending and last success as the dashboard reads them
        (``monitoring.status``), and the latency and attempts of a larger sample."""
        requests = GaugeMetricFamily(
            "crm_requests",
            "Provisioning requests in a watched state (pending, failed, rejected), by provider.",
            labels=["provider", "state"],
        )
        oldest = GaugeMetricFamily(
            "crm_oldest_pending_age_seconds",
            "Age of the provider's oldest Pending request (0 when none is Pending).",
            labels=["provider"],
        )
        last_answer = GaugeMetricFamily(
            "crm_last_completed_timestamp_seconds",
            "When the provider's newest Completed request was answered (Unix time).",
            labels=["provider"],
        )
        latency = GaugeHistogramMetricFamily(
            "crm_delivery_latency_seconds",
            f"From creation to answer, over the provider's newest {SAMPLE} Completed requests.",
            labels=["provider"],
        )
        attempts = GaugeHistogramMetricFamily(
            "crm_delivery_attempts",
            f"Attempts it took, over the provider's newest {SAMPLE} Completed requests.",
            labels=["provider"],
        )
        for st in providers:
            name = st.provider.name
            for state, count in zip(
                WATCHED_STATES, (st.pending, st.failed, st.rejected), strict=True
            ):
                requests.add_metric([name, state], count)
            age = st.oldest_pending_age
            oldest.add_metric([name], age.total_seconds() if age else 0.0)
            if st.last_completed_at:
                last_answer.add_metric([name], st.last_completed_at.timestamp())
            sample = list(
                ProvisioningRequest.objects.filter(
                    provider=st.provider, state=State.COMPLETED, answered_at__isnull=False
                )
                .order_by("-created_at")
                .values_list(F("answered_at"), F("created_at"), F("attempts"))[:SAMPLE]
            )
            waits = [(answered - created).total_seconds() for answered, created, _ in sample]
            latency.add_metric(
                [name], _buckets(waits, LATENCY_BUCKETS), gsum_value=float(sum(waits))
            )
            tries = [float(row[2]) for row in sample]
            attempts.add_metric(
                [name], _buckets(tries, ATTEMPT_BUCKETS), gsum_value=float(sum(tries))
            )
        yield from (requests, oldest, last_answer, latency, attempts)

    def _workers(self, now) -> Iterator[Metric]:
        beats = GaugeMetricFamily(
            "crm_worker_heartbeat_age_seconds",
            "Seconds since each worker host's last heartbeat (beat and a worker both alive).",
            labels=["hostname"],
        )
        for hostname, seen in WorkerHeartbeat.objects.values_list("hostname", "last_seen"):
            beats.add_metric([hostname], (now - seen).total_seconds())
        yield beats

    def _runs(self) -> Iterator[Metric]:
        running = GaugeMetricFamily("crm_runs_running", "Process runs executing now.")
        running.add_metric([], ProcessRun.objects.filter(status=ProcessRun.Status.RUNNING).count())
        durations = GaugeHistogramMetricFamily(
            "crm_run_duration_seconds",
            f"How long runs took, over the newest {RUN_SAMPLE} finished runs, by run type.",
            labels=["run_type"],
        )
        by_type: dict[str, list[float]] = {}
        finished = (
            ProcessRun.objects.filter(finished_at__isnull=False)
            .order_by("-id")
            .values_list("definition__run_type", "started_at", "finished_at")[:RUN_SAMPLE]
        )
        for run_type, started, ended in finished:
            by_type.setdefault(run_type, []).append((ended - started).total_seconds())
        for run_type, seconds in sorted(by_type.items()):
            durations.add_metric(
                [run_type], _buckets(seconds, RUN_BUCKETS), gsum_value=float(sum(seconds))
            )
        yield from (running, durations)

    def _queues(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("crm_broker_up", "1 when the broker answered this scrape.")
        depth = GaugeMetricFamily(
            "crm_broker_queue_messages",
            "Tasks waiting in each broker queue (real-time deliveries, batch runs, the rest).",
            labels=["queue"],
        )
        try:
            with current_app.connection_for_read() as broker:
                broker.ensure_connection(max_retries=1, timeout=2)
                channel = broker.default_channel
                for queue in settings.CELERY_TASK_QUEUES:
                    depth.add_metric([queue], channel.queue_declare(queue=queue).message_count)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield from (up, depth)


def registry() -> CollectorRegistry:
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(DatabaseCollector())
    return scrape
