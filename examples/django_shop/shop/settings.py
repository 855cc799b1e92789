"""The smallest Django settings for the example shop: no database of Django's
own (the customers are in the VRM vendor's CRM), no admin, no sessions."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, object] = {}
USE_TZ = True

#: The VRM vendor's database (vendor_adapter's SQLite CRM) and its name.
VRM_DB = os.environ.get("VRM_SHOP_DB", "shop.db")
VRM_NAME = "Django Cycles"
