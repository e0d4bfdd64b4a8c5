"""The served model and its hot reload.

`ModelHolder.current` is the one reference requests read; a request takes it once and works
on that object to the end, so a reload (load, verify, warm up, then one assignment) never
disturbs a request in flight and never leaves a moment without a model. A broken or
sha256-mismatched artifact fails in `load_model` before the swap, and the old model keeps
serving.

With several worker processes, the worker that performed a reload writes the version to
`model_sync_file`; the others poll it and load the same version, so all workers converge.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from service.errors import ModelArtifactError
from service.http import ApiError
from service.settings import Settings

if TYPE_CHECKING:
    from service.inference import ServingModel
    from service.observability import Metrics

log = logging.getLogger("pilah.model")
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ReloadOutcome:
    previous_version: str | None
    model_version: str
    changed: bool
    load_seconds: float


class ModelHolder:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        self._lock = anyio.Lock()
        self._failed_sync: str | None = None

    @property
    def models_dir(self) -> Path:
        from service.model import default_models_dir

        return self.settings.models_dir or default_models_dir()

    # --- loading ------------------------------------------------------------------------

    def _build(self, version: str | None) -> ServingModel:
        """Load (verifying sha256, labels, library versions), index and warm up a model."""
        from service.inference import ServingModel
        from service.model import load_model

        target = self.models_dir / version if version else None
        model = ServingModel(load_model(target, self.models_dir), top_k=self.settings.explain_top_k)
        model.analyse_one("warm up: jalan rusak, kapan diperbaiki?")
        model.analyse_many(["terima kasih", "info loker"])
        gc.collect()  # here, in the loading thread, rather than later during a request
        return model

    def _check_version(self, version: str) -> None:
        from service.model import list_versions

        if not VERSION_NAME.match(version) or version not in list_versions(self.models_dir):
            raise ApiError(
                404, "model_not_found", f"no model version {version!r} in the models folder"
            )

    def _install(self, model: ServingModel) -> None:
        # The model's ~10^5 long-lived objects (vocabulary, word tables) would make every
        # full collection take ~30 ms with the GIL held: /healthz would wait behind it.
        # Frozen objects are still freed by reference counting when a reload drops them.
        gc.freeze()
        self.current = model
        self.last_error = None
        self.metrics.set_model(model.version)

    async def load_initial(self) -> None:
        """At start-up: the synced version (after a worker restart), else the configured
        one, else the newest. A failure leaves the service up but not ready."""
        version = self._read_sync() or self.settings.model
        try:
            model = await anyio.to_thread.run_sync(self._build_initial, version)
        except Exception as exc:  # an artifact that loads but cannot predict is broken too
            self.last_error = str(exc)
            log.error("no model loaded: %s", exc, exc_info=not isinstance(exc, ModelArtifactError))
            return
        self._install(model)
        log.info("model loaded", extra={"model_version": model.version})

    def _build_initial(self, version: str | None) -> ServingModel:
        from service.inference import ServingModel
        from service.model import load_model

        if version and VERSION_NAME.match(version):
            return self._build(version)
        # A configured path (PILAH_MODEL=/some/dir) is the operator's choice at start-up.
        model = ServingModel(load_model(version, self.models_dir), self.settings.explain_top_k)
        model.analyse_one("warm up")
        gc.collect()
        return model

    async def reload(self, version: str | None) -> ReloadOutcome:
        """Load the named (or newest) version and swap it in; refused artifacts raise
        ApiError and leave the current model serving."""
        if version is not None:
            self._check_version(version)
        async with self._lock:
            previous = self.current
            started = time.perf_counter()
            try:
                model = await anyio.to_thread.run_sync(self._build, version)
            except Exception as exc:  # unpicklable, mismatched, or failing its warm-up
                self.metrics.reloads.labels("refused").inc()
                known = isinstance(exc, ModelArtifactError)
                message = str(exc).replace(str(self.models_dir), "<models>")
                log.warning("model reload refused: %s", message, exc_info=not known)
                if not known:
                    message = f"the model failed its warm-up ({type(exc).__name__})"
                raise ApiError(422, "model_artifact_invalid", message) from None
            elapsed = time.perf_counter() - started
            self._install(model)
            self.metrics.reloads.labels("ok").inc()
            self._write_sync(model.version)
        previous_version = previous.version if previous else None
        log.info(
            "model reloaded",
            extra={"model_version": model.version, "previous_version": previous_version},
        )
        return ReloadOutcome(
            previous_version, model.version, previous_version != model.version, round(elapsed, 3)
        )

    # --- sharing the version across worker processes --------------------------------------

    def _read_sync(self) -> str | None:
        path = self.settings.model_sync_file
        if path is None:
            return None
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return text if VERSION_NAME.match(text) else None

    def _write_sync(self, version: str) -> None:
        path = self.settings.model_sync_file
        if path is None:
            return
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            temporary.write_text(version + "\n", encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("could not share the model version with other workers: %s", exc)

    async def sync_once(self) -> None:
        wanted = self._read_sync()
        current = self.current.version if self.current else None
        if wanted is None or wanted == current or wanted == self._failed_sync:
            return
        async with self._lock:
            if self.current is not None and self.current.version == wanted:
                return
            try:
                model = await anyio.to_thread.run_sync(self._build, wanted)
            except Exception as exc:
                self._failed_sync = wanted
                log.error("could not follow the reload to %s: %s", wanted, exc)
                return
            self._install(model)
            self._failed_sync = None
        log.info("model follows reload by another worker", extra={"model_version": wanted})

    async def sync_forever(self) -> None:
        while True:
            await anyio.sleep(self.settings.model_sync_interval)
            try:
                await self.sync_once()
            except Exception:  # keep polling whatever happens
                log.exception("model sync failed")
