"""The recommender over HTTP with bounded requests and clean errors (``kedro serve``).

It speaks MLflow's scoring protocol (``POST /invocations`` with ``dataframe_records``,
``dataframe_split``, ``inputs`` or ``instances``; ``GET /ping``, ``/health``, ``/version``), so a
client of ``mlflow models serve`` works unchanged, and answers with the same ``predictions``. What it
adds, for a server that any request reaches:

- a body limit (``max_body_bytes``; 413 beyond it, nothing past it kept) besides the model's request
  limits (:class:`~glta_pipelines.core.glta.recommender.RequestLimits`: rows, ``k``, history and
  exclude lengths), so no request can make it compute or answer without bound;
- JSON and CSV bodies (a CSV's history cell as ``50 172 181`` or ``[50, 172, 181]``, as in the
  ``recommend`` pipeline's table); any other content type gets a 415 naming the accepted ones;
- every error as ``{"error_code", "message"}``: 400 naming the field for a bad request (values
  quoted back cut short), 500 saying only that the call failed for anything unexpected. No
  traceback or path reaches a client; the server's log has them.

Requests are answered one at a time (the model and its LLM are shared), on one worker thread, so
``/ping`` answers while a call is being scored.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta.recommender import DEFAULT_K, Recommender, cut, requests_from_table

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # a call at the default limits (100 new users x 1,000 history ids) is about 0.7 MB
DRAIN_BYTES = 64_000_000  # a body beyond the limit is read (not kept) up to this, then the connection closes
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv",)
FORMATS = ("dataframe_records", "dataframe_split", "inputs", "instances")


class BodyError(Exception):
    """A request body the server cannot take: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def requests_from_json(payload: Any) -> list[dict[str, Any]]:
    """The requests in an MLflow scoring payload (one of :data:`FORMATS`), as mappings."""
    if not isinstance(payload, dict) or len(set(payload) & set(FORMATS)) != 1:
        found = sorted(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
        raise InputError("request body", cut(f"{found}"), f"a JSON object with one of the keys {list(FORMATS)}, e.g. "
                         '{"dataframe_records": [{"user_id": 7, "k": 10}]}')
    key = next(k for k in FORMATS if k in payload)
    data = payload[key]
    if key == "dataframe_split":
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list) or not isinstance(data.get("data"), list):
            raise InputError("request body, dataframe_split", cut(repr(type(data).__name__)),
                             'an object with "columns" (names) and "data" (rows)')
        columns = data["columns"]
        rows = data["data"]
        if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
            raise InputError("request body, dataframe_split.data", "rows of other lengths than columns",
                             f"rows of {len(columns)} values, one per column")
        return [{column: value for column, value in zip(columns, row) if value is not None} for row in rows]
    if isinstance(data, dict):  # {"inputs": {"user_id": 7}}: one request
        data = [data]
    if not isinstance(data, list):
        raise InputError(f"request body, {key}", type(data).__name__, "a list of requests (objects)")
    return [{k: v for k, v in record.items() if v is not None} if isinstance(record, dict) else record
            for record in data]


def parse_body(body: bytes, content_type: str | None, default_k: int = DEFAULT_K) -> list[Any]:
    """The requests in a body of ``content_type``; :class:`BodyError` (415) for other types,
    :class:`InputError` (400) for a body that is not what its type says."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime not in JSON_TYPES + CSV_TYPES:
        raise BodyError(415, f"content type {cut(repr(content_type or ''), 80)} is not served: send "
                             f"{' or '.join(JSON_TYPES + CSV_TYPES)}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError("request body", f"bytes that are not UTF-8 (at byte {error.start})", "UTF-8 text") from None
    if mime in JSON_TYPES:
        try:
            payload = json.loads(text)
        except RecursionError:
            raise InputError("request body", "JSON nested too deep", "requests with lists of item ids") from None
        except ValueError as error:
            raise InputError("request body", f"text that is not JSON ({cut(str(error), 120)})", "a JSON object") from None
        return requests_from_json(payload)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise InputError("request body", f"text that is not CSV ({cut(str(error).strip(), 120)})",
                         "a header row (user_id, history, k, exclude) and one request per row") from None
    return requests_from_table(table, "request body (CSV)", default_k)


def create_app(recommender: Recommender, max_body_bytes: int = MAX_BODY_BYTES, version: str = ""):
    """The ASGI app answering with ``recommender``."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    # one call at a time (the model and its LLM are shared), always on the same worker thread: a
    # pool's many threads would each grow their own allocator arena (memory that never comes back)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recommend")

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error_code": code, "message": message}, status_code=status)

    def answer(requests: list[Any]) -> str:
        table = recommender.recommend(requests)
        return '{"predictions": ' + table.to_json(orient="records", force_ascii=False) + "}"

    async def invocations(request) -> Response:
        chunks, size = [], 0
        async for chunk in request.stream():  # past the limit nothing is kept; the rest is read and dropped
            size += len(chunk)  # (so the client gets the 413, not a broken pipe), up to DRAIN_BYTES
            if size <= max_body_bytes:
                chunks.append(chunk)
            elif size > DRAIN_BYTES:
                break
        if size > max_body_bytes:
            return error(413, "REQUEST_LIMIT_EXCEEDED", f"request body: {'over ' if size > DRAIN_BYTES else ''}"
                                                         f"{size:,} bytes; at most {max_body_bytes:,} bytes per call")
        try:
            requests = parse_body(b"".join(chunks), request.headers.get("content-type"))
            body = await asyncio.get_running_loop().run_in_executor(worker, answer, requests)
        except BodyError as failure:
            return error(failure.status, "UNSUPPORTED_MEDIA_TYPE", failure.message)
        except InputError as failure:
            return error(400, "INVALID_PARAMETER_VALUE", str(failure))
        except Exception as failure:  # noqa: BLE001  (the client learns no more than this; the log has the trace)
            log.exception("recommend failed")
            return error(500, "INTERNAL_ERROR", f"the recommender failed on this call ({type(failure).__name__}); "
                                                "the server's log has the details")
        return Response(body, media_type="application/json")

    async def ping(request) -> Response:
        return Response("\n", media_type="application/json")

    async def show_version(request) -> Response:
        return Response(version, media_type="text/plain")

    return Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping),
                             Route("/health", ping), Route("/version", show_version)])


def serve(recommender: Recommender, host: str, port: int, max_body_bytes: int = MAX_BODY_BYTES,
          version: str = "") -> None:
    """Answer on ``host:port`` until stopped."""
    import uvicorn

    uvicorn.run(create_app(recommender, max_body_bytes, version), host=host, port=port, log_level="info",
                timeout_keep_alive=5)
