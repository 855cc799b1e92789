"""The shop's VRM vendor: opened once per process, closed by shop.asgi at shutdown."""

from __future__ import annotations

import os

from django.conf import settings

from vendor_adapter import Vendor

vendor = Vendor.open(settings.VRM_DB, name=settings.VRM_NAME,
                     passphrase=os.environ["VRM_VENDOR_PASSPHRASE"])
