"""The served-model pointer (CURRENT + promotions.jsonl): promote, rollback, history, two
promoters at once, refused artifacts; and the service following the pointer without a
restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from api_helpers import NEW, OLD, copy_version

from service.app import create_app
from service.errors import ModelArtifactError
from service.observability import Metrics
from service.promotion import (
    CURRENT_FILE,
    HISTORY_FILE,
    PromotionError,
    current_version,
    history,
    promote,
    record_reload,
    rollback,
    served_stack,
    served_version,
)
from service.runtime import ModelHolder
from service.settings import Settings

pytest_plugins = ["conftest_api"]

THIRD = "20260103-000000-dddddddd"
BROKEN = "20260104-000000-cccccccc"
REPO = Path(__file__).resolve().parents[1]


def tamper(models: Path, version: str = BROKEN, source: str = NEW) -> Path:
    """A copy of `source` whose model.joblib has one byte changed (sha256 mismatch)."""
    target = copy_version(models / source, models, version)
    model_file = target / "model.joblib"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    return target


def actions(models: Path) -> list[tuple[str, str | None, str]]:
    return [(e["version"], e["previous"], e["action"]) for e in history(models)]


# --- the pointer and its history -------------------------------------------------------------


def test_without_a_pointer_the_newest_is_served(models_tree: Path) -> None:
    assert current_version(models_tree) is None
    assert history(models_tree) == []
    assert served_version(models_tree) == NEW
    assert served_version(models_tree / "nothing-here") is None


def test_promote_moves_the_pointer_and_records_it(models_tree: Path) -> None:
    first = promote(models_tree, OLD, actor="alice", reason="back to the old one")
    assert (first.version, first.previous, first.action, first.actor) == (
        OLD,
        None,
        "promote",
        "alice",
    )
    assert first.reason == "back to the old one"
    assert (models_tree / CURRENT_FILE).read_text(encoding="utf-8") == OLD + "\n"
    assert current_version(models_tree) == OLD
    assert served_version(models_tree) == OLD  # the pointer beats the newest
    second = promote(models_tree, NEW)
    assert (second.previous, second.actor, second.reason) == (OLD, "cli", None)
    entries = history(models_tree)
    assert [e["version"] for e in entries] == [OLD, NEW]
    assert entries[0] == first.to_dict()
    assert set(entries[1]) == {"version", "previous", "action", "actor", "at", "reason"}
    at = datetime.fromisoformat(entries[1]["at"])
    assert at.utcoffset() == timedelta(0)
    lines = (models_tree / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == entries
    # No temporary files are left behind.
    assert not [p.name for p in models_tree.iterdir() if p.name.startswith(f".{CURRENT_FILE}")]


@pytest.mark.parametrize("version", ["20250101-000000-zzzzzzzz", "../models", "", "a/b"])
def test_promote_unknown_version(models_tree: Path, version: str) -> None:
    promote(models_tree, OLD)
    with pytest.raises(PromotionError, match="version"):
        promote(models_tree, version)
    assert current_version(models_tree) == OLD
    assert len(history(models_tree)) == 1


@pytest.mark.parametrize("how", ["flipped_byte", "other_sklearn"])
def test_promote_refuses_a_broken_artifact(models_tree: Path, how: str) -> None:
    promote(models_tree, NEW)
    if how == "flipped_byte":
        tamper(models_tree)
        match = "sha256"
    else:
        target = copy_version(models_tree / NEW, models_tree, BROKEN)
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        manifest["libraries"]["scikit-learn"] = "0.0.1"
        (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        match = "scikit-learn"
    with pytest.raises(ModelArtifactError, match=match):
        promote(models_tree, BROKEN)
    assert current_version(models_tree) == NEW
    assert actions(models_tree) == [(NEW, None, "promote")]


def test_rollback_walks_back_through_the_history(models_tree: Path) -> None:
    copy_version(models_tree / NEW, models_tree, THIRD)
    for version in (OLD, NEW, THIRD):
        promote(models_tree, version)
    back = rollback(models_tree, actor="bob", reason="complaints misread")
    assert (back.version, back.previous, back.action, back.actor) == (
        NEW,
        THIRD,
        "rollback",
        "bob",
    )
    assert current_version(models_tree) == NEW
    assert rollback(models_tree).version == OLD
    assert current_version(models_tree) == OLD
    with pytest.raises(PromotionError, match="nothing to roll back to"):
        rollback(models_tree)
    assert current_version(models_tree) == OLD
    assert actions(models_tree) == [
        (OLD, None, "promote"),
        (NEW, OLD, "promote"),
        (THIRD, NEW, "promote"),
        (NEW, THIRD, "rollback"),
        (OLD, NEW, "rollback"),
    ]


def test_rollback_after_a_new_promotion_and_a_reload(models_tree: Path) -> None:
    copy_version(models_tree / NEW, models_tree, THIRD)
    promote(models_tree, OLD)
    promote(models_tree, NEW)
    assert rollback(models_tree).version == OLD
    record_reload(models_tree, THIRD, actor="api:ops")
    promote(models_tree, THIRD)  # the same version again: recorded, nothing to walk back
    assert rollback(models_tree).version == OLD
    with pytest.raises(PromotionError):
        rollback(models_tree)


def test_served_stack_replays_the_history() -> None:
    def entry(version: str, action: str = "promote") -> dict[str, Any]:
        return {"version": version, "action": action}

    assert served_stack([]) == []
    assert served_stack([entry("a"), entry("b"), entry("b"), entry("c", "reload")]) == [
        "a",
        "b",
        "c",
    ]
    assert served_stack([entry("a"), entry("b"), entry("a", "rollback")]) == ["a"]
    # A rollback the stack does not explain (a hand-edited history): the entry wins.
    assert served_stack([entry("a"), entry("z", "rollback")]) == ["z"]


def test_rollback_needs_a_pointer(models_tree: Path) -> None:
    with pytest.raises(PromotionError, match="no CURRENT"):
        rollback(models_tree)
    promote(models_tree, NEW)
    with pytest.raises(PromotionError, match="first version"):
        rollback(models_tree)


def test_rollback_refuses_a_target_that_broke(models_tree: Path) -> None:
    tamper(models_tree, BROKEN, source=OLD)
    # Recorded as served while it was fine (a reload does not re-verify), broken since.
    record_reload(models_tree, BROKEN)
    promote(models_tree, NEW)
    with pytest.raises(ModelArtifactError, match="sha256"):
        rollback(models_tree)
    assert current_version(models_tree) == NEW
    assert len(history(models_tree)) == 2


def test_pointer_edited_by_hand_is_the_starting_point(models_tree: Path) -> None:
    promote(models_tree, OLD)
    (models_tree / CURRENT_FILE).write_text(NEW + "\n", encoding="utf-8")
    back = rollback(models_tree)
    assert (back.previous, back.version) == (NEW, OLD)
    (models_tree / CURRENT_FILE).write_text("../../etc/passwd\n", encoding="utf-8")
    assert current_version(models_tree) is None


def test_a_torn_history_line_is_skipped_and_the_next_one_kept(models_tree: Path) -> None:
    promote(models_tree, OLD)
    with (models_tree / HISTORY_FILE).open("a", encoding="utf-8") as handle:
        handle.write('{"version": "2026')  # a crash in the middle of a write
    assert [e["version"] for e in history(models_tree)] == [OLD]
    promote(models_tree, NEW)
    assert [e["version"] for e in history(models_tree)] == [OLD, NEW]


def _check_chain(models: Path, expected: int) -> None:
    entries = history(models)
    assert len(entries) == expected
    lines = (models / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == expected  # no torn or interleaved line
    for before, after in pairwise(entries):
        assert after["previous"] == before["version"], (before, after)
    assert current_version(models) == entries[-1]["version"]
    leftovers = [p.name for p in models.iterdir() if p.name.startswith(f".{CURRENT_FILE}")]
    assert leftovers == []


def test_concurrent_promoters_in_threads(models_tree: Path) -> None:
    """Each change reads the previous version and writes the pointer and the history under
    one lock: the history is a chain whatever the interleaving."""
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(index: int) -> None:
        try:
            start.wait()
            for step in range(25):
                record_reload(models_tree, (OLD, NEW)[(index + step) % 2], actor=f"t{index}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    _check_chain(models_tree, 100)


def test_concurrent_promoters_in_processes(models_tree: Path, tmp_path: Path) -> None:
    """Two processes change the pointer at once (mostly recording reloads, which skip the
    slow verification, so that their writes overlap; then verified promotions)."""
    go = tmp_path / "go"
    script = (
        "import sys, time; from pathlib import Path\n"
        "from service.promotion import promote, record_reload\n"
        "models, order, go = Path(sys.argv[1]), sys.argv[2].split(','), Path(sys.argv[3])\n"
        "while not go.exists(): time.sleep(0.005)\n"
        "for step in range(40): record_reload(models, order[step % 2], actor='p')\n"
        "for step in range(3): promote(models, order[step % 2], actor='p')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(models_tree), order, str(go)],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
        )
        for order in (f"{OLD},{NEW}", f"{NEW},{OLD}")
    ]
    time.sleep(1.0)  # both have imported the code (if not, they merely overlap less)
    go.touch()
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()
    _check_chain(models_tree, 86)
    assert [e["action"] for e in history(models_tree)].count("promote") == 6


# --- the service following the pointer -------------------------------------------------------


def settings_for(models: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "models_dir": models,
        "access_log": False,
        "switch_interval": None,
        "model_sync_interval": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


async def eventually(check: Callable[[], Any], deadline: float = 20.0) -> bool:
    """Polls `check` (sync or async) until it is true or the (generous) deadline passes."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(0.05)
    return False


