from __future__ import annotations

from django.urls import path

from rollapp import views

urlpatterns = [
    path("write/", views.write),
    path("read/", views.read),
    path("delete/", views.delete),
]
