"""Server rules in evaluation order; enable, disable or remove one."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.errors import NotFound
from hounsfield.rules.model import Rule, format_after
from hounsfield.rules.saved import list_rules, remove_rule, save_rule
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The rules page of `archive`."""
    router = APIRouter()
    engine = archive.engine

    def one(name: str) -> Rule:
        for rule in list_rules(engine):
            if rule.name == name:
                return rule
        raise NotFound(f"no rule named {name!r}")

    def listed(request: Request, name: str = "rules_table.html") -> HTMLResponse:
        return page(request, name, rules=list_rules(engine), after=format_after)

    @router.get("/rules", response_class=HTMLResponse)
    def get_rules(request: Request) -> HTMLResponse:
        return listed(request, "rules.html")

    @router.post("/rules/{name}/enable", response_class=HTMLResponse)
    def post_enable(request: Request, name: str) -> HTMLResponse:
        save_rule(engine, replace(one(name), enabled=True))
        return listed(request)

    @router.post("/rules/{name}/disable", response_class=HTMLResponse)
    def post_disable(request: Request, name: str) -> HTMLResponse:
        save_rule(engine, replace(one(name), enabled=False))
        return listed(request)

    @router.post("/rules/{name}/remove", response_class=HTMLResponse)
    def post_remove(request: Request, name: str) -> HTMLResponse:
        remove_rule(engine, name)
        return listed(request)

    return router
