"""`llmrec serve RUN_DIR`: FastAPI over a trained run, uvicorn underneath.

POST /recommend        {"user": U} or {"history": [...]}, k, exclude_history, explain, candidates, now
                       (a history lists item ids, or {"item": .., "t": ..} with times: unix seconds
                       or ISO-8601 dates; `now`, the request's time, likewise)
POST /recommend/batch  {"requests": [...]}: many users in one call
GET  /healthz          the process is up          GET /readyz   the model is loaded
GET  /metrics          Prometheus: requests by endpoint and status, latency, batch sizes, queue depth

Requests are checked before they queue (unknown user: 404; unknown items, a shortlist with the
hybrid: 400; malformed JSON, k out of range, an empty history: 422; each message names the field),
decoded in dynamic batches (`batcher.py`), and answered with what `llmrec recommend` gives for the
same history. A full queue answers 503 with Retry-After. The run directory is read-only to the
server, so replicas scale out behind any load balancer; items added or removed with `llmrec items`
are picked up between batches (the recommender is rebuilt when the catalogue files change).

Limits: a request body over `max_body_bytes` (default 1 MiB) answers 413 before it is parsed; with
an API key (`--api-key`, or the LLMREC_API_KEY environment variable, as vLLM's `--api-key` /
VLLM_API_KEY) every endpoint but the probes needs `Authorization: Bearer KEY` (401 otherwise); the
probes (/healthz, /readyz, /metrics) stay open. A run that cannot load (a missing or damaged file, a
setting this version does not know) stops the server at start with the error, never a 503 forever.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from starlette.exceptions import HTTPException

from llmrec import recipes
from llmrec.errors import InputError
from llmrec.generate import Recommendation
from llmrec.mix import HybridRecommender, load_recommender
from llmrec.prompts.time import check_times, parse_time
from llmrec.run_dir import RunDir
from llmrec.serve.batcher import Batcher, Job, QueueFull


class TimedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str
    t: float | str = Field(description="when: unix seconds, or an ISO-8601 date")


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, description="a user of the run's data (their whole known history)")
    history: list[str | TimedItem] | None = Field(
        None, min_length=1, description="item ids, oldest first; or {item, t} entries with their times"
    )
    now: float | str | None = Field(
        None, description="the request's time (unix seconds or ISO-8601); default: the last item's time "
        "plus the user's median gap",
    )  # fmt: skip
    k: int = Field(10, ge=1, le=1000)
    exclude_history: bool | None = Field(None, description="default: the run's generate.exclude_history")
    explain: bool = Field(False, description="a reason grounded in the history for each item")
    candidates: list[str] | None = Field(None, min_length=1, description="rank only these items")
    domain: str | None = Field(
        None,
        description="a run over several domains: the one to recommend from (default: a known user's own)",
    )
    _items: list[str] | None = PrivateAttr(None)
    _times: list[float] | None = PrivateAttr(None)  # the history's times (a known user's: from the data)
    _now: float | None = PrivateAttr(None)
    _domain: str | None = PrivateAttr(None)  # the domain asked for, or a known user's own

    @model_validator(mode="after")
    def _one_source(self) -> RecommendRequest:
        if (self.user is None) == (self.history is None):
            raise ValueError("give exactly one of 'user' or 'history'")
        try:
            self._now = None if self.now is None else parse_time(self.now, "request", "now")
            if self.history is not None:
                timed = [isinstance(x, TimedItem) for x in self.history]
                if any(timed) and not all(timed):
                    n = timed.index(not timed[0])
                    raise InputError("give a time for every history entry ({item, t}) or for none",
                                     where=f"history[{n}]", field="t")  # fmt: skip
                if all(timed):
                    self._items = [x.item for x in self.history]
                    self._times = [parse_time(x.t, f"history[{n}]") for n, x in enumerate(self.history)]
                    check_times(self._items, self._times, self._now)
                else:
                    self._items = list(self.history)
                    if self._now is not None:
                        raise InputError("now needs the history's times ({item, t} entries)", field="now")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[RecommendRequest] = Field(min_length=1, max_length=1000)


class Item(BaseModel):
    item: str
    title: str
    score: float
    rank: int
    reason: str | None = None
    evidence: list[dict] | None = None


class RecommendResponse(BaseModel):
    user: str | None
    items: list[Item]


class BadRequest(Exception):
    def __init__(self, status: int, message: str, field: str) -> None:
        super().__init__(message)
        self.status, self.field = status, field


class Engine:
    """The run's recommender (plain or hybrid), its explainer and users. A watcher thread rebuilds
    them when `llmrec items` changes the catalogue files and swaps them in as a whole: a batch
    decodes with the state it started with, and requests are checked against the newest."""

    WATCHED = ("item_ids.parquet", "items.parquet", "unavailable.json", "added_rows.safetensors",
               "item_text_vectors.npy")  # fmt: skip

    def __init__(self, run_dir: Path, backend: str | None, mix: str | None, watch_s: float = 2.0) -> None:
        self.run, self.backend, self.mix = RunDir(run_dir), backend, mix
        self.stamp = None
        self.lock = threading.Lock()
        self.reload()
        threading.Thread(
            target=self._watch, args=(watch_s,), name="llmrec-catalogue-watch", daemon=True
        ).start()

    def _watch(self, every_s: float) -> None:
        while True:
            time.sleep(every_s)
            try:
                self.maybe_reload()
            except Exception as exc:  # noqa: BLE001 - a half-finished change: keep serving, try again
                print(f"catalogue reload failed, serving the previous one: {exc}", flush=True)

    def _stamp(self) -> tuple:
        return tuple(
            p.stat().st_mtime_ns if p.exists() else 0 for p in (self.run.path / n for n in self.WATCHED)
        )

    def reload(self) -> None:
        stamp = self._stamp()
        rec = load_recommender(self.run.path, self.backend, self.mix, log=lambda _: None)
        split = self.run.load_split()
        users = {
            row["user"]: (split.full_history(row), split.full_times(row), row.get("domain"))
            for _, row in split.users.iterrows()
        }
        with self.lock:
            self.rec, self.split, self.users, self.stamp = rec, split, users, stamp
            self.explainer = None

    def maybe_reload(self) -> None:
        if self._stamp() != self.stamp:
            self.reload()

    def history_of(self, req: RecommendRequest) -> list[str]:
        """The request's history, checked against the loaded catalogue (raises BadRequest); a known
        user's times join the request (`req._times`)."""
        with self.lock:
            rec, users, split = self.rec, self.users, self.split
        req._domain = req.domain
        if req.user is not None:
            if req.user not in users:
                raise BadRequest(404, f"unknown user '{req.user}'", "user")
            history, req._times, own = users[req.user]
            req._domain = req.domain or own
            if req._now is not None:
                if req._times is None:
                    raise BadRequest(422, "now: this run's data has no times", "now")
                try:
                    check_times(history, req._times, req._now, where=f"user {req.user}")
                except InputError as exc:
                    raise BadRequest(422, str(exc), "now") from None
        else:
            history = req._items
        for name, items in (("history", history), ("candidates", req.candidates or [])):
            unknown = [i for i in items if i not in rec.item_ids.index]
            if unknown:
                raise BadRequest(400, f"unknown item id(s) {unknown[:5]} (not in the catalogue)", name)
        if split.domains is not None and req._domain is None:
            raise BadRequest(422, f"this run covers several domains ({', '.join(split.domains)}): name the "
                             "one to recommend from", "domain")  # fmt: skip
        try:
            split.check_domain(req.domain)
        except InputError as exc:
            raise BadRequest(422, exc.reason, "domain") from None
        if req.candidates is not None and isinstance(rec, HybridRecommender):
            raise BadRequest(400, "a shortlist cannot be reranked with the hybrid mix", "candidates")
        return history

    def decode(self, jobs: list[Job]) -> list[list[Recommendation]]:
        """One batch of jobs sharing k, exclusion, explanation and shortlist-or-not."""
        with self.lock:
            rec, explainer, split = self.rec, self.explainer, self.split
        req: RecommendRequest = jobs[0].payload
        histories = [job.history for job in jobs]
        kwargs = {"k": req.k, "exclude_history": req.exclude_history}
        if any(job.payload._times is not None for job in jobs):
            kwargs["times"] = [job.payload._times for job in jobs]
            kwargs["now"] = [job.payload._now for job in jobs]
        if req.candidates is not None:
            kwargs["candidates"] = [job.payload.candidates for job in jobs]
        if split.domains is not None:
            kwargs["domains"] = [job.payload._domain for job in jobs]
        recs = rec.recommend(histories, **kwargs)
        if req.explain:
            if explainer is None:
                explainer = recipes.explainer(self.run, rec, split)
                with self.lock:
                    if self.rec is rec:
                        self.explainer = explainer
            explainer.attach(histories, recs)
        return recs


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmrec_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        seconds = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
        self.latency = Histogram("llmrec_request_seconds", "request latency", ["endpoint"],
                                 registry=self.registry, buckets=seconds)  # fmt: skip
        self.batch = Histogram("llmrec_batch_users", "users decoded in one call", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))  # fmt: skip
        self.queue = Gauge("llmrec_queue_depth", "requests waiting for the decoder", registry=self.registry)


