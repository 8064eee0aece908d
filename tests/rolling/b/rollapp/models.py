"""Release B of the rolling-deploy test app: Order.legacy_code and Coupon are gone, and
Order.status is new, NOT NULL with a default."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    title = models.CharField(max_length=100)
    status = models.CharField(max_length=20, default="new")
