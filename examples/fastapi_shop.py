"""A shop's existing FastAPI app, with VRM added in the lines marked "VRM".

The shop already had a catalogue (/products) and a back office
(/admin/customers). It mounts the ASGI adapter at /vrm; people's agents talk to
http://HOST:PORT/vrm. The vendor is opened before the app is built and closed
when the server stops (the app's lifespan): the adapter never opens or closes it.

    VRM_VENDOR_PASSPHRASE=secret python examples/fastapi_shop.py --db shop.db --port 8000

Then, as a person: ``vrm vendor add http://127.0.0.1:8000/vrm --share email``.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from vendor_adapter import Vendor  # VRM
from vendor_adapter.asgi import vrm_app  # VRM

PRODUCTS = [{"sku": "TREK-520", "name": "Trek 520", "price": "749.00"},
            {"sku": "SURLY-DT", "name": "Surly Disc Trucker", "price": "789.00"}]


def create_app(vendor: Vendor) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        vendor.close()  # VRM: the server stops; uvicorn then exits by the signal it got

    app = FastAPI(title="Example Cycles", lifespan=lifespan)

    @app.get("/products")
    def products() -> list[dict[str, str]]:
        return PRODUCTS

    @app.get("/admin/customers")  # behind the shop's login, really
    def customers() -> dict[str, object]:
        return {"customers": vendor.crm.contacts(), "enquiries": vendor.crm.leads()}  # VRM

    app.mount("/vrm", vrm_app(vendor))  # VRM: GET /vrm/.well-known/vrm, POST /vrm/inbox
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="shop.db")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    vendor = Vendor.open(args.db, name="Example Cycles",  # VRM
                         passphrase=os.environ["VRM_VENDOR_PASSPHRASE"])  # VRM
    try:
        listener = socket.create_server((args.host, args.port))
        port = listener.getsockname()[1]
        print(f"shop ready at http://{args.host}:{port} "
              f"(VRM base URL http://{args.host}:{port}/vrm)", flush=True)
        # uvicorn's limits against slow and greedy clients (README.md, "Serving
        # the ASGI app"); a reverse proxy in front adds a request-head timeout.
        uvicorn.Server(uvicorn.Config(
            create_app(vendor), log_level="warning", timeout_keep_alive=5,
            limit_concurrency=1000, h11_max_incomplete_event_size=16 * 1024,
        )).run(sockets=[listener])
    finally:
        vendor.close()  # VRM


if __name__ == "__main__":
    main()
