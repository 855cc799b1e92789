"""A shop's existing aiohttp app, with the VRM adapter embedded in it.

The shop already had a catalogue (/products) and a back office
(/admin/customers). It mounts the adapter at /vrm, and keeps its customers in
its own field names through a mapping table of its own.

    VRM_VENDOR_PASSPHRASE=secret python examples/shop_app.py --db shop.db --port 8080

Then, as a person: ``vrm vendor add http://127.0.0.1:8080/vrm --share email,postal_address``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from aiohttp import web

from vendor_adapter import FieldMapping, Vendor
from vendor_adapter.aiohttp import vrm_app

#: The shop's own CRM field names: a table, not code. Paths a table leaves out
#: are not shown (here: the relationship summary, except the message counts).
SHOP_MAPPING = FieldMapping("shop", {
    "contact": {
        "customer_id": "customer_no",
        "given_name": "first_name",
        "family_name": "surname",
        "email": "mail",
        "phone": "tel",
        "postal_address.street_address": "street",
        "postal_address.locality": "town",
        "postal_address.postal_code": "zip",
        "postal_address.country": "country",
        "marketing": "newsletter_ok",
        "message_counts": "vrm_messages",
        "status": "vrm_status",
    },
    "lead": {
        "id": "enquiry_no",
        "summary": "wants",
        "budget.max": "budget",
        "budget.currency": "budget_currency",
        "needed_by": "by",
        "status": "state",
    },
})

PRODUCTS = [{"sku": "TREK-520", "name": "Trek 520", "price": "749.00"},
            {"sku": "SURLY-DT", "name": "Surly Disc Trucker", "price": "789.00"}]
VENDOR = web.AppKey("vendor", Vendor)


async def products(request: web.Request) -> web.Response:
    return web.json_response(PRODUCTS)


async def customers(request: web.Request) -> web.Response:
    vendor = request.app[VENDOR]
    return web.json_response({"customers": vendor.crm.contacts(),
                              "enquiries": vendor.crm.leads()}, dumps=_dumps)


def _dumps(value: object) -> str:
    import json

    return json.dumps(value, default=str)


def make_shop(vendor: Vendor) -> web.Application:
    shop = web.Application()
    shop[VENDOR] = vendor
    shop.router.add_get("/products", products)
    shop.router.add_get("/admin/customers", customers)  # behind the shop's login, really
    shop.add_subapp("/vrm", vrm_app(vendor))  # GET /vrm/.well-known/vrm, POST /vrm/inbox
    return shop


async def serve(db: str, host: str, port: int) -> None:
    vendor = Vendor.open(db, name="Example Cycles",
                         passphrase=os.environ.get("VRM_VENDOR_PASSPHRASE", "example"),
                         mapping=SHOP_MAPPING)
    runner = web.AppRunner(make_shop(vendor), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    print(f"shop ready at http://{host}:{bound} (VRM base URL http://{host}:{bound}/vrm)",
          flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    vendor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="shop.db")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    asyncio.run(serve(args.db, args.host, args.port))
