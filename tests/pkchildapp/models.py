from __future__ import annotations

from django.db import models


class Child(models.Model):
    parent = models.ForeignKey("pkapp.Parent", on_delete=models.CASCADE)
