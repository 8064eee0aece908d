"""Traffic of release B: it knows nothing of legacy_code or Coupon."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from rollapp.models import Order


def write(request: HttpRequest) -> JsonResponse:
    order = Order.objects.create(title="from B")
    return JsonResponse({"id": order.pk, "status": order.status})


def read(request: HttpRequest) -> JsonResponse:
    orders = list(Order.objects.order_by("-id").values()[:5])
    return JsonResponse({"orders": len(orders)})


def delete(request: HttpRequest) -> JsonResponse:
    # Rows A wrote have coupons pointing at them: the database must let them go.
    oldest = Order.objects.order_by("id").first()
    if oldest is not None:
        oldest.delete()
    return JsonResponse({"deleted": oldest is not None})
