from __future__ import annotations

from django.db import models


class Note(models.Model):
    text = models.TextField()
    pinned = models.BooleanField(default=False)
    color = models.CharField(max_length=20, blank=True, default="")
