"""The comment store on SQLite and PostgreSQL: migrations, idempotent ingest, masking, the
priority queue, label history, statistics, export, and concurrent writers."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.inference import ServingModel
from service.labels import LABELS
from service.model import LoadedModel
from service.store import comments as store
from service.store.db import Database, current_revision, migrate
from service.store.schema import Base

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def model(small_model: LoadedModel) -> ServingModel:
    return ServingModel(small_model)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database)
    yield database
    database.dispose()


def comment(external_id: str, text: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "platform": "instagram",
        "external_id": external_id,
        "account": "pemkotsemarang",
        "post_id": "C9xYz",
        "post_url": "https://www.instagram.com/p/C9xYz/",
        "author": "warga_genuk",
        "posted_at": NOW - timedelta(minutes=5),
        "likes": 0,
        "replies": 0,
        "text": text,
    }
    values.update(fields)
    return values


COMPLAINT = "Min dalane jebros parah neng Genuk, wis 3 sasi ora didandani 😡😡"
URGENT = "Tolong min banjir setinggi dada di Kaligawe, ada lansia blm dievakuasi!!"
QUESTION = "kak syarat daftar PKH apa aja ya? mksh min"
PRAISE = "Mantulll pak wali 👍👍 taman kota skrg bersih bgt"
SPAM = "SL0T G4C0R maxwin 🔥🔥 link di bio bosku"


def test_migrations_match_the_models(database: Database) -> None:
    assert current_revision(database) == "0002"
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    migrate(database)  # a second start-up is a no-op
    assert current_revision(database) == "0002"


def test_ingest_is_idempotent_and_classifies_on_arrival(
    database: Database, model: ServingModel
) -> None:
    batch = [comment("1", COMPLAINT), comment("2", PRAISE), comment("1", COMPLAINT)]
    first = store.ingest(database, model, batch)
    assert [status for status, _ in first.results] == ["new", "new", "duplicate"]
    assert first.results[0][1] == first.results[2][1]
    again = store.ingest(database, model, batch)
    assert [status for status, _ in again.results] == ["duplicate"] * 3
    assert [i for _, i in again.results] == [i for _, i in first.results]
    # The same external id on another platform is another comment.
    other = store.ingest(database, model, [comment("1", QUESTION, platform="facebook")])
    assert other.results[0][0] == "new"
    stored = store.get_comment(database, first.results[0][1])
    assert stored["label"] in LABELS
    assert stored["model_version"] == model.version
    assert set(stored["scores"]) == set(LABELS)
    assert stored["status"] == "new"


def test_text_is_kept_byte_exact(database: Database, model: ServingModel) -> None:
    texts = [
        "Min kok blm cair2 bansos PKH ny?? udh 3 bln 😭😭",
        "ðŸ˜‚ðŸ˜‚ dalane\u200b jebros\r\nmbok di genahi",
        "  spasi di depan & <b>html</b> \"kutip\" 'satu' \\ backslash  ",
        "Ｆｕｌｌｗｉｄｔｈ and 🇮🇩 flag, skin tone 👍🏽, ZWJ 👨‍👩‍👧",
    ]
    outcome = store.ingest(database, model, [comment(str(i), t) for i, t in enumerate(texts)])
    for (_, comment_id), text in zip(outcome.results, texts, strict=True):
        assert store.get_comment(database, comment_id)["text"] == text


def test_identity_numbers_are_never_stored(
    database: Database, database_url: str, model: ServingModel
) -> None:
    nik, phone = "3374012345678901", "0812-3456-7890"
    text = f"Min NIK sy {nik} blm masuk DTKS, hub {phone} 🙏"
    outcome = store.ingest(database, model, [comment("pii", text)])
    stored = store.get_comment(database, outcome.results[0][1])
    assert nik not in stored["text"] and phone not in stored["text"]
    assert stored["text"] == "Min NIK sy **************** blm masuk DTKS, hub ****-****-**** 🙏"
    assert stored["pii_masked"] == ["idnum", "phone"]
    assert "pii" in stored["flags"]  # classified on the original, masked before storing
    store.correct_label(database, stored["id"], "complaint", "admin")
    exported = list(store.corrections(database))
    assert exported and all(nik not in row["text"] for row in exported)
    if database_url.startswith("sqlite"):
        database.dispose()
        raw = b"".join(
            path.read_bytes()
            for path in Path(database_url.removeprefix("sqlite:///")).parent.glob("store.db*")
        )
        assert nik.encode() not in raw and b"3456-7890" not in raw


def test_queue_puts_what_matters_first(database: Database, model: ServingModel) -> None:
    store.ingest(
        database,
        model,
        [
            comment("praise", PRAISE),
            comment("spam", SPAM),
            comment("urgent", URGENT),
            comment("question", QUESTION),
            comment("complaint", COMPLAINT),
        ],
    )
    page = store.queue(database, store.QueueFilter())
    order = [item["external_id"] for item in page.items]
    assert order[0] == "urgent"
    assert order[-1] == "spam"
    assert order.index("complaint") < order.index("praise")
    assert order.index("question") < order.index("praise")
    scores = [item["priority"] for item in page.items]
    assert scores == sorted(scores, reverse=True)
    urgent = page.items[0]
    assert {"label", "urgent"} <= {reason["code"] for reason in urgent["priority_reasons"]}
    assert sum(r["points"] for r in urgent["priority_reasons"]) == urgent["priority"]


def test_engagement_and_waiting_raise_priority(database: Database, model: ServingModel) -> None:
    store.ingest(
        database,
        model,
        [
            comment("quiet", COMPLAINT),
            comment("liked", COMPLAINT + " ", likes=40, replies=6),
            comment("old", COMPLAINT + "  ", posted_at=NOW - timedelta(hours=30)),
        ],
    )
    items = {item["external_id"]: item for item in store.queue(database, store.QueueFilter()).items}
    base = items["quiet"]["priority"]
    assert items["liked"]["priority"] > base
    assert items["old"]["priority"] > base
    assert "engagement" in {r["code"] for r in items["liked"]["priority_reasons"]}
    assert "waiting" in {r["code"] for r in items["old"]["priority_reasons"]}


def test_cursor_pagination_visits_every_comment_once(
    database: Database, model: ServingModel
) -> None:
    texts = [COMPLAINT, URGENT, QUESTION, PRAISE, SPAM]
    batch = [comment(f"c{i}", f"{texts[i % 5]} #{i}", likes=i % 7) for i in range(23)]
    store.ingest(database, model, batch)
    full = store.queue(database, store.QueueFilter(), limit=100).items
    seen: list[int] = []
    cursor = None
    while True:
        page = store.queue(database, store.QueueFilter(), limit=5, cursor=cursor)
        seen += [item["id"] for item in page.items]
        # New comments arriving while paging make the pages neither skip nor repeat one.
        store.ingest(database, model, [comment(f"late{len(seen)}", URGENT + f" {len(seen)}")])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    first_ids = [item["id"] for item in full]
    assert [i for i in seen if i in first_ids] == first_ids
    with pytest.raises(store.InvalidQuery):
        store.queue(database, store.QueueFilter(), cursor="not-a-cursor")


def test_queue_filters(database: Database, model: ServingModel) -> None:
    store.ingest(
        database,
        model,
        [
            comment("a", "bansos PKH blm cair min, kapan?", account="pemkot", platform="x"),
            comment("b", PRAISE, account="dinkes", posted_at=NOW - timedelta(days=3)),
            comment("c", "jalan berlubang di Genuk bahaya", account="pemkot"),
        ],
    )

    def ids(**kwargs: Any) -> set[str]:
        page = store.queue(database, store.QueueFilter(**kwargs))
        return {item["external_id"] for item in page.items}

    assert ids(platforms=("x",)) == {"a"}
    assert ids(accounts=("dinkes",)) == {"b"}
    assert ids(topics=("bansos",)) == {"a"}
    assert ids(topics=("jalan",)) == {"c"}
    assert ids(since=NOW - timedelta(days=1)) == {"a", "c"}
    assert ids(until=NOW - timedelta(days=1)) == {"b"}
    assert ids(search="GENUK") == {"c"}
    assert ids(search="100%_") == set()
    assert ids(allowed_accounts=frozenset({"pemkot"})) == {"a", "c"}
    label_b = store.get_comment(database, 2)["label"]
    assert "b" in ids(labels=(label_b,))
    store.update_comment(database, 1, "admin", status="answered")
    assert ids() == {"b", "c"}
    assert ids(statuses=("answered",)) == {"a"}
    unsure = ids(needs_review=True, statuses=())
    sure = ids(needs_review=False, statuses=())
    assert unsure | sure == {"a", "b", "c"} and not unsure & sure


def test_label_corrections_are_append_only_and_idempotent(
    database: Database, model: ServingModel
) -> None:
    outcome = store.ingest(database, model, [comment("q", QUESTION)])
    comment_id = outcome.results[0][1]
    predicted = store.get_comment(database, comment_id)["predicted_label"]
    first = store.correct_label(database, comment_id, "aspiration", "sari", "key-1")
    replay = store.correct_label(database, comment_id, "aspiration", "sari", "key-1")
    assert not first.replayed and replay.replayed and replay.event_id == first.event_id
    with pytest.raises(store.Conflict):
        store.correct_label(database, comment_id, "praise", "sari", "key-1")
    # Another admin may use the same key string: keys are per actor.
    store.correct_label(database, comment_id, "question", "budi", "key-1")
    stored = store.get_comment(database, comment_id)
    assert stored["label"] == stored["human_label"] == "question"
    assert stored["predicted_label"] == predicted
    labels = [event for event in stored["history"] if event["type"] == "label"]
    assert [(e["actor"], e["label"]) for e in labels] == [
        ("sari", "aspiration"),
        ("budi", "question"),
    ]
    assert labels[0]["previous_label"] == predicted
    assert labels[1]["previous_label"] == "aspiration"
    assert all(e["model_version"] == model.version for e in labels)
    with pytest.raises(store.NotFound):
        store.correct_label(database, 999_999, "question", "sari")
    with pytest.raises(store.InvalidQuery):
        store.correct_label(database, comment_id, "spam", "sari")
    with pytest.raises(store.NotFound):  # other accounts' comments are invisible
        store.correct_label(database, comment_id, "question", "x", allowed=frozenset({"dinkes"}))


def test_export_is_in_the_dataset_format(database: Database, model: ServingModel) -> None:
    outcome = store.ingest(
        database, model, [comment("a", QUESTION), comment("b", COMPLAINT), comment("c", PRAISE)]
    )
    ids = [i for _, i in outcome.results]
    store.correct_label(database, ids[0], "aspiration", "sari")
    store.correct_label(database, ids[0], "question", "sari")
    store.correct_label(database, ids[1], "complaint", "budi")
    buffer = io.StringIO(newline="")
    assert store.write_corrections_csv(store.corrections(database), buffer) == 2
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    assert [(r["text"], r["label"], r["lapor_type"]) for r in rows] == [
        (QUESTION, "question", "permintaan informasi"),
        (COMPLAINT, "complaint", "pengaduan"),
    ]
    assert list(rows[0])[:3] == ["text", "label", "topic"]
    later = NOW + timedelta(days=1)
    assert list(store.corrections(database, since=later)) == []


def test_review_lists_the_least_certain_first(database: Database, model: ServingModel) -> None:
    texts = [COMPLAINT, URGENT, QUESTION, PRAISE, SPAM, "oke", "min", "😂", "info dong"]
    store.ingest(database, model, [comment(f"r{i}", t) for i, t in enumerate(texts)])
    page = store.review(database, store.QueueFilter(statuses=()), limit=4)
    margins = [item["margin"] for item in page.items]
    assert margins == sorted(margins)
    rest = store.review(database, store.QueueFilter(statuses=()), limit=50, cursor=page.next_cursor)
    assert len(page.items) + len(rest.items) == len(texts)
    assert min(item["margin"] for item in rest.items) >= margins[-1]
    store.correct_label(database, page.items[0]["id"], "other", "sari")
    again = store.review(database, store.QueueFilter(statuses=()), limit=50)
    assert page.items[0]["id"] not in {item["id"] for item in again.items}


def test_stats_show_label_shares_and_answer_times(database: Database, model: ServingModel) -> None:
    yesterday = NOW - timedelta(days=1)
    outcome = store.ingest(
        database,
        model,
        [
            comment("1", COMPLAINT, posted_at=yesterday, account="pemkot"),
            comment("2", COMPLAINT + "!", posted_at=yesterday, account="dinkes"),
            comment("3", PRAISE, account="pemkot"),
        ],
    )
    for _, comment_id in outcome.results:
        store.correct_label(
            database,
            comment_id,
            "praise" if comment_id == outcome.results[2][1] else "complaint",
            "a",
        )
    store.update_comment(database, outcome.results[0][1], "sari", status="answered")
    figures = store.stats(database)
    days = {day["day"]: day for day in figures["days"]}
    assert days[yesterday.date().isoformat()]["counts"]["complaint"] == 2
    assert days[NOW.date().isoformat()]["shares"]["praise"] == 1.0
    by_account = {(d["day"], d["account"]): d for d in figures["days_by_account"]}
    assert by_account[(yesterday.date().isoformat(), "dinkes")]["total"] == 1
    complaints = figures["answers_by_label"]["complaint"]
    assert complaints["total"] == 2 and complaints["answered"] == 1
    assert complaints["answered_share"] == 0.5
    assert 23 <= complaints["median_hours_to_answer"] <= 25
    scoped = store.stats(database, allowed=frozenset({"dinkes"}))
    assert sum(day["total"] for day in scoped["days"]) == 1
    recent = store.label_counts_recent(database)
    assert recent[("pemkot", "praise")] == (1, 0.5)


def test_concurrent_writers_never_fail(database: Database, model: ServingModel) -> None:
    """16 threads ingesting, labelling and updating at once: no 'database is locked'."""
    seeded = store.ingest(
        database, model, [comment(f"s{i}", f"{COMPLAINT} {i}") for i in range(16)]
    )
    ids = [i for _, i in seeded.results]
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for round_ in range(6):
                store.ingest(
                    database, model, [comment(f"t{n}-{round_}", f"{QUESTION} {n} {round_}")]
                )
                store.correct_label(database, ids[(n + round_) % 16], LABELS[round_ % 5], f"w{n}")
                store.update_comment(database, ids[n], f"w{n}", note=f"catatan {round_}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    total = store.queue(database, store.QueueFilter(statuses=()), limit=200).items
    assert len(total) == 16 + 16 * 6
    assert database.integrity_ok()