def test_holder_follows_the_pointer_and_refuses_a_broken_one(
    models_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper(models_tree)
    copy_version(models_tree / NEW, models_tree, THIRD)  # THIRD is the newest
    promote(models_tree, NEW)
    builds: list[str | None] = []
    original = ModelHolder._build

    def counted(self: ModelHolder, version: str | None) -> Any:
        builds.append(version)
        return original(self, version)

    monkeypatch.setattr(ModelHolder, "_build", counted)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        holder = ModelHolder(settings_for(models_tree), Metrics())
        assert holder.follows_pointer and holder.sync_enabled
        await holder.load_initial()

        def served() -> str | None:
            return holder.current.version if holder.current else None

        seen["initial"] = served()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(holder.sync_forever)
            await anyio.to_thread.run_sync(promote, models_tree, OLD)
            seen["followed"] = await eventually(lambda: served() == OLD)
            # An artifact broken after it was named: tried once, refused, OLD keeps serving.
            (models_tree / CURRENT_FILE).write_text(BROKEN + "\n", encoding="utf-8")
            seen["tried"] = await eventually(lambda: BROKEN in builds)
            await asyncio.sleep(0.5)  # ten polling intervals
            seen["after_broken"] = served()
            seen["broken_builds"] = builds.count(BROKEN)
            await anyio.to_thread.run_sync(promote, models_tree, THIRD)
            seen["recovered"] = await eventually(lambda: served() == THIRD)
            tasks.cancel_scope.cancel()

    asyncio.run(scenario())
    assert seen == {
        "initial": NEW,  # the pointer, not the newest (THIRD)
        "followed": True,
        "tried": True,
        "after_broken": OLD,
        "broken_builds": 1,
        "recovered": True,
    }


def test_explicit_model_ignores_the_pointer(models_tree: Path) -> None:
    promote(models_tree, NEW)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        holder = ModelHolder(settings_for(models_tree, model=OLD), Metrics())
        assert not holder.follows_pointer and not holder.sync_enabled
        await holder.load_initial()
        seen["initial"] = holder.current.version if holder.current else None
        await holder.reload(OLD)
        await holder.reload(None)  # the newest: NEW

    asyncio.run(scenario())
    assert seen["initial"] == OLD
    assert actions(models_tree) == [(NEW, None, "promote")]  # reloads did not touch it


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pilah") as client:
            yield client


def test_service_follows_promotions_and_records_reloads(models_tree: Path, tmp_path: Path) -> None:
    """Two app instances (two workers) on one models folder. The workers' sync file is set
    so that today's app.py starts the polling task (it starts it only then)."""
    settings = settings_for(models_tree, model_sync_file=tmp_path / "workers")
    seen: dict[str, Any] = {}

    async def version_of(client: httpx.AsyncClient) -> str:
        return str((await client.get("/v1/model")).json()["version"])

    async def scenario() -> None:
        async with running(settings) as first, running(settings) as second:
            seen["start"] = (await version_of(first), await version_of(second))
            await anyio.to_thread.run_sync(promote, models_tree, OLD)

            async def both_old() -> bool:
                return (await version_of(first), await version_of(second)) == (OLD, OLD)

            seen["promoted"] = await eventually(both_old)
            response = await first.post("/v1/model/reload", json={"version": NEW})
            seen["reload"] = response.status_code

            async def second_new() -> bool:
                return await version_of(second) == NEW

            seen["reload_followed"] = await eventually(second_new)
            tamper(models_tree)
            (models_tree / CURRENT_FILE).write_text(BROKEN + "\n", encoding="utf-8")
            await asyncio.sleep(0.5)
            seen["after_broken"] = (await version_of(first), await version_of(second))
            await anyio.to_thread.run_sync(promote, models_tree, OLD)
        # A restarted service serves the pointer.
        async with running(settings_for(models_tree)) as third:
            seen["restart"] = await version_of(third)

    asyncio.run(scenario())
    assert seen == {
        "start": (NEW, NEW),
        "promoted": True,
        "reload": 200,
        "reload_followed": True,
        "after_broken": (NEW, NEW),
        "restart": OLD,
    }
    reload_entry = history(models_tree)[1]
    assert (reload_entry["version"], reload_entry["previous"], reload_entry["action"]) == (
        NEW,
        OLD,
        "reload",
    )
    assert reload_entry["actor"] == "api:anonymous"
