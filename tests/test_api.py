"""The HTTP API's endpoints on their happy paths (errors: test_api_errors.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_helpers import COMPLAINT, NEW, OLD, PRAISE, QUESTION, AppFactory, run_python
from fastapi.testclient import TestClient

from service.labels import LABELS
from service.model import load_model
from service.schemas import BatchResponse, ClassifyResponse, ModelInfo

pytest_plugins = ["conftest_api"]


def test_importing_the_app_loads_no_model_code() -> None:
    code = (
        "import sys, service.app; "
        "heavy = [m for m in ('sklearn', 'scipy', 'service.model', 'service.text') if m in sys.modules]; "
        "print(heavy)"
    )
    assert run_python(code).stdout.strip() == "[]"


def test_classify_returns_every_field(client: TestClient, models_tree: Path) -> None:
    response = client.post(
        "/v1/classify", json={"text": COMPLAINT, "id": "ig-1", "platform": "instagram"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = ClassifyResponse.model_validate(response.json())
    assert body.id == "ig-1"
    assert body.model_version == NEW
    assert list(response.json()["scores"]) == list(LABELS)
    assert sum(response.json()["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body.confidence == max(response.json()["scores"].values())
    assert body.label == max(response.json()["scores"], key=response.json()["scores"].get)
    assert 0 <= body.priority.score <= 100
    assert body.priority.reasons[0].code == "label"
    assert body.explanation.versus in LABELS and body.explanation.versus != body.label
    assert all(f.weight > 0 for f in body.explanation.features)
    weights = [f.weight for f in body.explanation.features]
    assert weights == sorted(weights, reverse=True)
    assert "jalan" in body.topics
    # Same label and scores as the model itself.
    reference = load_model(models_tree / NEW).fast.predict_one(COMPLAINT)
    assert body.label == reference.label
    assert response.json()["scores"] == reference.scores


def test_classify_without_optional_fields(client: TestClient) -> None:
    body = client.post("/v1/classify", json={"text": QUESTION}).json()
    assert body["id"] is None
    assert body["label"] in LABELS


def test_classify_ignores_unknown_fields(client: TestClient) -> None:
    response = client.post("/v1/classify", json={"text": QUESTION, "lang": "id"})
    assert response.status_code == 200


def test_flags_and_topics(client: TestClient) -> None:
    urgent = client.post(
        "/v1/classify",
        json={"text": "Tolong min, banjir setinggi lutut di Genuk, warga butuh evakuasi!"},
    ).json()
    assert "urgent" in urgent["flags"]
    assert "banjir" in urgent["topics"]
    spam = client.post(
        "/v1/classify", json={"text": "SL0T G4C0R hari ini maxwin, daftar di bit.ly/gacor88"}
    ).json()
    assert "spam" in spam["flags"]
    assert spam["priority"]["score"] == 0
    pii = client.post(
        "/v1/classify", json={"text": "NIK saya 3374010101010001 kok belum dapat PKH min?"}
    ).json()
    assert "pii" in pii["flags"]
    assert {"bansos", "adminduk"} <= set(pii["topics"])
    # The echo of a NIK never leaves as a feature name: placeholders only.
    assert all("3374" not in f["feature"] for f in pii["explanation"]["features"])


def test_long_comment_runs_off_the_loop_with_the_same_result(make_client: AppFactory) -> None:
    inline = make_client(inline_max_chars=100_000)
    threaded = make_client(inline_max_chars=0)
    text = COMPLAINT + " " + QUESTION
    assert (
        inline.post("/v1/classify", json={"text": text}).json()
        == threaded.post("/v1/classify", json={"text": text}).json()
    )


def test_batch_keeps_order_and_reports_item_errors(client: TestClient) -> None:
    items = [
        {"id": "a", "text": COMPLAINT, "platform": "facebook"},
        {"id": "b", "text": "   "},
        "not an object",
        {"id": "d"},
        {"id": "e", "text": "x" * 5001},
        {"id": "f", "text": PRAISE, "platform": "myspace"},
        {"id": "g", "text": QUESTION},
        {"id": "h", "text": 42},
    ]
    response = client.post("/v1/classify/batch", json={"items": items})
    assert response.status_code == 200
    body = BatchResponse.model_validate(response.json())
    assert body.count == len(items)
    assert body.failed == 6
    assert [r.index for r in body.results] == list(range(len(items)))
    assert [r.id for r in body.results] == ["a", "b", None, "d", "e", "f", "g", "h"]
    errors = {r.index: r.error.code for r in body.results if r.error}
    assert errors == {
        1: "empty_text",
        2: "validation_error",
        3: "validation_error",
        4: "text_too_long",
        5: "validation_error",
        7: "validation_error",
    }
    assert all((r.result is None) == (r.error is not None) for r in body.results)
    ok = {r.index: r.result for r in body.results if r.result}
    assert ok[0] is not None and ok[0].id == "a"
    # Item results are what the single route returns for the same comment.
    for index, item in ((0, items[0]), (6, items[6])):
        single = client.post("/v1/classify", json=item).json()
        batch_item = response.json()["results"][index]["result"]
        assert batch_item["label"] == single["label"]
        assert batch_item["scores"] == pytest.approx(single["scores"], abs=2e-6)
        assert [f["feature"] for f in batch_item["explanation"]["features"]] == [
            f["feature"] for f in single["explanation"]["features"]
        ]
        assert batch_item["flags"] == single["flags"]
        assert batch_item["topics"] == single["topics"]


def test_batch_item_errors_do_not_echo_text(client: TestClient) -> None:
    secret = "rahasia-warga-0812"
    body = client.post(
        "/v1/classify/batch",
        json={"items": [{"text": secret * 500}, {"text": secret, "platform": secret}]},
    ).text
    assert secret not in body


def test_large_batch_is_classified(client: TestClient) -> None:
    texts = [COMPLAINT, QUESTION, PRAISE]
    items = [{"id": str(i), "text": texts[i % 3]} for i in range(1000)]
    response = client.post("/v1/classify/batch", json={"items": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 1000
    assert [r["id"] for r in results] == [str(i) for i in range(1000)]
    labels = {r["result"]["label"] for r in results[:3]}
    assert [r["result"]["label"] for r in results[3:6]] == [
        r["result"]["label"] for r in results[:3]
    ]
    assert labels <= set(LABELS)


def test_model_info(client: TestClient, models_tree: Path) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    info = ModelInfo.model_validate(response.json())
    manifest = json.loads((models_tree / NEW / "manifest.json").read_text(encoding="utf-8"))
    assert info.version == NEW
    assert info.labels == list(LABELS)
    assert info.created_at == manifest["created_at"]
    assert info.metrics == manifest["metrics"]
    assert info.limits.max_text_chars == 5000
    assert info.limits.max_batch_items == 1000
    if "thresholds" in manifest:
        assert info.thresholds.source == "manifest"
        assert info.thresholds.min_margin == manifest["thresholds"]["min_margin"]
        assert info.thresholds.min_confidence == manifest["thresholds"]["min_confidence"]
    assert set(info.thresholds.min_confidence) == set(LABELS)


def test_model_info_without_thresholds_uses_defaults(
    make_client: AppFactory, models_tree: Path
) -> None:
    manifest_path = models_tree / NEW / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.pop("thresholds", None)
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    info = make_client().get("/v1/model").json()
    assert info["thresholds"] == {
        "min_confidence": dict.fromkeys(LABELS, 0.5),
        "min_margin": 0.15,
        "source": "default",
    }


def test_needs_review_follows_the_thresholds(make_client: AppFactory, models_tree: Path) -> None:
    manifest_path = models_tree / NEW / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["thresholds"] = {"min_confidence": dict.fromkeys(LABELS, 1.0), "min_margin": 0.0}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    strict = make_client().post("/v1/classify", json={"text": COMPLAINT}).json()
    assert strict["needs_review"] is True
    assert "low_confidence" in strict["review_reasons"]
    manifest["thresholds"] = {"min_confidence": dict.fromkeys(LABELS, 0.0), "min_margin": 0.0}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    lenient = make_client().post("/v1/classify", json={"text": COMPLAINT}).json()
    assert lenient["needs_review"] is False
    assert lenient["review_reasons"] == []


def test_named_model_at_startup(make_client: AppFactory) -> None:
    assert make_client(model=OLD).get("/readyz").json() == {
        "status": "ready",
        "model_version": OLD,
    }


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": NEW}


def test_not_ready_without_a_model(make_client: AppFactory, tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    client = make_client(models_dir=empty)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "5"
    assert ready.json()["error"]["code"] == "model_not_ready"
    for method, path, body in (
        ("POST", "/v1/classify", {"text": COMPLAINT}),
        ("POST", "/v1/classify/batch", {"items": [{"text": COMPLAINT}]}),
        ("GET", "/v1/model", None),
    ):
        response = client.request(method, path, json=body)
        assert response.status_code == 503, path
        assert response.json()["error"]["code"] == "model_not_ready"


def test_metrics(client: TestClient) -> None:
    client.post("/v1/classify", json={"text": COMPLAINT})
    client.post("/v1/classify/batch", json={"items": [{"text": QUESTION}, {"text": " "}]})
    client.post("/v1/classify", json={"text": ""})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'pilah_http_requests_total{method="POST",route="/v1/classify",status="200"} 1.0' in text
    assert 'pilah_http_requests_total{method="POST",route="/v1/classify",status="422"} 1.0' in text
    assert (
        'pilah_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/classify"}'
        in text
    )
    assert "pilah_predictions_total{label=" in text
    assert 'pilah_batch_item_errors_total{code="empty_text"} 1.0' in text
    assert f'pilah_model_info{{version="{NEW}"}} 1.0' in text
    predicted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pilah_predictions_total{")
    )
    assert predicted == 2.0


def test_request_ids(client: TestClient) -> None:
    response = client.get("/healthz")
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    mine = client.get("/healthz", headers={"X-Request-ID": "lapor-req-42"})
    assert mine.headers["x-request-id"] == "lapor-req-42"
    junk = client.get("/healthz", headers={"X-Request-ID": "a b\tc" * 40})
    assert junk.headers["x-request-id"] != "a b\tc" * 40
    error = client.post("/v1/classify", json={"text": ""}, headers={"X-Request-ID": "abc-1"})
    assert error.json()["error"]["request_id"] == "abc-1"


def test_openapi_documents_limits_examples_and_security(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/v1/classify", "/v1/classify/batch", "/v1/model", "/v1/model/reload"):
        assert path in paths
    for path in ("/healthz", "/readyz", "/metrics"):
        assert path in paths
    components = schema["components"]["schemas"]
    text = components["ClassifyRequest"]["properties"]["text"]
    assert text["maxLength"] == 5000
    assert components["BatchRequest"]["properties"]["items"]["maxItems"] == 1000
    examples = json.dumps(schema, ensure_ascii=False)
    for indonesian in ("jalan", "syarat daftar PKH", "banjir", "pelayanan dukcapil"):
        assert indonesian in examples
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert paths["/v1/classify"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    # Every documented error response uses the one error body.
    for path, operations in paths.items():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status.startswith("4") or status.startswith("5"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, status)
    assert "HTTPValidationError" not in components


def test_limits_in_openapi_follow_settings(make_client: AppFactory) -> None:
    client = make_client(max_text_chars=280, max_batch_items=50)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["ClassifyRequest"]["properties"]["text"]["maxLength"] == 280
    assert schema["BatchRequest"]["properties"]["items"]["maxItems"] == 50
    assert client.get("/v1/model").json()["limits"]["max_batch_items"] == 50


def test_docs_and_root(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/").json()["docs"] == "/docs"
