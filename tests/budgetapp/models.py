from __future__ import annotations

from django.db import models


class Shelf(models.Model):
    name = models.CharField(max_length=50)
    position = models.IntegerField(null=True)


class Box(models.Model):
    name = models.CharField(max_length=50)
    size = models.IntegerField(null=True)
