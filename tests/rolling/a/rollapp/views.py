"""Traffic of release A: it writes and reads every column of its models."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from rollapp.models import Coupon, Order


def write(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        order = Order.objects.create(title="from A", legacy_code="A-1")
        Coupon.objects.create(code="SAVE", order=order)
    return JsonResponse({"id": order.pk})


def read(request: HttpRequest) -> JsonResponse:
    orders = list(Order.objects.order_by("-id").values()[:5])
    coupons = Coupon.objects.filter(order__in=[o["id"] for o in orders]).count()
    return JsonResponse({"orders": len(orders), "coupons": coupons})


def delete(request: HttpRequest) -> JsonResponse:
    oldest = Order.objects.order_by("id").first()
    if oldest is not None:
        oldest.delete()  # its coupons go first, by Django's cascade
    return JsonResponse({"deleted": oldest is not None})
