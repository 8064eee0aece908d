from __future__ import annotations

from django.db import models


class Counter(models.Model):
    """One row per execution of a data migration: a migration run twice shows as two rows."""

    migration = models.CharField(max_length=100)


class Partial(models.Model):
    """Created by an ``atomic = False`` migration in two steps, with a handshake between."""

    name = models.CharField(max_length=20, default="")
    extra = models.CharField(max_length=20, default="")
    note = models.CharField(max_length=20, default="")
