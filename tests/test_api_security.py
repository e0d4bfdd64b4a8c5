"""API keys, roles and rate limits: the authorisation matrix per route."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import (
    ADMIN_KEY,
    API_KEYS,
    CLIENT_KEY,
    COMPLAINT,
    OTHER_CLIENT_KEY,
    AppFactory,
    bearer,
)
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service import security
from service.security import hash_key, new_key, presented_key
from service.settings import Settings

pytest_plugins = ["conftest_api"]

ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/classify", {"text": COMPLAINT}),
    ("POST", "/v1/classify/batch", {"items": [{"text": COMPLAINT}]}),
    ("GET", "/v1/model", None),
    ("POST", "/v1/model/reload", {}),
    (
        "POST",
        "/v1/comments",
        {"items": [{"platform": "x", "external_id": "1", "account": "a", "text": COMPLAINT}]},
    ),
    ("GET", "/v1/queue", None),
    ("GET", "/v1/review", None),
    ("GET", "/v1/stats", None),
    ("GET", "/v1/labels/export", None),
    ("GET", "/v1/comments/424242", None),
    ("PATCH", "/v1/comments/424242", {"note": "cek"}),
    ("POST", "/v1/comments/424242/label", {"label": "question"}),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("GET", "/openapi.json", None),
]
CALLERS: dict[str, dict[str, str]] = {
    "anonymous": {},
    "wrong_key": bearer("pilah_not-a-real-key"),
    "client": bearer(CLIENT_KEY),
    "admin": bearer(ADMIN_KEY),
}
# Expected status per (route, caller) with auth on.
MATRIX: dict[str, dict[str, int]] = {
    "/v1/classify": {"anonymous": 401, "wrong_key": 401, "client": 200, "admin": 200},
    "/v1/classify/batch": {"anonymous": 401, "wrong_key": 401, "client": 200, "admin": 200},
    "/v1/model": {"anonymous": 401, "wrong_key": 401, "client": 200, "admin": 200},
    "/v1/model/reload": {"anonymous": 401, "wrong_key": 401, "client": 403, "admin": 200},
    "/v1/comments": {"anonymous": 401, "wrong_key": 401, "client": 200, "admin": 200},
    "/v1/queue": {"anonymous": 401, "wrong_key": 401, "client": 200, "admin": 200},
    "/v1/review": {"anonymous": 401, "wrong_key": 401, "client": 200, "admin": 200},
    "/v1/stats": {"anonymous": 401, "wrong_key": 401, "client": 200, "admin": 200},
    "/v1/labels/export": {"anonymous": 401, "wrong_key": 401, "client": 403, "admin": 200},
    # No comment 424242: past authorisation, the answer is 404.
    "/v1/comments/{comment_id}": {"anonymous": 401, "wrong_key": 401, "client": 404, "admin": 404},
    "PATCH /v1/comments/{comment_id}": {
        "anonymous": 401,
        "wrong_key": 401,
        "client": 403,
        "admin": 404,
    },
    "/v1/comments/{comment_id}/label": {
        "anonymous": 401,
        "wrong_key": 401,
        "client": 403,
        "admin": 404,
    },
    "/healthz": dict.fromkeys(CALLERS, 200),
    "/readyz": dict.fromkeys(CALLERS, 200),
    "/metrics": dict.fromkeys(CALLERS, 200),
    "/openapi.json": dict.fromkeys(CALLERS, 200),
}


def matrix_key(method: str, path: str) -> str:
    template = path.replace("424242", "{comment_id}")
    return f"{method} {template}" if f"{method} {template}" in MATRIX else template


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_authorization_matrix(
    auth_client: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    caller: str,
) -> None:
    response = auth_client.request(method, path, json=body, headers=CALLERS[caller])
    expected = MATRIX[matrix_key(method, path)][caller]
    assert response.status_code == expected, response.text
    if expected == 401:
        error = response.json()["error"]
        assert error["code"] in ("unauthorized", "invalid_api_key")
        assert response.headers["www-authenticate"].startswith("Bearer")
    if expected == 403:
        assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("caller", ["anonymous", "client", "admin"])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_auth_off_lets_everyone_in(
    client: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    caller: str,
) -> None:
    response = client.request(method, path, json=body, headers=CALLERS[caller])
    assert response.status_code == (404 if "424242" in path else 200), response.text


def test_every_v1_route_is_in_the_matrix(auth_client: TestClient) -> None:
    paths = {
        path for path in auth_client.get("/openapi.json").json()["paths"] if path.startswith("/v1/")
    }
    assert paths == {key.split()[-1] for key in MATRIX if key.split()[-1].startswith("/v1/")}


def test_unknown_v1_route_needs_a_key_first(auth_client: TestClient) -> None:
    assert auth_client.get("/v1/nothing").status_code == 401
    assert auth_client.get("/v1/nothing", headers=bearer(CLIENT_KEY)).status_code == 404


def test_key_headers(auth_client: TestClient) -> None:
    body = {"text": COMPLAINT}
    assert (
        auth_client.post("/v1/classify", json=body, headers={"X-API-Key": CLIENT_KEY}).status_code
        == 200
    )
    assert (
        auth_client.post(
            "/v1/classify", json=body, headers={"Authorization": f"bearer  {CLIENT_KEY} "}
        ).status_code
        == 200
    )
    basic = auth_client.post("/v1/classify", json=body, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    assert basic.json()["error"]["code"] == "unauthorized"
    wrong = auth_client.post("/v1/classify", json=body, headers={"X-API-Key": "nope"})
    assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_auth_comes_before_body_parsing(auth_client: TestClient) -> None:
    """An anonymous caller learns nothing about the body: 401 even for junk."""
    response = auth_client.post(
        "/v1/classify", content=b"{NaN", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 401


def test_rate_limit_per_key(make_client: AppFactory) -> None:
    client = make_client(auth_enabled=True, api_keys=API_KEYS, rate_limit="3/minute")
    for _ in range(3):
        ok = client.get("/v1/model", headers=bearer(CLIENT_KEY))
        assert ok.status_code == 200
        assert ok.headers["ratelimit-limit"] == "3"
    assert ok.headers["ratelimit-remaining"] == "0"
    limited = client.get("/v1/model", headers=bearer(CLIENT_KEY))
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Other keys have their own budget; open routes have none.
    assert client.get("/v1/model", headers=bearer(OTHER_CLIENT_KEY)).status_code == 200
    assert client.get("/v1/model", headers=bearer(ADMIN_KEY)).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_rate_limit_per_key_setting(make_client: AppFactory) -> None:
    keys = [dict(API_KEYS[0], rate_limit="1/minute"), API_KEYS[1]]
    client = make_client(auth_enabled=True, api_keys=keys, rate_limit="100/minute")
    assert client.get("/v1/model", headers=bearer(CLIENT_KEY)).status_code == 200
    assert client.get("/v1/model", headers=bearer(CLIENT_KEY)).status_code == 429
    assert client.get("/v1/model", headers=bearer(ADMIN_KEY)).status_code == 200


def test_anonymous_rate_limit_when_auth_is_off(make_client: AppFactory) -> None:
    client = make_client(anonymous_rate_limit="2/minute")
    assert [client.get("/v1/model").status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/readyz").status_code == 200


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="no api_keys"):
        Settings(auth_enabled=True)
    with pytest.raises(ValidationError, match="64 hex digits"):
        Settings(api_keys=[{"name": "x", "role": "client", "sha256": CLIENT_KEY}])
    with pytest.raises(ValidationError, match="unique"):
        Settings(api_keys=[API_KEYS[0], dict(API_KEYS[1], name="lapor")])
    with pytest.raises(ValidationError, match="rate limit"):
        Settings(rate_limit="lots")
    with pytest.raises(ValidationError):
        Settings(api_keys=[dict(API_KEYS[0], role="root")])
    assert Settings(rate_limit="").rate_limit is None
    upper = Settings(api_keys=[dict(API_KEYS[0], sha256=API_KEYS[0]["sha256"].upper())])
    assert upper.api_keys[0].sha256 == API_KEYS[0]["sha256"]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("PILAH_AUTH_ENABLED", "true")
    monkeypatch.setenv("PILAH_API_KEYS", json.dumps(API_KEYS[:1]))
    monkeypatch.setenv("PILAH_MAX_TEXT_CHARS", "280")
    monkeypatch.setenv("PILAH_RECYCLE_CONNECTIONS_AFTER", "")
    settings = Settings()
    assert settings.auth_enabled
    assert settings.api_keys[0].name == "lapor"
    assert settings.max_text_chars == 280
    assert settings.recycle_connections_after is None  # documented: empty means never
    assert not settings.opentelemetry
    monkeypatch.setenv("PILAH_RECYCLE_CONNECTIONS_AFTER", "50")
    assert Settings().recycle_connections_after == 50


def test_keys_are_stored_hashed() -> None:
    import pickle

    store = security.KeyStore(Settings(api_keys=API_KEYS).api_keys, None)
    dumped = pickle.dumps(store._by_digest)
    assert CLIENT_KEY.encode() not in dumped
    assert store.lookup(CLIENT_KEY) is not None
    assert store.lookup(CLIENT_KEY + "x") is None


def test_key_helpers(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    assert key.startswith("pilah_") and len(key) > 40
    assert hash_key(key) != hash_key(new_key())
    assert security.main(["new-key", "--name", "lapor", "--role", "admin"]) == 0
    out = capsys.readouterr().out
    shown = out.split("key (shown once, give it to lapor): ")[1].split()[0]
    assert f'"sha256": "{hash_key(shown)}"' in out
    assert '"role": "admin"' in out
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(shown + "\n"))
    assert security.main(["hash"]) == 0
    assert capsys.readouterr().out.strip() == hash_key(shown)


def test_presented_key() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"headers": list(headers)}

    assert presented_key(scope()) is None
    assert presented_key(scope((b"authorization", b"Bearer abc"))) == "abc"
    assert presented_key(scope((b"x-api-key", b" abc "))) == "abc"
    assert presented_key(scope((b"authorization", b"Bearer "))) is None


def test_rate_limit_storage_failure_fails_open(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Any, rate: str, identity: str) -> Any:
        raise ConnectionError("storage down")

    client = make_client(auth_enabled=True, api_keys=API_KEYS, rate_limit="1/minute")
    monkeypatch.setattr(security.RateLimiter, "hit", broken)
    assert client.get("/v1/model", headers=bearer(CLIENT_KEY)).status_code == 200
