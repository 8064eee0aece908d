"""The models as the migrations leave them (tests.forecastapp is installed only by the forecast
tests, through AUTOMIGRATE_TEST_EXTRA_APPS)."""

from __future__ import annotations

from django.db import models
from django.db.models import F
from django.db.models.functions import Now, Random


class Customer(models.Model):
    name = models.CharField(max_length=50)
    email = models.CharField(max_length=100)
    nickname = models.CharField(max_length=20, null=True)  # noqa: DJ001 - SET NOT NULL is tested


class Label(models.Model):
    name = models.CharField(max_length=30)


class Item(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    code = models.CharField(max_length=40, db_comment="The item's code")
    quantity = models.BigIntegerField()
    note = models.CharField(max_length=50, default="")
    price = models.DecimalField(decimal_places=2, max_digits=12)
    active = models.BooleanField(null=True)
    number = models.BigIntegerField()
    extra = models.IntegerField(null=True)
    score = models.IntegerField(default=0)
    code2 = models.CharField(max_length=10, null=True, unique=True)  # noqa: DJ001
    rand = models.FloatField(db_default=Random())
    stamp = models.DateTimeField(db_default=Now())
    total = models.GeneratedField(
        expression=F("quantity") * F("price"),
        output_field=models.DecimalField(decimal_places=2, max_digits=24),
        db_persist=True,
    )

    class Meta:
        db_table_comment = "Items on sale"
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="item_quantity_ck")
        ]


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    total = models.DecimalField(decimal_places=2, max_digits=10)


class Referenced(models.Model):
    pass


class Referrer(models.Model):
    referenced = models.ForeignKey(Referenced, on_delete=models.CASCADE)
