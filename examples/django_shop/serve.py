"""Serve the Django shop, with VRM at /vrm/, through uvicorn.

    VRM_VENDOR_PASSPHRASE=secret python examples/django_shop/serve.py --db shop.db --port 8000

prints ``shop ready at http://HOST:PORT`` once it listens. The same as
``uvicorn shop.asgi:application --timeout-keep-alive 5 --limit-concurrency 1000``
run from this directory, with port 0 (a free port) allowed.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="shop.db")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    os.environ["VRM_SHOP_DB"] = os.path.abspath(args.db)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    listener = socket.create_server((args.host, args.port))
    port = listener.getsockname()[1]
    print(f"shop ready at http://{args.host}:{port} "
          f"(VRM base URL http://{args.host}:{port}/vrm)", flush=True)
    uvicorn.Server(uvicorn.Config("shop.asgi:application", log_level="warning",
                                  lifespan="on", timeout_keep_alive=5,
                                  limit_concurrency=1000)).run(sockets=[listener])


if __name__ == "__main__":
    main()
