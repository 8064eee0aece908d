"""Prometheus metrics, when ``prometheus-client`` is installed (the ``prometheus`` extra).

Every process records into prometheus-client's default registry, so a project that already
exposes it (``django-prometheus``, its own view) exposes these too; :func:`metrics_view` serves
them for one that does not. Multi-process servers (gunicorn, uWSGI) work through
prometheus-client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder
shared by the processes before they start; each writes its own files there and the view adds
them up. The gauges say how they are combined across processes (``multiprocess_mode``).

Without prometheus-client every function here does nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse

try:
    import prometheus_client
except ImportError:  # the extra is not installed
    prometheus_client = None  # type: ignore[assignment]

#: Statuses after which the database is known to be up to date.
_UP_TO_DATE = frozenset({"succeeded", "nothing_to_do"})
_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

logger = logging.getLogger("django_automigrate")
_Function = TypeVar("_Function", bound=Callable[..., None])
_warned = threading.Event()

_metrics: dict[str, Any] = {}
_metrics_lock = threading.Lock()


def enabled() -> bool:
    """True when prometheus-client is installed (and so metrics are recorded)."""
    return prometheus_client is not None


def _get(name: str) -> Any:
    # Created on first use, not at import: a process that never runs or checks anything
    # registers nothing (and tests can import this module freely).
    with _metrics_lock:
        if not _metrics and prometheus_client is not None:
            _create()
    return _metrics.get(name)


def _create() -> None:
    labels = ("database",)
    _metrics.update(
        runs=prometheus_client.Counter(
            "automigrate_runs",
            "Runs by database, status and trigger (nothing_to_do included).",
            (*labels, "status", "trigger"),
        ),
        duration=prometheus_client.Histogram(
            "automigrate_run_duration_seconds",
            "Duration of runs that applied (or tried to apply) migrations.",
            (*labels, "status"),
            buckets=_DURATION_BUCKETS,
        ),
        lock_wait=prometheus_client.Histogram(
            "automigrate_lock_wait_seconds",
            "Time spent waiting for the migration lock (timeouts included).",
            labels,
            buckets=_WAIT_BUCKETS,
        ),
        pending=prometheus_client.Gauge(
            "automigrate_pending_migrations",
            "Migrations on disk not applied to the database, as last seen.",
            labels,
            multiprocess_mode="mostrecent",
        ),
        deferred=prometheus_client.Gauge(
            "automigrate_deferred_operations",
            "Operations whose database work waits for the older code to go, as last seen.",
            labels,
            multiprocess_mode="mostrecent",
        ),
        deferred_age=prometheus_client.Gauge(
            "automigrate_deferred_oldest_seconds",
            "Seconds the oldest deferred operation has waited (0 when none waits).",
            labels,
            multiprocess_mode="mostrecent",
        ),
        last_success=prometheus_client.Gauge(
            "automigrate_last_success_timestamp_seconds",
            "Unix time at which the last run that applied migrations succeeded (not --rollback).",
            labels,
            multiprocess_mode="max",
        ),
    )


def _never_raises(function: _Function) -> _Function:
    """Metrics must never stop or change a run (PROMETHEUS_MULTIPROC_DIR pointing at a folder
    that does not exist, say): the first error is logged, the rest are dropped."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except Exception as exc:
            if not _warned.is_set():
                _warned.set()
                logger.error(
                    "automigrate: cannot record metrics (%s: %s); runs go on without them",
                    type(exc).__name__,
                    exc,
                )

    return wrapper  # type: ignore[return-value]


@_never_raises
def record_run(
    *,
    alias: str,
    status: str,
    trigger: str,
    duration: float,
    lock_wait: float,
    waited_for_lock: bool,
    pending: int | None,
    started: bool,
) -> None:
    """Record one database's run. ``pending``: what is left to apply, when known; ``started``:
    the run began applying (its duration is a migration run's, not a refusal's)."""
    if prometheus_client is None:
        return
    _get("runs").labels(alias, status, trigger).inc()
    if started:
        _get("duration").labels(alias, status).observe(duration)
    if waited_for_lock:
        _get("lock_wait").labels(alias).observe(lock_wait)
    if status in _UP_TO_DATE:
        pending = 0
    if pending is not None:
        set_pending(alias, pending)
    if status == "succeeded" and trigger != "rollback":
        _get("last_success").labels(alias).set(time.time())


@_never_raises
def set_pending(alias: str, count: int) -> None:
    if prometheus_client is not None:
        _get("pending").labels(alias).set(count)


@_never_raises
def set_deferred(alias: str, count: int, oldest_seconds: float) -> None:
    if prometheus_client is not None:
        _get("deferred").labels(alias).set(count)
        _get("deferred_age").labels(alias).set(oldest_seconds)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition of prometheus-client's registry (all processes' metrics in
    multiprocess mode). Protect it as you would any internal endpoint."""
    if prometheus_client is None:
        return HttpResponse(
            "prometheus-client is not installed: pip install 'django-automigrate[prometheus]'\n",
            status=501,
            content_type="text/plain; charset=utf-8",
        )
    registry: Any = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return HttpResponse(
        prometheus_client.generate_latest(registry),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
