"""Every error path of the HTTP API: one error body, a 4xx, never a traceback or the text."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import COMPLAINT, AppFactory, serve_in_thread
from fastapi.testclient import TestClient

from service.app import create_app
from service.http import BodySizeLimitMiddleware, media_type_error
from service.inference import ServingModel
from service.settings import Settings

pytest_plugins = ["conftest_api"]

JSON = {"content-type": "application/json"}
SECRET = "rahasia-warga-NIK-3374"


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code
    return error


# --- bodies that crash the default JSON handling ----------------------------------------------

NASTY_BODIES = {
    "nan": b'{"text": NaN}',
    "infinity": b'{"text": Infinity}',
    "minus_infinity": b'{"text": -Infinity}',
    "nan_in_id": b'{"text": "ok", "id": NaN}',
    "lone_surrogate": b'{"text": "\\ud800"}',
    "lone_low_surrogate": b'{"text": "abc \\udc00 def"}',
    "surrogate_in_id": b'{"text": "ok", "id": "\\ud83d"}',
    "surrogate_bytes": b'{"text": "\xed\xa0\x80"}',
    "invalid_utf8": b'{"text": "\xff\xfe"}',
    "deep_array": b"[" * 100_000 + b"]" * 100_000,
    "deep_object": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "deep_in_text": b'{"text": ' + b"[" * 3_000 + b"]" * 3_000 + b"}",
    "big_integer": b'{"text": ' + b"9" * 5_000 + b"}",
    "big_integer_id": b'{"text": "ok", "id": ' + b"1" * 5_000 + b"}",
    "big_float": b'{"text": 1e999}',
    "truncated": b'{"text": "ok"',
    "trailing": b'{"text": "ok"} {}',
    "bom": b'\xef\xbb\xbf{"text": "ok"}',
    "single_quotes": b"{'text': 'ok'}",
    "null": b"null",
    "array": b"[]",
    "string": b'"jalan rusak"',
    "number": b"42",
    "empty_object": b"{}",
}


@pytest.mark.parametrize("name", sorted(NASTY_BODIES))
@pytest.mark.parametrize("path", ["/v1/classify", "/v1/classify/batch"])
def test_nasty_bodies_get_4xx(client: TestClient, path: str, name: str) -> None:
    body = NASTY_BODIES[name]
    if path.endswith("batch") and body.startswith(b'{"text"'):
        body = b'{"items": [' + body + b"]}"
    response = client.post(path, content=body, headers=JSON)
    assert 400 <= response.status_code < 500, (name, response.status_code)
    assert_error(response, response.status_code)


@pytest.mark.parametrize(
    "name", ["nan", "infinity", "lone_surrogate", "deep_array", "big_integer", "truncated"]
)
def test_malformed_json_is_400_invalid_json(client: TestClient, name: str) -> None:
    response = client.post("/v1/classify", content=NASTY_BODIES[name], headers=JSON)
    error = assert_error(response, 400, "invalid_json")
    assert error["message"].startswith("request body is not valid JSON")


def test_nasty_body_on_reload(client: TestClient) -> None:
    response = client.post("/v1/model/reload", content=b'{"version": NaN}', headers=JSON)
    assert_error(response, 400, "invalid_json")


# --- limits ---------------------------------------------------------------------------------


def test_text_too_long(client: TestClient) -> None:
    assert client.post("/v1/classify", json={"text": "a" * 5000}).status_code == 200
    error = assert_error(
        client.post("/v1/classify", json={"text": "a" * 5001}), 422, "text_too_long"
    )
    assert "5000" in error["message"]


def test_text_limit_counts_characters_not_bytes(client: TestClient) -> None:
    assert client.post("/v1/classify", json={"text": "😭" * 5000}).status_code == 200


def test_configured_text_limit(make_client: AppFactory) -> None:
    client = make_client(max_text_chars=10)
    assert_error(client.post("/v1/classify", json={"text": "a" * 11}), 422, "text_too_long")


@pytest.mark.parametrize("text", ["", " ", "\n\t  \r\n", "\u200b\u200b", "\ufeff", "\u3000 \u00a0"])
def test_empty_text(client: TestClient, text: str) -> None:
    assert_error(client.post("/v1/classify", json={"text": text}), 422, "empty_text")


def test_emoji_only_text_is_not_empty(client: TestClient) -> None:
    assert client.post("/v1/classify", json={"text": "👍👍"}).status_code == 200
    assert client.post("/v1/classify", json={"text": "?"}).status_code == 200


def test_batch_too_large(client: TestClient) -> None:
    items = [{"text": "ok"}] * 1001
    error = assert_error(
        client.post("/v1/classify/batch", json={"items": items}), 422, "batch_too_large"
    )
    assert "1000" in error["message"]


def test_configured_batch_limit(make_client: AppFactory) -> None:
    client = make_client(max_batch_items=2)
    assert client.post("/v1/classify/batch", json={"items": [{"text": "a"}] * 2}).status_code == 200
    assert_error(
        client.post("/v1/classify/batch", json={"items": [{"text": "a"}] * 3}),
        422,
        "batch_too_large",
    )


def test_empty_batch(client: TestClient) -> None:
    assert_error(client.post("/v1/classify/batch", json={"items": []}), 422, "empty_batch")


@pytest.mark.parametrize(
    "payload",
    [
        {"text": 12345},
        {"text": None},
        {"text": ["jalan", "rusak"]},
        {"text": {"nested": SECRET}},
        {"text": COMPLAINT, "platform": "myspace"},
        {"text": COMPLAINT, "platform": SECRET},
        {"text": COMPLAINT, "id": {"x": SECRET}},
        {"text": COMPLAINT, "id": "i" * 257},
        {"id": "no-text"},
        {"items": [{"text": SECRET}]},
    ],
)
def test_validation_errors(client: TestClient, payload: dict[str, Any]) -> None:
    error = assert_error(client.post("/v1/classify", json=payload), 422, "validation_error")
    assert SECRET not in error["message"]


def test_batch_shape_errors(client: TestClient) -> None:
    for payload in ({"items": "x"}, {"items": None}, {"text": COMPLAINT}, {"items": {"a": 1}}):
        assert_error(client.post("/v1/classify/batch", json=payload), 422, "validation_error")


def test_errors_never_echo_the_comment(client: TestClient) -> None:
    responses = [
        client.post("/v1/classify", json={"text": SECRET * 1000}),
        client.post("/v1/classify", json={"text": [SECRET]}),
        client.post("/v1/classify", json={"text": SECRET, "platform": SECRET}),
        client.post("/v1/classify", content=f'{{"text": "{SECRET}", NaN}}', headers=JSON),
        client.post("/v1/classify", content=SECRET, headers={"content-type": "text/plain"}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500
        assert SECRET not in response.text
    batch = client.post("/v1/classify/batch", json={"items": [{"text": SECRET * 1000}]})
    assert batch.json()["results"][0]["error"]["code"] == "text_too_long"
    assert SECRET not in batch.text


# --- content types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "json",
    ],
)
def test_wrong_content_type(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/v1/classify", content=b'{"text": "jalan rusak"}', headers={"content-type": content_type}
    )
    assert_error(response, 415, "unsupported_media_type")


def test_missing_content_type(client: TestClient) -> None:
    response = client.post("/v1/classify", content=b'{"text": "jalan rusak"}')
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=UTF-8", "application/problem+json"],
)
def test_json_content_types(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/v1/classify", content=b'{"text": "jalan rusak"}', headers={"content-type": content_type}
    )
    assert response.status_code == 200


def test_reload_without_a_body_needs_no_content_type(client: TestClient) -> None:
    assert client.post("/v1/model/reload").status_code == 200
    assert_error(
        client.post("/v1/model/reload", content=b"{}", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


def test_media_type_error_messages() -> None:
    assert media_type_error("application/json") is None
    assert media_type_error("Application/JSON; charset=utf8") is None
    assert "UTF-8" in str(media_type_error("application/json; charset=utf-16"))
    assert "text/html" in str(media_type_error("text/html"))


# --- body size ------------------------------------------------------------------------------


def test_body_too_large_with_content_length(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=2048)
    response = client.post("/v1/classify", json={"text": "a" * 3000})
    error = assert_error(response, 413, "payload_too_large")
    assert "2048" in error["message"]
    assert client.post("/v1/classify", json={"text": "a" * 1000}).status_code == 200


def test_body_too_large_chunked(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=2048)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            sent.append(1)
            yield b"a" * 1024
        yield b'"}'

    response = client.post("/v1/classify", content=chunks(), headers=JSON)
    assert_error(response, 413, "payload_too_large")
    assert "content-length" not in {k.lower() for k in response.request.headers}


def test_batch_body_limit(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=4096)
    response = client.post(
        "/v1/classify/batch", json={"items": [{"text": "jalan rusak " * 10}] * 100}
    )
    assert_error(response, 413, "payload_too_large")


def _raw_request(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server may close once it has answered 413
            pass
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        return data


def test_chunked_body_limit_on_a_live_server(models_tree: Path) -> None:
    """uvicorn on 127.0.0.1: a chunked upload without Content-Length is cut off at the
    limit with 413, and a small chunked upload is served."""
    app = create_app(Settings(models_dir=models_tree, max_body_bytes=4096, switch_interval=None))
    head = (
        b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with serve_in_thread(app) as port:
        big = _raw_request(port, head, [b'{"text": "'] + [b"a" * 1024] * 64 + [b'"}'])
        small = _raw_request(port, head, [b'{"text": "jalan ', b'rusak"}'])
    assert big.startswith(b"HTTP/1.1 413"), big[:200]
    assert b"payload_too_large" in big or b"content-length" in big.lower()
    assert small.startswith(b"HTTP/1.1 200"), small[:200]


def _run_asgi(
    app: Any, headers: list[tuple[bytes, bytes]], bodies: list[bytes]
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": body, "more_body": i < len(bodies) - 1}
        for i, body in enumerate(bodies)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "state": {}}
    asyncio.run(app(scope, receive, send))
    return sent


async def _reading_app(scope: Any, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_body_limit_middleware_unit() -> None:
    limited = BodySizeLimitMiddleware(_reading_app, max_bytes=1024)
    ok = _run_asgi(limited, [(b"content-length", b"10")], [b"0123456789"])
    assert ok[0]["status"] == 200
    declared = _run_asgi(limited, [(b"content-length", b"4096")], [b""])
    assert declared[0]["status"] == 413
    streamed = _run_asgi(limited, [], [b"x" * 600, b"x" * 600])
    assert streamed[0]["status"] == 413
    assert (b"connection", b"close") in streamed[0]["headers"]
    for bad in (b"abc", b"-1"):
        invalid = _run_asgi(limited, [(b"content-length", bad)], [b""])
        assert invalid[0]["status"] == 400


# --- routing and unexpected errors ----------------------------------------------------------


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/v2/classify"), 404, "not_found")
    response = client.get("/v1/classify")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


def test_unexpected_exception_is_a_generic_500(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ServingModel, text: str) -> dict[str, Any]:
        raise RuntimeError(f"boom with {text}")

    client = make_client(raise_server_exceptions=False)
    monkeypatch.setattr(ServingModel, "analyse_one", broken)
    response = client.post("/v1/classify", json={"text": SECRET})
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["request_id"]
    assert SECRET not in response.text
    assert "boom" not in response.text
