from __future__ import annotations

from django.contrib import admin
from django.urls import path

from tests import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("tags/", views.tags),
    path("startup-state/", views.startup_state),
]
