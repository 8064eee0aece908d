from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from health_check.views import HealthCheckView

from django_automigrate.reporting.metrics import metrics_view
from tests import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("tags/", views.tags),
    path("startup-state/", views.startup_state),
    # As the docs tell users to configure them: readiness with the plugin, liveness without.
    path(
        "health/ready/",
        HealthCheckView.as_view(checks=["django_automigrate.health.Migrations"]),
        name="health-ready",
    ),
    path(
        "health/other/",
        HealthCheckView.as_view(
            checks=[("django_automigrate.health.Migrations", {"alias": "other"})]
        ),
    ),
    path("health/live/", HealthCheckView.as_view(checks=[])),
    path("metrics/", metrics_view),
]

if apps.is_installed("rollapp"):  # the rolling-deploy test's app, release A or B
    urlpatterns.append(path("roll/", include("rollapp.urls")))
