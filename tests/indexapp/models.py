from __future__ import annotations

from django.db import models


class Order(models.Model):
    email = models.CharField(max_length=200)

    class Meta:
        indexes = (models.Index(fields=["email"], name="indexapp_order_email_idx"),)
