"""Views the real-server tests request: each answers from a migrated table or process state."""

from __future__ import annotations

import os
import time

from django.http import HttpRequest, JsonResponse

from django_automigrate import startup
from tests.testapp.models import Tag


def tags(request: HttpRequest) -> JsonResponse:
    """Reads a table (seeded by a migration), and says which worker answered."""
    time.sleep(float(request.GET.get("sleep", "0")))
    return JsonResponse({"tags": Tag.objects.count(), "pid": os.getpid()})


def startup_state(request: HttpRequest) -> JsonResponse:
    current = startup.state()
    return JsonResponse({"status": current.status, "reason": current.reason, "pid": os.getpid()})
