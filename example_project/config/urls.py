"""URLs of the example project: the admin (where the MigrationRun history is listed), the
health checks a Kubernetes deployment probes, and the Prometheus metrics."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path
from health_check.views import HealthCheckView

from django_automigrate.reporting.metrics import metrics_view

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    # Readiness: 500 while a migration is pending, running or failed (docs/health.md).
    path(
        "health/ready/",
        HealthCheckView.as_view(
            checks=["health_check.checks.Database", "django_automigrate.health.Migrations"]
        ),
        name="health-ready",
    ),
    # Liveness: the process answers; never the migrations (a restart would not fix them).
    path("health/live/", HealthCheckView.as_view(checks=[]), name="health-live"),
    path("metrics/", metrics_view, name="metrics"),
]
