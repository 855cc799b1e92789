"""The dashboard: aiohttp handlers and Jinja2 templates over the async
:class:`agent.Agent` API. No SQL and no protocol code here: every read is an
Agent method, every change is an Agent call.

Pages (all GET, none changes anything):

====================  ==========================================================
``/``                 overview: each vendor, what it may see and was told, the
                      last receipt; pending and failed deliveries; add a vendor
``/vendors/N``        one relationship: its history with receipts verified
                      again, its offers, the fields it may see (change them), end
``/vendors/N/end``    the confirmation step before ending (``?erase=1``: and
                      erasing)
``/profile``          the person's fields; saving tells the vendors
``/intents``          a new intent; each intent with its offers; cancel; check
                      for offers
``/outbox``           pending and failed messages with reasons; deliver now
``/backup``           download a backup (``vrm backup``) or an export
``/jobs/ID``          one action as it happens, then its results
                      (``/jobs/ID.json`` is what ``static/app.js`` polls)
====================  ==========================================================

Every change is a POST (see :mod:`agent.ui.security` for the checks) that
starts a *job* and answers 303 to the job's page, so reloading never repeats
it. Jobs run one at a time under one lock, in the order they were asked for:
two deliveries never race over the outbox. The job page works without
script (it reloads itself from a ``<noscript>`` refresh); ``static/app.js``
shows each vendor's delivery as it happens by polling the JSON.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

import protocol

from .._agent import Agent, SyncResult
from .._delivery import DeliveryResult
from .._errors import AgentError, UnknownVendor, UsageError
from .._profile import FIELD_NAMES, SHAREABLE
from .._vendors import REACHABLE
from .security import CSRF_FIELD, Gate, gate_middleware, read_form

__all__ = ["create_app", "Job", "AGENT", "GATE", "JOBS"]

_HERE = Path(__file__).parent
#: A form is a few fields: anything bigger is refused (413) before it is read.
MAX_BODY = 64 * 1024
#: Finished jobs kept for their pages; the oldest are forgotten first.
MAX_JOBS = 200
_NAV = (("overview", "/", "Overview"), ("profile", "/profile", "Profile"),
        ("intents", "/intents", "Intents"), ("outbox", "/outbox", "Outbox"),
        ("backup", "/backup", "Backup"))


@dataclass
class Job:
    """One action started from a page: its progress, then its outcome."""

    id: str
    title: str
    back: str
    back_label: str
    #: waiting (another job runs), running, done or failed
    state: str = "waiting"
    done: int = 0
    total: int | None = None
    #: One row per vendor touched: {"vendor", "what", "status", "detail"}.
    rows: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def progress(self, done: int, total: int, result: DeliveryResult | SyncResult) -> None:
        """The Agent's ``progress(done, total, result)`` callback."""
        self.done, self.total = done, total
        self.rows.append(_row(result))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "done": self.done, "total": self.total,
                "rows": self.rows, "message": self.message, "error": self.error}


def _row(result: DeliveryResult | SyncResult) -> dict[str, Any]:
    if isinstance(result, SyncResult):
        new = f"{result.new_messages} new" if result.status == "ok" else None
        return {"vendor": result.vendor, "what": "check for offers", "status": result.status,
                "detail": result.detail or new}
    detail = result.detail or (f"receipt: {result.receipt_status}"
                               if result.receipt_status else None)
    if result.vendor_status == "key-changed":
        detail = "answered with another key: nothing more is sent to it"
    return {"vendor": result.vendor, "what": result.type, "status": result.status,
            "detail": detail}


