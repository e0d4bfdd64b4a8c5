"""Schemathesis against the app's own OpenAPI document: generated requests (valid and
invalid) never get a 5xx, and every response conforms to the documented status codes,
content types, headers and schemas. Bounded: a fixed number of examples per operation,
deterministic generation, no Hypothesis database; about 25 s here.

Run it alone with `python3 -m pytest -m schemathesis`, skip it with `-m "not schemathesis"`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import Settings

pytest_plugins = ["conftest_api"]
pytestmark = pytest.mark.schemathesis

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 100


@pytest.fixture(scope="module")
def api_schema(api_models_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    models = tmp_path_factory.mktemp("schemathesis") / "models"
    shutil.copytree(api_models_template, models)
    database = f"sqlite:///{models.parent / 'schemathesis.db'}"
    app = create_app(
        Settings(
            models_dir=models,
            database_url=database,
            access_log=False,
            switch_interval=None,
            max_text_chars=2000,
        )
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        database="none",
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
