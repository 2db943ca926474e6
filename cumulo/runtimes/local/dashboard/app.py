"""The dashboard's routes: HTML pages under ``/ui/`` and the JSON they read under ``/api/``.

With ``CUMULO_API_TOKEN`` set, both need the token (:mod:`cumulo.runtimes.local.auth`).
Open ``/ui/?token=<token>`` once: the gateway answers with a redirect that sets
an ``HttpOnly``, ``SameSite=Strict`` cookie, and the pages (and their calls to
``/api/``) are authorised by it from then on.
"""

from __future__ import annotations

from importlib import resources
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from cumulo.runtimes.local import api_input
from cumulo.runtimes.local.api_models import (
    DeadLettersQuery,
    PageQuery,
    Query,
    RedrivePath,
    RunsQuery,
    SearchQuery,
)
from cumulo.runtimes.local.auth import COOKIE

from . import data, graph, pages, pages_ml
from .api import DashboardData

STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


def not_found(detail: str) -> Response:
    body = {"type": "about:blank", "title": "Not found", "status": 404, "detail": detail}
    return JSONResponse(body, status_code=404, media_type="application/problem+json")


class Dashboard:
    def __init__(self, data: DashboardData):
        self.data = data

    def routes(self) -> list[Route]:
        return [
            Route("/api/functions", self.api_functions),
            Route("/api/graph", self.api_graph),
            Route("/api/events/search", self.api_search),
            Route("/api/runs", self.api_runs),
            Route("/api/runs/{id}", self.api_run),
            Route("/api/runs/{id}/log", self.api_log),
            Route("/api/models", self.api_models),
            Route("/api/dead-letters", self.api_dead_letters),
            Route("/api/dead-letters/{offset}/redrive", self.api_redrive, methods=["POST"]),
            Route("/ui", lambda request: RedirectResponse("/ui/")),
            Route("/ui/", self.ui(self.functions_page)),
            Route("/ui/graph", self.ui(self.graph_page)),
            Route("/ui/events", self.ui(self.events_page, SearchQuery)),
            Route("/ui/runs", self.ui(self.runs_page, RunsQuery)),
            Route("/ui/runs/{id}", self.ui(self.run_page)),
            Route("/ui/models", self.ui(self.models_page)),
            Route("/ui/dead-letters", self.ui(self.dead_letters_page, DeadLettersQuery)),
            Route("/ui/static/{name}", self.static),
        ]

    # --- JSON ------------------------------------------------------------------

    async def api_functions(self, request: Request) -> Response:
        return JSONResponse(await self.data.functions())

    async def api_graph(self, request: Request) -> Response:
        return JSONResponse((await self.data.graph()).json())

    async def api_search(self, request: Request) -> Response:
        ask = api_input.query(SearchQuery, request)
        bus = self.data.bus(ask.bus)
        if bus is None:
            return not_found(f"no event bus named '{ask.bus}'")
        return JSONResponse(await self.data.search(bus, ask.topic, data.EventQuery.of(ask)))

    async def api_runs(self, request: Request) -> Response:
        ask = api_input.query(RunsQuery, request)
        return JSONResponse(await self.data.runs(ask.function or None, ask.limit))

    async def api_run(self, request: Request) -> Response:
        run = await self.data.run(request.path_params["id"])
        return JSONResponse(run) if run else not_found("no such run")

    async def api_log(self, request: Request) -> Response:
        log = await self.data.run_log(request.path_params["id"])
        return not_found("no such run") if log is None else PlainTextResponse(log)

    async def api_models(self, request: Request) -> Response:
        return JSONResponse(await self.data.stores.models())

    async def api_dead_letters(self, request: Request) -> Response:
        bus, topic = self._dead_letter_topic(request)
        if bus not in self.data.buses:
            return not_found(f"no event bus named '{bus}'")
        return JSONResponse(await self.data.dead_letters(bus, topic))

    async def api_redrive(self, request: Request) -> Response:
        offset = api_input.path(RedrivePath, request).offset
        bus, topic = self._dead_letter_topic(request)
        if bus not in self.data.buses:
            return not_found(f"no event bus named '{bus}'")
        done = await self.data.redrive(bus, topic, offset)
        missing = f"no dead letter at offset {offset} of topic '{topic}'"
        return JSONResponse(done) if done else not_found(missing)

    def _dead_letter_topic(self, request: Request) -> tuple[str, str]:
        ask = api_input.query(DeadLettersQuery, request)
        return ask.bus, ask.topic or self.data.dead_letter_topics()[0]

    # --- HTML ------------------------------------------------------------------

    def ui(self, render: Any, rules: type[Query] = PageQuery) -> Any:
        """A page handler; ``?token=`` (already checked by the auth middleware) becomes a cookie.

        The page's own query ``rules`` are checked first: a bad query is a 400, not a redirect.
        """

        async def handle(request: Request) -> Response:
            api_input.query(rules, request)
            token = api_input.query(PageQuery, request).token
            if token:
                kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                query = urlencode(kept)
                to = request.url.path + (f"?{query}" if query else "")
                answer = RedirectResponse(to, status_code=303)
                answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
                return answer
            html = await render(request)
            return HTMLResponse(html) if isinstance(html, str) else html

        return handle

    async def functions_page(self, request: Request) -> str:
        status = await self.data.status()
        return pages.functions_page(await self.data.functions(), status)

    async def graph_page(self, request: Request) -> str:
        return pages.graph_page(graph.svg(await self.data.graph()))

    async def events_page(self, request: Request) -> str | Response:
        ask = api_input.query(SearchQuery, request)
        bus = self.data.bus(ask.bus)
        if bus is None:
            return not_found(f"no event bus named '{ask.bus}'")
        found = await self.data.search(bus, ask.topic, data.EventQuery.of(ask))
        form = dict(request.query_params)  # as typed, to fill the search form again
        return pages.events_page(found, form, await bus.topics() or ["default"])

    async def runs_page(self, request: Request) -> str:
        ask = api_input.query(RunsQuery, request)
        return pages.runs_page(await self.data.runs(ask.function or None, ask.limit), ask.function)

    async def run_page(self, request: Request) -> str | Response:
        run = await self.data.run(request.path_params["id"])
        if run is None:
            return not_found("no such run")
        return pages.run_page(run, await self.data.run_log(run["id"]) or "")

    async def models_page(self, request: Request) -> str:
        return pages_ml.models_page(await self.data.stores.models())

    async def dead_letters_page(self, request: Request) -> str | Response:
        bus, topic = self._dead_letter_topic(request)
        if bus not in self.data.buses:
            return not_found(f"no event bus named '{bus}'")
        letters = await self.data.dead_letters(bus, topic)
        triggers = sorted(self.data.project.all_triggers())
        return pages_ml.dead_letters_page(letters, topic, bus, triggers)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return not_found("no such file")
        text = resources.files(__package__).joinpath("static", name).read_text()
        return Response(text, media_type=STATIC[name], headers={"cache-control": "no-cache"})
