"""ASGI entry point: /vrm/ is the VRM adapter, everything else is Django.

    VRM_VENDOR_PASSPHRASE=secret uvicorn shop.asgi:application   (from examples/django_shop)
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django_app = get_asgi_application()  # sets Django up before shop.vrm reads its settings

from vendor_adapter.asgi import vrm_app  # noqa: E402

from .vrm import vendor  # noqa: E402

vrm = vrm_app(vendor)


async def application(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":  # Django takes none: answer them, and close the vendor
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        vendor.close()
        return await send({"type": "lifespan.shutdown.complete"})
    if scope["path"] == "/vrm" or scope["path"].startswith("/vrm/"):
        root = scope.get("root_path", "") + "/vrm"
        return await vrm({**scope, "root_path": root}, receive, send)
    return await django_app(scope, receive, send)
