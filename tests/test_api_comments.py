"""The comment store over HTTP: ingest, queue, review, admin actions, labels, stats, export,
errors and the authorization matrix (anonymous / client / admin, per-account scoping)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import ADMIN_KEY, API_KEYS, CLIENT_KEY, AppFactory, bearer
from fastapi.testclient import TestClient

from service.labels import LABELS
from service.security import hash_key

pytest_plugins = ["conftest_api"]
# Every test runs on SQLite and on PostgreSQL (the fixture points PILAH_DATABASE_URL at it).
pytestmark = pytest.mark.usefixtures("database_url")

NOW = datetime.now(UTC)
SCOPED_KEY = "pilah_test-scoped-admin-key-0123456789abcdefghijklmnop"


def item(external_id: str, text: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "platform": "instagram",
        "external_id": external_id,
        "account": "pemkotsemarang",
        "text": text,
        "posted_at": (NOW - timedelta(minutes=10)).isoformat(),
    }
    values.update(fields)
    return values


BATCH = [
    item("1", "Tolong min banjir sepinggang di Kaligawe, warga blm dievakuasi!!"),
    item("2", "Mantulll pak wali 👍👍"),
    item("3", "kak syarat daftar PKH apa aja ya? NIK sy 3374012345678901"),
    item("4", "SL0T G4C0R maxwin link di bio"),
    item("5", "dalane jebros mbok di genahi", account="dinkes", platform="facebook"),
]


def ingest(client: TestClient, items: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.post("/v1/comments", json={"items": items}, **kwargs)


def test_ingest_reports_new_duplicate_and_rejected(client: TestClient) -> None:
    response = ingest(client, BATCH)
    assert response.status_code == 200
    body = response.json()
    assert (body["new"], body["duplicate"], body["rejected"]) == (5, 0, 0)
    assert [r["status"] for r in body["results"]] == ["new"] * 5
    assert all(r["label"] in LABELS for r in body["results"])
    again = ingest(
        client,
        [
            *BATCH[:2],
            item("6", "   \u200b "),
            item("7", "x" * 5001),
            item("8", "ada\x00nul"),
            {"platform": "myspace", "external_id": "9", "account": "a", "text": "halo"},
            item("10", "ok", likes=-1),
            "not an object",
        ],
    ).json()
    assert (again["new"], again["duplicate"], again["rejected"]) == (0, 2, 6)
    codes = [r["error"]["code"] for r in again["results"][2:]]
    assert codes == [
        "empty_text",
        "text_too_long",
        "invalid_text",
        "validation_error",
        "validation_error",
        "validation_error",
    ]
    assert [r["id"] for r in again["results"][:2]] == [r["id"] for r in body["results"][:2]]
    assert again["results"][0]["label"] is None  # a duplicate is not classified again
    assert "x" * 50 not in response.text + str(again)


def test_stored_comment_is_masked_and_classified(client: TestClient) -> None:
    ids = [r["id"] for r in ingest(client, BATCH).json()["results"]]
    stored = client.get(f"/v1/comments/{ids[2]}").json()
    assert stored["text"] == "kak syarat daftar PKH apa aja ya? NIK sy ****************"
    assert stored["pii_masked"] == ["idnum"]
    assert stored["label"] in LABELS and stored["status"] == "new"
    assert stored["history"] == []
    assert client.get("/v1/comments/999999").status_code == 404
    assert client.get("/v1/comments/0").status_code == 422


def test_queue_orders_filters_and_pages(client: TestClient) -> None:
    ingest(client, BATCH)
    body = client.get("/v1/queue").json()
    order = [c["external_id"] for c in body["items"]]
    assert order[0] == "1" and order[-1] == "4"  # the flood first, gambling spam last
    assert body["items"][0]["priority_reasons"][0]["code"] == "label"
    assert [
        c["external_id"] for c in client.get("/v1/queue?platform=facebook").json()["items"]
    ] == ["5"]
    assert len(client.get("/v1/queue?account=dinkes&account=pemkotsemarang").json()["items"]) == 5
    assert [c["external_id"] for c in client.get("/v1/queue?flag=spam").json()["items"]] == ["4"]
    assert [c["external_id"] for c in client.get("/v1/queue?topic=bansos").json()["items"]] == ["3"]
    assert [c["external_id"] for c in client.get("/v1/queue?q=JEBROS").json()["items"]] == ["5"]
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/queue", params=params).json()
        pages += [c["external_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == order
    for bad in ("cursor=@@@", "limit=0", "limit=201", "label=spam", "status=open", "since=kemarin"):
        response = client.get(f"/v1/queue?{bad}")
        assert response.status_code == 422, bad
        assert set(response.json()["error"]) == {"code", "message", "request_id"}


def test_status_assignment_notes_and_history(client: TestClient) -> None:
    first = ingest(client, BATCH).json()["results"][0]["id"]
    response = client.patch(
        f"/v1/comments/{first}", json={"status": "answered", "note": "Sudah dibalas via DM"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "answered" and body["answered_at"] is not None
    assert body["history"][-1]["note"] == "Sudah dibalas via DM"
    body = client.patch(f"/v1/comments/{first}", json={"assignee": "sari"}).json()
    assert body["assignee"] == "sari" and body["status"] == "answered"
    assert first not in [c["id"] for c in client.get("/v1/queue").json()["items"]]
    assert first in [c["id"] for c in client.get("/v1/queue?status=answered").json()["items"]]
    assert client.patch(f"/v1/comments/{first}", json={}).status_code == 422
    assert client.patch(f"/v1/comments/{first}", json={"status": "done"}).status_code == 422
    assert client.patch(f"/v1/comments/{first}", json={"colour": "red"}).status_code == 422
    assert client.patch("/v1/comments/424242", json={"status": "dismissed"}).status_code == 404


def test_label_correction_with_idempotency_key(client: TestClient) -> None:
    comment_id = ingest(client, BATCH).json()["results"][1]["id"]
    headers = {"Idempotency-Key": "7d1e-label-1"}
    first = client.post(
        f"/v1/comments/{comment_id}/label", json={"label": "other"}, headers=headers
    )
    assert first.status_code == 200 and first.json()["replayed"] is False
    retry = client.post(
        f"/v1/comments/{comment_id}/label", json={"label": "other"}, headers=headers
    )
    assert retry.json()["replayed"] is True and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["event_id"] == first.json()["event_id"]
    clash = client.post(
        f"/v1/comments/{comment_id}/label", json={"label": "praise"}, headers=headers
    )
    assert clash.status_code == 422 and clash.json()["error"]["code"] == "idempotency_key_reused"
    stored = client.get(f"/v1/comments/{comment_id}").json()
    assert stored["label"] == "other" and stored["human_label"] == "other"
    assert [e["label"] for e in stored["history"] if e["type"] == "label"] == ["other"]
    assert (
        client.post(f"/v1/comments/{comment_id}/label", json={"label": "spam"}).status_code == 422
    )
    bad_key = client.post(
        f"/v1/comments/{comment_id}/label",
        json={"label": "other"},
        headers={"Idempotency-Key": "a b"},
    )
    assert bad_key.status_code == 422


def test_review_stats_export_and_metrics(client: TestClient) -> None:
    ids = [r["id"] for r in ingest(client, BATCH).json()["results"]]
    review = client.get("/v1/review?status=new").json()["items"]
    margins = [c["margin"] for c in review]
    assert margins == sorted(margins) and len(review) == 5
    client.post(f"/v1/comments/{ids[2]}/label", json={"label": "question"})
    stats = client.get("/v1/stats").json()
    assert sum(day["total"] for day in stats["days"]) == 5
    assert {d["account"] for d in stats["days_by_account"]} == {"pemkotsemarang", "dinkes"}
    export = client.get("/v1/labels/export")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["label"], r["lapor_type"]) for r in rows] == [("question", "permintaan informasi")]
    assert "3374012345678901" not in export.text
    metrics = client.get("/metrics").text
    assert 'pilah_comment_label_share_24h{account="dinkes"' in metrics
    assert "pilah_comments_24h" in metrics


def test_authorization_matrix(make_client: AppFactory) -> None:
    keys = [
        *API_KEYS,
        {
            "name": "dinkes-admin",
            "role": "admin",
            "sha256": hash_key(SCOPED_KEY),
            "accounts": ["dinkes"],
        },
    ]
    client = make_client(auth_enabled=True, api_keys=keys, rate_limit=None)
    ids = [r["id"] for r in ingest(client, BATCH, headers=bearer(ADMIN_KEY)).json()["results"]]
    routes = [
        ("post", "/v1/comments", {"json": {"items": [item("x1", "halo min")]}}),
        ("get", "/v1/queue", {}),
        ("get", "/v1/review", {}),
        ("get", f"/v1/comments/{ids[0]}", {}),
        ("get", "/v1/stats", {}),
        ("patch", f"/v1/comments/{ids[0]}", {"json": {"note": "cek"}}),
        ("post", f"/v1/comments/{ids[0]}/label", {"json": {"label": "complaint"}}),
        ("get", "/v1/labels/export", {}),
    ]
    admin_only = {"patch", "/label", "/export"}
    for method, path, kwargs in routes:
        call = getattr(client, method)
        assert call(path, **kwargs).status_code == 401, path
        assert call(path, headers={"X-API-Key": "wrong"}, **kwargs).status_code == 401, path
        needs_admin = method in admin_only or any(path.endswith(s) for s in admin_only)
        expected = 403 if needs_admin else 200
        assert call(path, headers=bearer(CLIENT_KEY), **kwargs).status_code == expected, path
        assert call(path, headers=bearer(ADMIN_KEY), **kwargs).status_code == 200, path
    # A key scoped to one account sees and acts on that account only.
    scoped = bearer(SCOPED_KEY)
    queue = client.get("/v1/queue", headers=scoped).json()["items"]
    assert {c["account"] for c in queue} == {"dinkes"}
    assert client.get(f"/v1/comments/{ids[0]}", headers=scoped).status_code == 404
    assert (
        client.post(
            f"/v1/comments/{ids[0]}/label", json={"label": "other"}, headers=scoped
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/v1/comments/{ids[4]}/label", json={"label": "other"}, headers=scoped
        ).status_code
        == 200
    )
    refused = ingest(client, [item("y1", "halo min")], headers=scoped).json()
    assert refused["results"][0]["error"]["code"] == "account_not_allowed"


def test_batch_limits(make_client: AppFactory) -> None:
    client = make_client(max_batch_items=3)
    too_many = ingest(client, [item(str(i), "halo") for i in range(4)])
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "batch_too_large"
    assert ingest(client, []).json()["error"]["code"] == "empty_batch"
    assert (
        client.post(
            "/v1/comments", content=b"{}", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )


def test_hostile_inputs_get_4xx_never_5xx(client: TestClient) -> None:
    """Found by review: NUL characters (PostgreSQL cannot store them), times at the edge of
    the calendar, ids beyond 32 bits and forged cursors are refused, not 500/503."""
    import base64
    import json

    ok = item("ok", "jalan rusak min")
    body = ingest(
        client,
        [
            ok,
            item("n1", "halo", author="a\x00b"),
            item("n2", "halo", account="pem\x00kot"),
            item("n3\x00", "halo"),
            item("t1", "halo", posted_at="9999-12-31T23:59:59Z"),
            item("t2", "halo", posted_at="0001-01-01T00:00:00+05:00"),
        ],
    ).json()
    assert body["new"] == 1 and body["rejected"] == 5
    comment_id = body["results"][0]["id"]
    for path in (
        "/v1/queue?q=a%00b",
        "/v1/queue?account=a%00b",
        "/v1/queue?topic=a%00b",
        "/v1/stats?account=a%00b",
        "/v1/stats?until=0001-01-02T00:00:00Z",
        "/v1/queue?since=0001-01-01T00:00:00%2B05:00",
        "/v1/labels/export?since=9999-12-31T23:59:59-05:00",
        "/v1/comments/2147483648",
    ):
        assert client.get(path).status_code == 422, path
    assert client.patch(f"/v1/comments/{comment_id}", json={"note": "a\x00b"}).status_code == 422

    def cursor(payload: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    forged = [
        ("/v1/queue", {"t": "2026-01-01T00:00:00", "s": "abc", "i": 1}),
        ("/v1/queue", {"t": "2026-01-01T00:00:00", "s": None, "i": 1}),
        ("/v1/queue", {"t": "0001-01-01T00:00:00", "s": 1, "i": 1}),
        ("/v1/queue", {"t": "2026-01-01T00:00:00", "s": 1, "i": 10**30}),
        ("/v1/queue", {"t": "2026-01-01T00:00:00", "s": 2**40, "i": 1}),
        ("/v1/review", {"m": "x", "i": 1}),
        ("/v1/review", {"m": 0.5, "i": 10**30}),
        ("/v1/review", {"m": "nan", "i": 1}),
    ]
    for path, payload in forged:
        response = client.get(path, params={"cursor": cursor(payload)})
        assert response.status_code == 422, (path, payload, response.text)
        assert response.json()["error"]["code"] == "invalid_query"


def test_notes_and_authors_are_masked(client: TestClient) -> None:
    comment_id = ingest(client, [item("m", "halo min", author="budi 081234567890")]).json()[
        "results"
    ][0]["id"]
    stored = client.get(f"/v1/comments/{comment_id}").json()
    assert stored["author"] == "budi ************"
    body = client.patch(
        f"/v1/comments/{comment_id}", json={"note": "warga NIK 3374012345678901 HP 081234567890"}
    ).json()
    assert body["history"][-1]["note"] == "warga NIK **************** HP ************"


def test_scoped_key_cannot_learn_other_accounts_ids(make_client: AppFactory) -> None:
    keys = [
        *API_KEYS,
        {"name": "acc1", "role": "client", "sha256": hash_key(SCOPED_KEY), "accounts": ["acc1"]},
    ]
    client = make_client(auth_enabled=True, api_keys=keys, rate_limit=None)
    ingest(client, [item("secret-1", "rahasia", account="acc2")], headers=bearer(ADMIN_KEY))
    body = ingest(
        client, [item("secret-1", "punyaku", account="acc1")], headers=bearer(SCOPED_KEY)
    ).json()
    assert body["results"][0]["status"] == "rejected" and body["results"][0]["id"] is None
    assert body["results"][0]["error"]["code"] == "external_id_taken"