API_KEY_ENV = "LLMREC_API_KEY"
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")  # probes answer without a key
GUARDED = ("/recommend", "/recommend/batch")
MIB = 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` answers 413, from its Content-Length before
    anything is read, or as soon as a body sent without one passes the limit."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(self._detail(), status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # raised where the route reads the body: FastAPI answers 413
                raise HTTPException(413, self._detail()["detail"])
            return message

        return await self.app(scope, counted, send)

    def _detail(self) -> dict:
        return {"detail": f"request body over {self.max_bytes} bytes (--max-body-bytes)", "field": None}


def build_app(
    run_dir: str | Path,
    *,
    backend: str | None = None,
    mix: str | None = None,
    max_batch: int = 32,
    max_wait_ms: float = 10.0,
    max_queue: int = 1024,
    max_body_bytes: int = MIB,
    api_key: str | None = None,
    on_load_error: Callable[[str], None] | None = None,
) -> FastAPI:
    """The ASGI app; the model loads at startup (in a thread: /healthz answers meanwhile). What the
    run needs is checked first, so a missing or damaged file fails here, before the server starts;
    a load that still fails calls `on_load_error` with the message (`serve` exits with it) and
    /readyz answers 500 with it. `api_key` (default: $LLMREC_API_KEY) guards every endpoint but the probes."""
    RunDir(run_dir).check_loadable()  # not a loadable run: fail now, not after the server started
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    metrics = Metrics()
    state: dict = {"engine": None, "batcher": None, "error": None}

    def load() -> None:
        try:
            engine = Engine(Path(run_dir), backend, mix)
        except Exception as exc:  # noqa: BLE001 - reported, not left in a thread nobody joins
            state["error"] = f"cannot load the run {run_dir}: {exc}"
            if on_load_error is not None:
                on_load_error(state["error"])
            return
        batcher = Batcher(engine.decode, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                          on_batch=metrics.batch.observe)  # fmt: skip
        batcher.start()
        state["engine"], state["batcher"] = engine, batcher

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        loading = asyncio.get_running_loop().run_in_executor(None, load)
        yield
        await loading
        if state["batcher"] is not None:
            await asyncio.get_running_loop().run_in_executor(None, state["batcher"].stop)

    app = FastAPI(title="llmrec", summary="Recommendations from a trained llmrec run", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if api_key is None or request.url.path in OPEN_PATHS:
            return await call_next(request)
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            endpoint = request.url.path if request.url.path in GUARDED else "other"  # bounded labels
            metrics.requests.labels(endpoint, "401").inc()
            return JSONResponse({"detail": "missing or wrong API key (Authorization: Bearer KEY)",
                                 "field": "authorization"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return await call_next(request)

    def error(
        status: int, message: str, field: str | None = None, retry_after: int | None = None
    ) -> JSONResponse:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse({"detail": message, "field": field}, status_code=status, headers=headers)

    async def one(req: RecommendRequest) -> RecommendResponse:
        engine, batcher = state["engine"], state["batcher"]
        history = engine.history_of(req)
        key = (req.k, req.exclude_history, req.explain, req.candidates is not None)
        future = batcher.submit(Job(history, key, req))
        metrics.queue.set(batcher.depth)
        recs = await asyncio.wrap_future(future)
        return RecommendResponse(user=req.user, items=[Item(**vars(r)) for r in recs])

    async def answer(endpoint: str, work) -> Response:
        t0 = time.perf_counter()
        if state["error"] is not None:
            response = error(500, state["error"])
        elif state["batcher"] is None:
            response = error(503, "the model is still loading; retry shortly", retry_after=2)
        else:
            try:
                response = JSONResponse((await work()).model_dump())
            except BadRequest as exc:
                response = error(exc.status, str(exc), exc.field)
            except QueueFull as exc:
                response = error(503, f"overloaded: {exc}", retry_after=1)
            except InputError as exc:
                response = error(400, str(exc), exc.field)
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
        return response

    @app.post("/recommend", response_model=RecommendResponse)
    async def recommend(req: RecommendRequest) -> Response:
        return await answer("/recommend", lambda: one(req))

    class BatchResponse(BaseModel):
        results: list[RecommendResponse]

    @app.post("/recommend/batch", response_model=BatchResponse)
    async def recommend_batch(batch: BatchRequest) -> Response:
        async def work() -> BatchResponse:
            return BatchResponse(results=list(await asyncio.gather(*(one(r) for r in batch.requests))))

        return await answer("/recommend/batch", work)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if state["error"] is not None:
            return error(500, state["error"])
        if state["batcher"] is None:
            return error(503, "the model is still loading", retry_after=2)
        return JSONResponse({"status": "ready", "run": str(Path(run_dir).resolve())})

    @app.get("/metrics")
    async def prometheus() -> Response:
        if state["batcher"] is not None:
            metrics.queue.set(state["batcher"].depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"{type(exc).__name__}: {exc}")

    return app


def exit_on_load_error(message: str) -> None:
    """`llmrec serve`: a run that cannot load ends the process with the message and status 2 (an
    orchestrator restarts or reports it) instead of a server answering 503 forever."""
    print(f"llmrec serve: {message}", file=sys.stderr, flush=True)
    os._exit(2)  # from the loading thread: uvicorn's loop would otherwise keep the process up


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, **settings) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests are answered before it exits."""
    import uvicorn

    app = build_app(run_dir, on_load_error=exit_on_load_error, **settings)
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=60, log_level="info")
