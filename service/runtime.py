"""The served model and its hot reload.

`ModelHolder.current` is the one reference requests read; a request takes it once and works
on that object to the end, so a reload (load, verify, warm up, then one assignment) never
disturbs a request in flight and never leaves a moment without a model. A broken or
sha256-mismatched artifact fails in `load_model` before the swap, and the old model keeps
serving.

Which version to serve follows files that every worker polls (every `model_sync_interval`
seconds) and loads at start-up:

* `<models_dir>/CURRENT`, the served-model pointer of `service.promotion` (`pilah promote`,
  `pilah rollback`, `pilah retrain`), unless the settings name an explicit model
  (`PILAH_MODEL`): then the operator's choice stands and the pointer is neither read nor
  written;
* `model_sync_file` when it is set (`pilah serve` sets it when it runs several workers).

A reload through the API writes both (the pointer with action "reload" in its history), so all
workers and a later restart agree; the second channel keeps workers converging when the models
folder is read-only. A poll acts only when a file changed since the last poll (content, inode or
mtime), so a broken artifact named there is tried once, refused and logged, and the old model
keeps serving until the file changes again. When several files changed, the newest wins.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from service.errors import ModelArtifactError, PilahError
from service.http import ApiError
from service.promotion import VERSION_NAME, current_path, current_version, record_reload
from service.settings import Settings

if TYPE_CHECKING:
    from service.inference import ServingModel
    from service.observability import Metrics

log = logging.getLogger("pilah.model")


@dataclass(frozen=True)
class ReloadOutcome:
    previous_version: str | None
    model_version: str
    changed: bool
    load_seconds: float


@dataclass(frozen=True)
class SyncState:
    """What one polled file said, and which write of it that was."""

    path: Path
    version: str | None
    stamp: tuple[int, int, int] | None  # inode, mtime (ns), size; None: no such file

    @property
    def mtime(self) -> int:
        return self.stamp[1] if self.stamp else -1


class ModelHolder:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        self._lock = anyio.Lock()
        self._seen: dict[Path, SyncState] = {}

    @property
    def models_dir(self) -> Path:
        from service.model import default_models_dir

        return self.settings.models_dir or default_models_dir()

    @property
    def follows_pointer(self) -> bool:
        """True unless the settings name an explicit model: then CURRENT is ignored."""
        return self.settings.model is None

    @property
    def sync_files(self) -> list[Path]:
        """The files this holder loads at start-up and polls: CURRENT (unless an explicit
        model is configured) and the workers' sync file (when configured)."""
        files = [current_path(self.models_dir)] if self.follows_pointer else []
        if self.settings.model_sync_file is not None:
            files.append(self.settings.model_sync_file)
        return files

    @property
    def sync_enabled(self) -> bool:
        """Whether `sync_forever` has anything to poll (the app starts it only then)."""
        return bool(self.sync_files)

    # --- loading ------------------------------------------------------------------------

    def _build(self, version: str | None) -> ServingModel:
        """Load (verifying sha256, labels, library versions), index and warm up a model."""
        from service.inference import ServingModel
        from service.model import list_versions, load_model

        if version is None:  # the newest, whatever CURRENT says (a reload asks for the newest)
            versions = list_versions(self.models_dir)
            version = versions[-1] if versions else None
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
        """At start-up: the version in the newest sync file (CURRENT, or the workers' file
        after a worker restart), else the configured one, else the newest. A failure leaves
        the service up but not ready."""
        states = self._read_states()
        self._seen = {state.path: state for state in states}
        version = self._newest(states) or self.settings.model
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

    async def reload(self, version: str | None, actor: str = "api") -> ReloadOutcome:
        """Load the named (or newest) version and swap it in; refused artifacts raise
        ApiError and leave the current model serving. The swap is recorded in CURRENT (and
        its history, as `actor`) and in the workers' sync file."""
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
            await anyio.to_thread.run_sync(self._write_sync, model.version, actor)
        previous_version = previous.version if previous else None
        log.info(
            "model reloaded",
            extra={"model_version": model.version, "previous_version": previous_version},
        )
        return ReloadOutcome(
            previous_version, model.version, previous_version != model.version, round(elapsed, 3)
        )

    # --- sharing the version across worker processes --------------------------------------

    @staticmethod
    def _read_state(path: Path) -> SyncState:
        try:
            with path.open("rb") as handle:
                info = os.fstat(handle.fileno())
                raw = handle.read(256)
        except OSError:
            return SyncState(path, None, None)
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        text = raw.decode("utf-8", "replace").strip()
        return SyncState(path, text if VERSION_NAME.match(text) else None, stamp)

    def _read_states(self) -> list[SyncState]:
        return [self._read_state(path) for path in self.sync_files]

    @staticmethod
    def _newest(states: list[SyncState]) -> str | None:
        """The version named by the most recently written of these files (None: none)."""
        named = [state for state in states if state.version is not None]
        return max(named, key=lambda s: s.mtime).version if named else None

    def _write_sync(self, version: str, actor: str = "api") -> None:
        """Shares a reload: CURRENT with its history (when following the pointer and it
        names another version), and the workers' sync file. Failures are logged: the swap
        stands in this worker."""
        if self.follows_pointer and current_version(self.models_dir) != version:
            try:
                record_reload(self.models_dir, version, actor=actor)
            except PilahError as exc:
                log.warning("could not record the reload in the served-model pointer: %s", exc)
        path = self.settings.model_sync_file
        if path is None:
            return
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            temporary.write_text(version + "\n", encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("could not share the model version with other workers: %s", exc)

    def _poll(self) -> str | None:
        """The version named by the files that changed since the last poll (the newest of
        them), or None when none changed or those that did name no version."""
        changed = []
        for state in self._read_states():
            if self._seen.get(state.path) != state:
                self._seen[state.path] = state
                changed.append(state)
        return self._newest(changed)

    async def sync_once(self) -> None:
        wanted = self._poll()
        current = self.current.version if self.current else None
        if wanted is None or wanted == current:
            return
        async with self._lock:
            if self.current is not None and self.current.version == wanted:
                return
            try:
                model = await anyio.to_thread.run_sync(self._build, wanted)
            except Exception as exc:  # tried once per change of the file: no retry loop
                message = str(exc).replace(str(self.models_dir), "<models>")
                log.error(
                    "could not follow the served version to %s (still serving %s): %s",
                    wanted,
                    current,
                    message,
                    exc_info=not isinstance(exc, ModelArtifactError),
                )
                return
            self._install(model)
        log.info(
            "model follows the served version",
            extra={"model_version": wanted, "previous_version": current},
        )

    async def sync_forever(self) -> None:
        if not self.sync_enabled:
            return
        while True:
            await anyio.sleep(self.settings.model_sync_interval)
            try:
                await self.sync_once()
            except Exception:  # keep polling whatever happens
                log.exception("model sync failed")
