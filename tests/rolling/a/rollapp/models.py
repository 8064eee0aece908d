"""Release A of the rolling-deploy test app: what the older replicas run."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    title = models.CharField(max_length=100)
    legacy_code = models.CharField(max_length=20)  # NOT NULL: release B removes it


class Coupon(models.Model):  # release B deletes the model
    code = models.CharField(max_length=20)
    order = models.ForeignKey(Order, on_delete=models.CASCADE)
