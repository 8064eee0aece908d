from __future__ import annotations

from django.db import models


class Gadget(models.Model):
    name = models.CharField(max_length=50)
    code = models.CharField(max_length=20, default="")
    size = models.BigIntegerField(null=True)
    note = models.TextField(blank=True, null=True)  # noqa: DJ001 - the migrations test NULL handling
