from __future__ import annotations

from django.db import models


class Parent(models.Model):
    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=50)
