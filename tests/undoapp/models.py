from __future__ import annotations

from django.db import models


class Crate(models.Model):
    name = models.CharField(max_length=50)
    size = models.IntegerField(null=True)
