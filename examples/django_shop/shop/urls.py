"""The shop's own pages, served by Django: the catalogue and the back office."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from .vrm import vendor

PRODUCTS = [{"sku": "TREK-520", "name": "Trek 520", "price": "749.00"}]


def products(request: HttpRequest) -> JsonResponse:
    return JsonResponse(PRODUCTS, safe=False)


def customers(request: HttpRequest) -> JsonResponse:  # behind the shop's login, really
    return JsonResponse({"customers": vendor.crm.contacts(), "enquiries": vendor.crm.leads()})


urlpatterns = [path("products", products), path("admin/customers", customers)]
