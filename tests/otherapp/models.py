from __future__ import annotations

from django.db import models


class Shelf(models.Model):
    name = models.CharField(max_length=100)
    books = models.ManyToManyField("testapp.Book", blank=True, related_name="shelves")
    position = models.PositiveIntegerField(default=0)
