"""FastAPI dependencies, as `Annotated` aliases for route signatures.

The caller was identified by `service.security.AuthMiddleware` before the body was read;
the aliases here check the role a route needs (403 otherwise) and hand over the runtime and
the model a request works with:

* `RuntimeDep`: the app's runtime (settings, metrics, model holder);
* `ClientModel`: role client, plus the model the request will finish on (503 if none yet);
* `Admin`: role admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import Depends, Request

from service.http import ApiError
from service.observability import Metrics
from service.runtime import ModelHolder
from service.security import ANONYMOUS, Caller, allows
from service.settings import Role, Settings

if TYPE_CHECKING:  # importing the model code pulls scikit-learn in: not at app import time
    from service.inference import ServingModel
    from service.store.db import Database
else:
    ServingModel = object  # annotations only; FastAPI does not validate dependency values

# Dependencies are `async def` (FastAPI runs plain functions in a thread per call) and take
# only the request: each sub-dependency costs FastAPI's resolver a few microseconds.
# The security schemes are declared in the OpenAPI document by `openapi_security`.
API_KEY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <API key>",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


@dataclass
class Runtime:
    """Everything one app instance holds (on `app.state.runtime`)."""

    settings: Settings
    metrics: Metrics
    holder: ModelHolder
    batch_limiter: anyio.CapacityLimiter | None = None
    database: Database | None = None
    database_limiter: anyio.CapacityLimiter | None = None

    def limiter(self) -> anyio.CapacityLimiter:
        if self.batch_limiter is None:
            self.batch_limiter = anyio.CapacityLimiter(self.settings.batch_threads)
        return self.batch_limiter

    def store_limiter(self) -> anyio.CapacityLimiter:
        if self.database_limiter is None:
            self.database_limiter = anyio.CapacityLimiter(self.settings.store_threads)
        return self.database_limiter

    def store(self) -> Database:
        if self.database is None:
            raise ApiError(
                503,
                "store_unavailable",
                "the comment store is not open yet",
                headers={"Retry-After": "5"},
            )
        return self.database


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def current_model(runtime: Runtime) -> ServingModel:
    """The model a request works with, taken once: a reload during the request does not
    change it. 503 while none is loaded."""
    model = runtime.holder.current
    if model is None:
        raise ApiError(
            503, "model_not_ready", "no model is loaded yet", headers={"Retry-After": "5"}
        )
    return model


def caller_of(request: Request) -> Caller:
    """Set by the auth middleware; anonymous (with every role) when auth is off."""
    caller = request.scope.get("state", {}).get("caller")
    return caller if isinstance(caller, Caller) else ANONYMOUS


def require(role: Role, request: Request) -> Caller:
    caller = caller_of(request)
    if not allows(caller, role):
        raise ApiError(403, "forbidden", f"this route needs the {role} role")
    return caller


@dataclass(frozen=True)
class ModelCall:
    """A client call that needs the model: who calls, with which runtime and model."""

    caller: Caller
    runtime: Runtime
    model: ServingModel

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


@dataclass(frozen=True)
class AdminCall:
    caller: Caller
    runtime: Runtime


async def client_model_call(request: Request) -> ModelCall:
    """Role `client` (403 otherwise), then the current model (503 if none)."""
    caller = require("client", request)
    runtime: Runtime = request.app.state.runtime
    return ModelCall(caller, runtime, current_model(runtime))


async def admin_call(request: Request) -> AdminCall:
    """Role `admin` (403 otherwise)."""
    caller = require("admin", request)
    return AdminCall(caller, request.app.state.runtime)


@dataclass(frozen=True)
class StoreCall:
    """A call on the comment store: who calls (and which accounts they may see)."""

    caller: Caller
    runtime: Runtime

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def database(self) -> Database:
        return self.runtime.store()

    @property
    def accounts(self) -> frozenset[str] | None:
        return self.caller.accounts


async def client_store_call(request: Request) -> StoreCall:
    return StoreCall(require("client", request), request.app.state.runtime)


async def admin_store_call(request: Request) -> StoreCall:
    return StoreCall(require("admin", request), request.app.state.runtime)


ClientModel = Annotated[ModelCall, Depends(client_model_call)]
ClientStore = Annotated[StoreCall, Depends(client_store_call)]
AdminStore = Annotated[StoreCall, Depends(admin_store_call)]
Admin = Annotated[AdminCall, Depends(admin_call)]
