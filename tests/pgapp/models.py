from __future__ import annotations

from django.db import models


class Event(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        indexes = (models.Index(fields=["name"], name="pgapp_event_name_idx"),)
