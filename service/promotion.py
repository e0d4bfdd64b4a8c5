"""Which model version is served: the pointer `<models_dir>/CURRENT` and its history.

`CURRENT` holds one line, the served version. `promotions.jsonl` records every change, one
JSON object per line: `version`, `previous`, `action` ("promote", "rollback" or "reload"),
`actor`, `at` (UTC, ISO 8601) and `reason`. The service loads `CURRENT` at start-up and polls
it (`service.runtime.ModelHolder`), so a promotion reaches every worker without a restart.

Writers take an exclusive `fcntl.flock` on `<models_dir>/.promotions.lock` for the
read-modify-write of the pointer and the history; the pointer is replaced atomically (temporary
file, fsync, `os.replace`, fsync of the folder), so a reader sees the old line or the new one,
never a torn one, and needs no lock.

    promote(models_dir, "20261201-101500-1a2b3c4d", actor="cli", reason="retrained")
    rollback(models_dir)          # back to the version served before, per the history
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from service.errors import ModelArtifactError, PilahError

CURRENT_FILE = "CURRENT"
HISTORY_FILE = "promotions.jsonl"
LOCK_FILE = ".promotions.lock"
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
Action = Literal["promote", "rollback", "reload"]
ACTIONS: tuple[str, ...] = ("promote", "rollback", "reload")

log = logging.getLogger("pilah.promotion")


class PromotionError(PilahError):
    """The served-model pointer cannot be changed as asked (unknown version, nothing to roll
    back to, unwritable models folder)."""


@dataclass(frozen=True)
class Promotion:
    """One change of the served version, as recorded in `promotions.jsonl`."""

    version: str
    previous: str | None
    action: Action
    actor: str
    at: str
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.version != self.previous

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_path(models_dir: Path) -> Path:
    return Path(models_dir) / CURRENT_FILE


def history_path(models_dir: Path) -> Path:
    return Path(models_dir) / HISTORY_FILE


def current_version(models_dir: Path) -> str | None:
    """The version named by `CURRENT`, or None when there is no (readable, valid) pointer."""
    path = current_path(models_dir)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    if not VERSION_NAME.match(text):
        if text:
            log.warning("%s does not hold a version name; ignoring it", path)
        return None
    return text


def served_version(models_dir: Path) -> str | None:
    """What a service started now (without an explicit model) serves: CURRENT, else the
    newest version, else None."""
    from service.model import list_versions

    pointed = current_version(models_dir)
    if pointed is not None:
        return pointed
    versions = list_versions(Path(models_dir))
    return versions[-1] if versions else None


def history(models_dir: Path) -> list[dict[str, Any]]:
    """Every recorded change, oldest first. A line that is not a JSON object (a torn last
    line after a crash, a hand edit) is skipped with a warning."""
    path = history_path(models_dir)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise PromotionError(f"cannot read {path}: {exc}") from exc
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("version"), str):
            log.warning("%s:%d is not a promotion record; skipping it", path, number)
            continue
        entries.append(entry)
    return entries


def served_stack(entries: list[dict[str, Any]]) -> list[str]:
    """The versions a rollback walks back through, oldest first, replayed from the history:
    promote/reload push a version (unless it is already on top), rollback pops one."""
    stack: list[str] = []
    for entry in entries:
        version = entry["version"]
        if entry.get("action") == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != version:  # a history that disagrees: trust the entry
                stack.append(version)
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


# --- writing --------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(models_dir: Path) -> Iterator[None]:
    """Exclusive lock of the models folder's pointer (between threads and processes)."""
    path = Path(models_dir) / LOCK_FILE
    try:
        handle = path.open("a+b")
    except OSError as exc:
        raise PromotionError(f"cannot lock {path}: {exc.strerror or exc}") from exc
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _write_pointer(models_dir: Path, version: str) -> None:
    directory = Path(models_dir)
    fd, temporary = tempfile.mkstemp(prefix=f".{CURRENT_FILE}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(version.encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, directory / CURRENT_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_dir(directory)


def _append_history(models_dir: Path, record: Promotion) -> None:
    line = json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"
    path = history_path(models_dir)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line: end it first
            line = "\n" + line
        os.write(fd, line.encode("utf-8"))  # one write of one line, under the lock
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_name(models_dir: Path, version: str) -> None:
    from service.model import list_versions

    if not VERSION_NAME.match(version):
        raise PromotionError(f"{version!r} is not a model version name")
    versions = list_versions(Path(models_dir))
    if version not in versions:
        known = ", ".join(versions[-5:]) or "none"
        raise PromotionError(
            f"no model version {version!r} in {models_dir} (newest versions: {known})"
        )


def _verify(models_dir: Path, version: str) -> None:
    """Loads the artifact as the service would (sha256, artifact format, scikit-learn
    version, labels); ModelArtifactError if it is broken."""
    from service.model import load_model

    load_model(Path(models_dir) / version, Path(models_dir))


class _PointerMoved(Exception):
    """CURRENT changed between reading it and taking the lock."""


def _record(
    models_dir: Path,
    version: str,
    action: Action,
    actor: str,
    reason: str | None,
    expected_previous: str | None = None,
) -> Promotion:
    """Under the lock: read the previous version, append the history line, move the pointer.
    The history is written first: after a crash in between, the pointer still names the old
    version and the extra history line is harmless to `served_stack`. With
    `expected_previous`, nothing is written (_PointerMoved) if the pointer has moved since."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    try:
        with _locked(models_dir):
            previous = current_version(models_dir)
            if expected_previous is not None and previous != expected_previous:
                raise _PointerMoved
            record = Promotion(
                version=version,
                previous=previous,
                action=action,
                actor=actor,
                at=_now(),
                reason=reason,
            )
            _append_history(models_dir, record)
            _write_pointer(models_dir, version)
    except OSError as exc:
        raise PromotionError(
            f"cannot record {action} of {version} in {models_dir}: {exc.strerror or exc}"
        ) from exc
    log.info(
        "served model %s -> %s (%s by %s)",
        record.previous,
        version,
        action,
        actor,
        extra={"model_version": version, "previous_version": record.previous},
    )
    return record


def promote(
    models_dir: Path, version: str, actor: str = "cli", reason: str | None = None
) -> Promotion:
    """Makes `version` the served model: verifies its artifact (ModelArtifactError if broken;
    PromotionError if there is no such version), then moves CURRENT and records the change.
    Promoting the version already served records the (re)verification but changes nothing."""
    models_dir = Path(models_dir)
    _check_name(models_dir, version)
    _verify(models_dir, version)  # slow (unpickling): before taking the lock
    return _record(models_dir, version, "promote", actor, reason)


def record_reload(
    models_dir: Path, version: str, actor: str = "api", reason: str | None = None
) -> Promotion:
    """Records a swap the service has already made (`POST /v1/model/reload`): the caller
    loaded and verified the artifact, so it is not loaded again here."""
    models_dir = Path(models_dir)
    _check_name(models_dir, version)
    return _record(models_dir, version, "reload", actor, reason)


def rollback(models_dir: Path, actor: str = "cli", reason: str | None = None) -> Promotion:
    """Serves again the version served before the current one, per the history; repeated
    rollbacks walk further back. PromotionError when there is nothing to roll back to;
    ModelArtifactError when that version's artifact no longer loads (nothing changes)."""
    models_dir = Path(models_dir)
    for _ in range(3):  # the pointer may move while the target is verified outside the lock
        current, target = _rollback_target(models_dir)
        _verify(models_dir, target)
        try:
            return _record(models_dir, target, "rollback", actor, reason, expected_previous=current)
        except _PointerMoved:
            continue
    raise PromotionError("the served version kept changing during the rollback; try again")


def _rollback_target(models_dir: Path) -> tuple[str, str]:
    from service.model import list_versions

    current = current_version(models_dir)
    if current is None:
        raise PromotionError(
            f"nothing to roll back: {models_dir} has no {CURRENT_FILE} pointer "
            "(promote a version first)"
        )
    stack = served_stack(history(models_dir))
    if not stack or stack[-1] != current:  # CURRENT edited by hand, or a lost history line
        stack.append(current)
    if len(stack) < 2:
        raise PromotionError(
            f"nothing to roll back to: {current} is the first version in {HISTORY_FILE}"
        )
    target = stack[-2]
    if target not in list_versions(models_dir):
        raise ModelArtifactError(
            f"cannot roll back to {target}: its folder is gone from {models_dir}"
        )
    return current, target
