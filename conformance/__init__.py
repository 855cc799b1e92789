"""``vrm-conformance URL``: a black-box checker for any VRM/1 vendor.

It acts as a new agent (a fresh pairwise key), speaks only the public protocol
(discovery and the inbox over HTTP; no access to the vendor's storage) and runs
the checks of :data:`CHECKS` against the endpoint::

    results = await run_checks("https://shop.example/vrm", offer_hook=None)

Each check names the PROTOCOL.md section it tests and ends ``pass``, ``fail`` or
``not run`` (with the reason). See README.md, "For protocol developers".
"""

from __future__ import annotations

from ._checks import CHECKS, Check, CheckFailed, NotRun, Result, passed, run_checks
from ._context import OFFER_HOOK_ENV, Context

__all__ = ["CHECKS", "Check", "CheckFailed", "NotRun", "Result", "run_checks", "passed", "Context",
           "OFFER_HOOK_ENV"]