class _Jobs:
    """The jobs of this run, and the lock that makes them take turns."""

    def __init__(self) -> None:
        self.by_id: dict[str, Job] = {}
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, job: Job, work: Callable[[Job], Awaitable[None]]) -> None:
        self.by_id[job.id] = job
        finished = [j for j in self.by_id.values() if j.finished]  # oldest first
        while len(self.by_id) > MAX_JOBS and finished:
            del self.by_id[finished.pop(0).id]
        task = asyncio.create_task(self._run(job, work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, job: Job, work: Callable[[Job], Awaitable[None]]) -> None:
        async with self.lock:
            job.state = "running"
            try:
                await work(job)
                job.state = "done"
            except AgentError as exc:
                job.error, job.state = str(exc), "failed"
            except asyncio.CancelledError:
                job.error, job.state = "the dashboard stopped before this finished", "failed"
                raise
            except Exception as exc:  # a sentence on the page, never a traceback
                job.error = (f"unexpected error ({type(exc).__name__}); nothing acknowledged "
                             f"is lost: the outbox keeps what was not confirmed")
                job.state = "failed"
                sys.stderr.write("vrm ui: " + protocol.display_text(
                    f"{job.title} failed: {type(exc).__name__}: {exc}") + "\n")

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


AGENT = web.AppKey("agent", Agent)
GATE = web.AppKey("gate", Gate)
JOBS = web.AppKey("jobs", _Jobs)
_ENV = web.AppKey("env", jinja2.Environment)


def _shown(value: Any) -> Any:
    """Jinja's ``finalize``: every string printed is made visible first (control
    and bidi characters escaped, as on the terminal); autoescape then makes it
    HTML text. Our own markup (Markup) is left alone."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Markup):
        return protocol.display_text(value)
    return value


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_HERE / "templates"),
                             autoescape=True, finalize=_shown, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["short"] = lambda text, n=12: text if len(text) <= n else text[:n] + "…"
    env.filters["web_url"] = lambda url: url if isinstance(url, str) and url.startswith(
        ("https://", "http://")) else None
    return env


def _when(text: Any) -> str:
    """A stored UTC timestamp (or datetime) shown to the second, in UTC."""
    if isinstance(text, datetime):
        return text.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(text, str) and len(text) >= 19:
        return text[:10] + " " + text[11:19] + " UTC"
    return "" if text is None else str(text)


def create_app(agent: Agent, *, gate: Gate | None = None) -> web.Application:
    """The dashboard for ``agent``; set ``gate.port`` once bound (nothing passes
    the gate before). The caller keeps ``agent`` open while the app runs."""
    gate = gate or Gate()
    app = web.Application(middlewares=[gate_middleware(gate), _errors],
                          client_max_size=MAX_BODY)
    app[AGENT] = agent
    app[GATE] = gate
    app[JOBS] = _Jobs()
    app[_ENV] = _environment()

    async def stop_jobs(app: web.Application) -> None:
        await app[JOBS].stop()

    app.on_shutdown.append(stop_jobs)
    routes = [
        web.get("/", overview), web.post("/vendors", add_vendor),
        web.get(r"/vendors/{id:\d{1,12}}", vendor_page),
        web.post(r"/vendors/{id:\d{1,12}}/share", change_share),
        web.get(r"/vendors/{id:\d{1,12}}/end", confirm_end),
        web.post(r"/vendors/{id:\d{1,12}}/end", end_vendor),
        web.get("/profile", profile_page), web.post("/profile", save_profile),
        web.get("/intents", intents_page), web.post("/intents", send_intent),
        web.post(r"/intents/{id:[A-Za-z0-9_-]{1,64}}/cancel", cancel_intent),
        web.post("/sync", sync),
        web.get("/outbox", outbox_page), web.post("/deliver", deliver),
        web.get("/backup", backup_page), web.get("/backup/export.json", export),
        web.get("/backup/vrm-backup.db", backup),
        web.get(r"/jobs/{id:[A-Za-z0-9_-]{1,32}}", job_page),
        web.get(r"/jobs/{id:[A-Za-z0-9_-]{1,32}}.json", job_json),
        web.static("/static", _HERE / "static", follow_symlinks=False),
    ]
    app.add_routes(routes)
    return app


# --- rendering ------------------------------------------------------------------

@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """A mistake is a page with one sentence (400); anything unexpected is a page
    that says so (500) and one line on stderr, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except AgentError as exc:
        return _render(request, "error.html", page="", status=400, title="That did not work",
                       text=str(exc))
    except Exception as exc:
        sys.stderr.write("vrm ui: " + protocol.display_text(
            f"{request.method} {request.path} failed: {type(exc).__name__}: {exc}") + "\n")
        return web.Response(status=500, content_type="text/plain",
                            text="500: unexpected error; the terminal running vrm ui says "
                                 "more\n")


def _render(request: web.Request, template: str, *, page: str, status: int = 200,
            **context: Any) -> web.Response:
    agent = request.app[AGENT]
    html = request.app[_ENV].get_template(template).render(
        page=page, nav=_NAV, csrf=request.app[GATE].csrf, csrf_field=CSRF_FIELD,
        person=agent.name, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _not_found(request: web.Request, text: str) -> web.Response:
    return _render(request, "error.html", page="", status=404, title="Not found", text=text)


def _vendor_or_none(agent: Agent, request: web.Request) -> dict[str, Any] | None:
    try:
        return agent.vendor(int(request.match_info["id"]))
    except UnknownVendor:
        return None


def _start(request: web.Request, title: str, back: str, back_label: str,
           work: Callable[[Job], Awaitable[None]]) -> web.Response:
    job = Job(id=secrets.token_urlsafe(12), title=title, back=back, back_label=back_label)
    request.app[JOBS].start(job, work)
    return web.Response(status=303, headers={"Location": f"/jobs/{job.id}"})


async def _form(request: web.Request) -> dict[str, str | list[str]]:
    """The posted form: text fields only (a file is ignored), repeated names as lists."""
    form = await read_form(request)
    fields: dict[str, str | list[str]] = {}
    for name in set(form.keys()):
        values = [v for v in form.getall(name) if isinstance(v, str)]
        if values:
            fields[name] = values if len(values) > 1 else values[0]
    return fields


def _text(form: dict[str, str | list[str]], name: str) -> str:
    value = form.get(name, "")
    return (value[-1] if isinstance(value, list) else value).strip()


def _all(form: dict[str, str | list[str]], name: str) -> list[str]:
    value = form.get(name, [])
    return value if isinstance(value, list) else [value]


# --- pages ----------------------------------------------------------------------

async def overview(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    outbox = agent.outbox()
    held: dict[int, set[str]] = {}
    for row in agent.shared():
        held.setdefault(row["vendor_id"], set()).add(row["field"].split(".", 1)[0])
    told = {vendor_id: [f for f in SHAREABLE if f in fields] for vendor_id, fields in held.items()}
    last: dict[int, dict[str, Any]] = {}
    last_receipt: dict[int, dict[str, Any]] = {}
    waiting: dict[int, dict[str, int]] = {}
    for row in outbox:  # in the order queued
        last[row["vendor_id"]] = row
        if row["receipt_status"]:
            last_receipt[row["vendor_id"]] = row
        if row["status"] != "delivered":
            counts = waiting.setdefault(row["vendor_id"], {})
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    vendors = [{**v, "told": told.get(v["id"], []), "last": last.get(v["id"]),
                "last_receipt": last_receipt.get(v["id"]), "waiting": waiting.get(v["id"], {})}
               for v in agent.vendors()]
    totals = {status: sum(1 for r in outbox if r["status"] == status)
              for status in ("pending", "failed", "rejected", "expired")}
    return _render(request, "overview.html", page="overview", vendors=vendors, totals=totals,
                   shareable=SHAREABLE)


async def vendor_page(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    vendor = _vendor_or_none(agent, request)
    if vendor is None:
        return _not_found(request, "There is no vendor with this number.")
    return _render(request, "vendor.html", page="overview", vendor=vendor,
                   messages=agent.vendor_history(vendor["id"])["messages"],
                   offers=agent.offers(vendor=vendor["id"]), shareable=SHAREABLE,
                   reachable=vendor["status"] in REACHABLE,
                   can_end=vendor["status"] in ("pending", "active", "ending", "key-changed"),
                   can_erase=vendor["status"] != "refused" and not vendor["erased"])


async def confirm_end(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    vendor = _vendor_or_none(agent, request)
    if vendor is None:
        return _not_found(request, "There is no vendor with this number.")
    return _render(request, "confirm_end.html", page="overview", vendor=vendor,
                   erase=request.query.get("erase") == "1")


async def profile_page(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    profile = agent.profile()
    fields = [{"name": name, "value": profile.get(name, "")} for name in FIELD_NAMES]
    sees = {name: [v["name"] for v in agent.vendors()
                   if v["status"] in REACHABLE and name in v["share"]] for name in SHAREABLE}
    return _render(request, "profile.html", page="profile", fields=fields, sees=sees)


async def intents_page(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    offers: dict[str, list[dict[str, Any]]] = {}
    for offer in agent.offers():  # newest first
        offers.setdefault(offer["intent_id"], []).append(offer)
    return _render(request, "intents.html", page="intents", intents=agent.intents(),
                   offers=offers)


async def outbox_page(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    rows = agent.outbox()
    unsettled = [r for r in rows if r["status"] != "delivered"]
    return _render(request, "outbox.html", page="outbox", rows=unsettled,
                   delivered=len(rows) - len(unsettled), pending=agent.pending())


async def backup_page(request: web.Request) -> web.Response:
    return _render(request, "backup.html", page="backup", home=str(request.app[AGENT].home))


async def backup(request: web.Request) -> web.Response:
    """The whole store as one SQLite file (``Agent.backup``, as ``vrm backup``):
    keys stay sealed; ``vrm restore`` takes it back."""
    buffer = io.BytesIO()
    await request.app[AGENT].backup(buffer)
    return web.Response(body=buffer.getvalue(), content_type="application/vnd.sqlite3",
                        headers={"Content-Disposition":
                                 'attachment; filename="vrm-backup.db"'})


async def export(request: web.Request) -> web.Response:
    data = request.app[AGENT].export()
    body = protocol.display_json(data, indent=2, default=str) + "\n"
    return web.Response(text=body, content_type="application/json", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="vrm-export.json"'})


async def job_page(request: web.Request) -> web.Response:
    job = request.app[JOBS].by_id.get(request.match_info["id"])
    if job is None:
        return _not_found(request, "This action is not known here (the dashboard was "
                                   "restarted, or it was long ago).")
    return _render(request, "job.html", page="", job=job)


async def job_json(request: web.Request) -> web.Response:
    job = request.app[JOBS].by_id.get(request.match_info["id"])
    if job is None:
        return web.json_response({"error": "unknown job"}, status=404)
    return web.json_response(job.to_json())


# --- actions (POST): each starts a job ------------------------------------------

async def add_vendor(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    form = await _form(request)
    url, share = _text(form, "url"), _all(form, "share")
    allow_http = _text(form, "allow_http") == "1"

    async def work(job: Job) -> None:
        vendor = await agent.add_vendor(url, share=share, allow_http=allow_http,
                                        progress=job.progress)
        job.back = f"/vendors/{vendor['id']}"
        job.back_label = f"Go to {vendor['name']}"
        delivery = vendor.get("delivery") or {}
        if vendor["action"] == "unchanged":
            job.message = (f"{vendor['name']} is already vendor {vendor['id']} "
                           f"({vendor['status']}); nothing to send.")
        elif delivery.get("status") == "pending":
            job.message = (f"Added {vendor['name']}; the relationship request is queued "
                           f"({delivery.get('detail')}) and will be retried.")
        else:
            job.message = f"Added {vendor['name']} ({vendor['status']})."

    return _start(request, f"Adding the vendor at {url[:200]}", "/", "Back to the overview",
                  work)


async def change_share(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    vendor = _vendor_or_none(agent, request)
    if vendor is None:
        return _not_found(request, "There is no vendor with this number.")
    form = await _form(request)
    share = _all(form, "share")
    back = f"/vendors/{vendor['id']}"

    async def work(job: Job) -> None:
        if vendor["status"] not in REACHABLE:
            raise UsageError(f"the relationship with {vendor['name']} is {vendor['status']}; "
                             f"add the vendor again to share with it")
        result = await agent.add_vendor(vendor["url"], share=share, progress=job.progress)
        shares = ", ".join(result["share"]) or "none of your fields"
        job.message = (f"{result['name']} may see {shares}; nothing to send."
                       if result["action"] == "unchanged" else
                       f"{result['name']} may now see {shares}.")

    return _start(request, f"Changing what {vendor['name']} may see", back,
                  f"Back to {vendor['name']}", work)


async def end_vendor(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    vendor = _vendor_or_none(agent, request)
    if vendor is None:
        return _not_found(request, "There is no vendor with this number.")
    form = await _form(request)
    erase = _text(form, "erase") == "1"
    if _text(form, "confirm") != "yes":  # the confirmation step comes first
        return web.Response(status=303, headers={
            "Location": f"/vendors/{vendor['id']}/end" + ("?erase=1" if erase else "")})
    reason = _text(form, "reason") or None

    async def work(job: Job) -> None:
        result = await agent.end_vendor(vendor["id"], erase=erase, reason=reason,
                                        progress=job.progress)
        if result is None:
            job.message = (f"Ended the relationship with {vendor['name']} here only: its key "
                           f"changed, so nothing was sent to it.")
            return
        job.rows = [_row(result)]
        job.message = (f"{vendor['name']} confirmed with a signed receipt that the "
                       f"relationship has ended"
                       + (" and that it will erase your data." if erase else ".")
                       if result.status == "delivered" else
                       f"Asking {vendor['name']} to end the relationship"
                       + (" and erase your data" if erase else "") + f": {result.status}.")

    return _start(request, f"Ending the relationship with {vendor['name']}"
                  + (" and erasing your data" if erase else ""),
                  f"/vendors/{vendor['id']}", f"Back to {vendor['name']}", work)


async def save_profile(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    form = await _form(request)
    changes: dict[str, str | None] = {name: _text(form, name) or None
                                      for name in FIELD_NAMES if name in form}

    async def work(job: Job) -> None:
        broadcast = await agent.set_profile(changes, progress=job.progress)
        job.rows = [_row(r) for r in broadcast.results]
        if not broadcast.changed:
            job.message = "Nothing changed: your profile already holds these values."
        elif not broadcast.message_ids:
            job.message = "Profile saved; no vendor may see the fields that changed."
        else:
            delivered = sum(1 for r in broadcast.results if r.status == "delivered")
            job.message = (f"Profile saved; {delivered} of {len(broadcast.results)} vendors "
                           f"confirmed the change with a signed receipt.")

    return _start(request, "Saving your profile and telling your vendors", "/profile",
                  "Back to your profile", work)


async def send_intent(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    form = await _form(request)
    summary, amount = _text(form, "summary"), _text(form, "budget")
    currency = _text(form, "currency") or "EUR"

    async def work(job: Job) -> None:
        broadcast = await agent.intent(
            summary, category=_text(form, "category") or None,
            budget=(amount, currency) if amount else None,
            needed_by=_text(form, "needed_by") or None,
            locality=_text(form, "location") or None, progress=job.progress)
        job.rows = [_row(r) for r in broadcast.results]
        delivered = sum(1 for r in broadcast.results if r.status == "delivered")
        job.message = (f"Intent sent; {delivered} of {len(broadcast.results)} vendors "
                       f"confirmed it. Offers arrive with “Check for offers”.")

    return _start(request, f"Sending your intent: {summary[:200]}", "/intents",
                  "Back to your intents", work)


async def cancel_intent(request: web.Request) -> web.Response:
    """Withdraw the intent named in the path: its id or a unique start of it
    (``Agent.cancel_intent``, as ``vrm intent cancel``). An open or expired
    intent may be cancelled; one cancelled already is a one-sentence failure."""
    agent = request.app[AGENT]
    intent_id = request.match_info["id"]

    async def work(job: Job) -> None:
        broadcast = await agent.cancel_intent(intent_id, progress=job.progress)
        job.rows = [_row(r) for r in broadcast.results]
        job.message = f"Intent cancelled; {len(broadcast.results)} vendors were told."

    return _start(request, "Cancelling an intent", "/intents", "Back to your intents", work)


async def sync(request: web.Request) -> web.Response:
    agent = request.app[AGENT]

    async def work(job: Job) -> None:
        results = await agent.sync(progress=job.progress)
        job.rows = [_row(r) for r in results]
        new = sum(r.new_messages for r in results)
        job.message = (f"Asked {len(results)} vendors; {new} new message"
                       f"{'' if new == 1 else 's'}." if results else
                       "No active vendors to ask.")

    return _start(request, "Checking for offers", "/intents", "Back to your intents", work)


async def deliver(request: web.Request) -> web.Response:
    agent = request.app[AGENT]

    async def work(job: Job) -> None:
        results = await agent.deliver(progress=job.progress)
        job.rows = [_row(r) for r in results]
        waiting = agent.pending()["pending"]
        job.message = (f"Tried {len(results)} messages; {waiting} still pending."
                       if results else "Nothing was due now.")

    return _start(request, "Delivering the outbox", "/outbox", "Back to the outbox", work)
