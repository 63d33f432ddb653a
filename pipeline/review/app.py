"""The review web app: FastAPI, server-rendered pages, a little plain JS for the keys.

Security, because it serves files and writes outputs:
- files are served only from inside the output folder (resolved paths, no symlink escapes);
- writes must be same-origin JSON: a cross-site page can neither send JSON without a
  CORS preflight (never answered) nor pass the Origin / Sec-Fetch-Site checks;
- bound to loopback, only loopback Host names are answered (DNS rebinding);
- with a token (required off loopback), every request must carry it: header, cookie,
  or `?token=` once (which sets the cookie).
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from .session import Item, Outcome, ReviewError, ReviewSession, display
from .store import REVIEW_DIR

HERE = Path(__file__).parent
TOKEN_COOKIE = "scanforms_review_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SplitIn(BaseModel):
    id: str


class DecisionIn(BaseModel):
    id: str
    action: str  # accept / set / pick
    text: str | None = None
    index: int | None = None


def safe_path(root: Path, rel: str) -> Path | None:
    """`rel` under `root`, or None if it would leave it (.., absolute, symlink out)."""
    if "\x00" in rel:
        return None
    root = root.resolve()
    try:
        p = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not p.is_relative_to(root) or not p.is_file():
        return None
    return p


def _nav(heads: list[Item], i: int, decided: set[str]) -> dict[str, str | None]:
    """Previous / next group (by its first item), and the next one still open (wrapping round)."""
    n = len(heads)
    nxt_open = next((heads[(i + k) % n].id for k in range(1, n + 1) if heads[(i + k) % n].group not in decided), None)
    return {
        "prev": heads[i - 1].id if i > 0 else None,
        "next": heads[i + 1].id if i + 1 < n else None,
        "next_open": nxt_open,
    }


def group_heads(items: list[Item]) -> list[Item]:
    """One item per group, its first (lowest confidence): the queue as the reviewer walks it."""
    seen: set[str] = set()
    heads = []
    for it in items:
        if it.group not in seen:
            seen.add(it.group)
            heads.append(it)
    return heads


def decided_groups(session: ReviewSession, items: list[Item], decisions: dict[Any, Any]) -> set[str]:
    """Groups every cell of which has a decision."""
    open_groups = {it.group for it in items if not session.is_decided(it, decisions)}
    return {it.group for it in items} - open_groups


STRIP_MAX = 60  # crops shown in a group's strip (a page of hundreds of pictures helps nobody)


def create_app(
    out_dir: Path,
    *,
    reviewer: str = "reviewer",
    token: str | None = None,
    loopback_only: bool = True,
) -> FastAPI:
    """The app for one output folder. `loopback_only`: answer only loopback Host names."""
    session = ReviewSession(Path(out_dir), reviewer)
    root = session.out_dir.resolve()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app = FastAPI(title="scanforms review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.session = session

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if loopback_only and not is_loopback(host):
            return JSONResponse({"error": "bad Host header"}, status_code=400)
        if token is not None:
            given = (
                request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                or request.cookies.get(TOKEN_COOKIE, "")
                or request.query_params.get("token", "")
            )
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "token required"}, status_code=401)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
                return JSONResponse({"error": "cross-origin write refused"}, status_code=403)
            site = request.headers.get("sec-fetch-site")
            if site is not None and site not in ("same-origin", "none"):
                return JSONResponse({"error": "cross-site write refused"}, status_code=403)
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return JSONResponse({"error": "writes take application/json"}, status_code=415)
        response: Response = await call_next(request)
        if token is not None and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        )
        return response

    def page_context(item_id: str | None) -> dict[str, Any]:
        items = session.items()
        decisions = session.decisions()
        heads = group_heads(items)
        decided = decided_groups(session, items, decisions)
        left = len(heads) - len(decided)
        ctx: dict[str, Any] = {
            "items": heads, "decided": decided, "left": left, "total": len(heads), "item": None,
            "cells_left": sum(len(it.cells) for it in items if it.group not in decided),
            "out_dir": str(session.out_dir), "reviewer": session.reviewer, "decisions": decisions,
            "display": display, "files": f"/files/{REVIEW_DIR}/",
        }
        if not items:
            return ctx
        if item_id is None:
            item = next((it for it in heads if it.group not in decided), heads[0])
        else:
            item = next((it for it in items if it.id == item_id), None)
            if item is None:
                raise ReviewError(f"no queue item {item_id!r}")
        i = next(k for k, h in enumerate(heads) if h.group == item.group)
        members = session.members(item)
        by_file: dict[str, int] = {}
        for m in members:
            by_file[m.file] = by_file.get(m.file, 0) + len(m.cells)
        d = decisions.get(item.cell)
        ctx.update(
            item=item, index=i, decision=d, current=display(d.value if d else item.value),
            members=members[:STRIP_MAX], more_members=max(0, len(members) - STRIP_MAX),
            group_cells=sum(len(m.cells) for m in members), group_files=sorted(by_file.items()),
            proposals=[{"n": k + 1, "text": display(a.get("value")), "why": a.get("why", "")}
                       for k, a in enumerate(item.alternatives[:9])],
            **_nav(heads, i, decided),
        )
        return ctx

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, item: str | None = None) -> Response:
        try:
            ctx = page_context(item)
        except ReviewError as e:
            return HTMLResponse(f"<p>{e}</p><p><a href='/'>back to the queue</a></p>", status_code=404)
        return templates.TemplateResponse(request, "review.html", ctx)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        p = safe_path(HERE / "static", name)
        if p is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(p)

    @app.get("/files/{rel:path}")
    def files(rel: str) -> Response:
        """Crops and other outputs: only what lies inside the output folder."""
        p = safe_path(root, rel)
        if p is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(p)

    @app.get("/api/queue")
    def queue() -> dict[str, Any]:
        decisions = session.decisions()
        items = session.items()
        out = []
        for it in items:
            d = decisions.get(it.cell)
            out.append({"id": it.id, "file": it.file, "key": it.key, "confidence": it.confidence,
                        "value": d.value if d else it.value, "decided": session.is_decided(it, decisions),
                        "reviewer": d.reviewer if d else None, "group": it.group, "group_size": it.group_size,
                        "rows": it.rows})
        groups = {o["group"] for o in out}
        open_groups = {o["group"] for o in out if not o["decided"]}
        return {"items": out, "left": sum(not o["decided"] for o in out), "total": len(out),
                "groups": len(groups), "groups_left": len(open_groups)}

    def outcome_json(o: Outcome) -> dict[str, Any]:
        items = session.items()
        decisions = session.decisions()
        heads = group_heads(items)
        decided = decided_groups(session, items, decisions)
        left = len(heads) - len(decided)
        base = {"value": o.value, "cell": o.cell, "cells": o.cells, "left": left}
        if o.item is None:  # not in the queue any more: the page goes back to the start
            return {"id": None, **base, "prev": None, "next": None, "next_open": None}
        i = next(k for k, h in enumerate(heads) if h.group == o.item.group)
        return {"id": o.item.id, **base, **_nav(heads, i, decided)}

    @app.post("/api/decisions")
    def decide(body: DecisionIn) -> Response:
        try:
            o = session.decide(body.id, body.action, text=body.text, index=body.index)
        except ReviewError as e:
            return JSONResponse({"error": str(e)}, status_code=422)
        return JSONResponse(outcome_json(o))

    @app.post("/api/split")
    def split(body: SplitIn) -> Response:
        """Take a cell that differs out of its group (it is then decided on its own)."""
        try:
            it = session.split(body.id)
        except ReviewError as e:
            return JSONResponse({"error": str(e)}, status_code=422)
        return JSONResponse({"id": it.id, "group": it.group, "group_size": it.group_size})

    @app.post("/api/undo")
    def undo() -> Response:
        try:
            o = session.undo()
        except ReviewError as e:
            return JSONResponse({"error": str(e)}, status_code=409)
        if o is None:
            return JSONResponse({"error": "nothing to undo"}, status_code=409)
        return JSONResponse(outcome_json(o))

    @app.get("/api/audit")
    def audit() -> list[dict[str, Any]]:
        return session.store.audit()

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    return app
