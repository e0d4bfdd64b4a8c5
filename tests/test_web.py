"""The admin page (`service.web`) through TestClient: login and sessions, CSRF, the queue's
actions on the store, filters, the review tab, analytics CSV, the monthly report, escaping,
per-account scoping, and no 500 on junk input. The browser tests are in tests/e2e/."""

from __future__ import annotations

import csv
import io
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from api_helpers import API_KEYS
from fastapi.testclient import TestClient

from service.app import create_app
from service.inference import ServingModel
from service.labels import LABELS
from service.model import LoadedModel
from service.settings import Settings
from service.store import comments as store
from service.store.db import Database
from service.web import auth, install_web, users
from service.web.analytics import month_period
from service.web.texts import LABEL_COLOURS

pytest_plugins = ["conftest_api"]

PASSWORD = "kata-sandi-yang-panjang-1"
SECRET = "test-session-secret-0123456789abcdefghijklmnopqrstuvwxyz"
NOW = datetime.now(UTC)


def comment(
    key: str,
    text: str,
    age: timedelta,
    account: str = "pemkotsemarang",
    platform: str = "instagram",
    **fields: Any,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "platform": platform,
        "external_id": f"web-{key}",
        "account": account,
        "post_id": "DB7xK2aS9Qm",
        "post_url": "https://www.instagram.com/p/DB7xK2aS9Qm/",
        "author": f"warga_{key}",
        "posted_at": NOW - age,
        "likes": 0,
        "replies": 0,
        "text": text,
    }
    values.update(fields)
    return values


# Written for these tests: slang, Javanese, emoji, an emergency, bansos, gambling spam.
# Ages stay away from the queue's waiting thresholds (1 h, 6 h, 24 h, 48 h).
SEED: dict[str, dict[str, Any]] = {
    "banjir": comment(
        "banjir",
        "Tolong min!! banjir udah sepinggang di Perum Genuk Indah, ada lansia blm dievakuasi, "
        "air terus naik 😭😭",
        timedelta(minutes=20),
        likes=35,
        replies=6,
    ),
    "pkh": comment(
        "pkh",
        "min mau tanya, bansos PKH tahap 4 kapan cair ya? kok di cek bansos blm muncul nama "
        "ibu saya",
        timedelta(hours=3),
        account="dinsos.smg",
        platform="facebook",
        post_url="https://www.facebook.com/dinsos.smg/posts/pfbid02xYz",
    ),
    "dalan": comment(
        "dalan",
        "dalan neng Jl. Wolter Monginsidi bolong gedhe, wingi bengi ana sing tiba montore. "
        "Ndang didandani to pak 😡",
        timedelta(hours=8),
        likes=12,
    ),
    "slot": comment(
        "slot",
        "S1TUS G4C0R hari ini pasti WD 💰💰 cek bio bosku, dijamin maxwin",
        timedelta(hours=2),
    ),
    "taman": comment(
        "taman",
        "Mantul pak wali, taman Tabanas sekarang bersih & terang, anak2 seneng main sore2 👍👍",
        timedelta(hours=30),
    ),
    "usul": comment(
        "usul",
        "Usul min, alangkah baiknya di Simpang Lima ditambah tempat sampah pilah organik dan "
        "anorganik biar warga terbiasa",
        timedelta(days=3),
    ),
    "ktp": comment(
        "ktp",
        "Kak, kalau KTP hilang ngurus di kecamatan atau harus ke dukcapil? syaratnya apa aja ya",
        timedelta(hours=12),
        platform="x",
        post_url="https://x.com/pemkotsemarang/status/1862000000000000000",
    ),
    "sampah": comment(
        "sampah",
        "udh seminggu sampah ga diangkut di RT 05 Tlogosari, bau bgt min, lalernya kemana2 🤮",
        timedelta(days=5),
    ),
    "mention": comment(
        "mention", "@rina_ay @dimas.pr wkwkwk ini kan deket rumahmu", timedelta(hours=4)
    ),
    "bpnt": comment(
        "bpnt",
        "bantuan BPNT sy blm cair2 udh 3 bulan padahal terdaftar, NIK 3374056708910002 tolong "
        "dicek min",
        timedelta(days=9),
        account="dinsos.smg",
        platform="facebook",
    ),
    "puskesmas": comment(
        "puskesmas",
        "Matur nuwun pak, pelayanan puskesmas Bandarharjo saiki cepet, ra antri suwe 🙏",
        timedelta(days=20),
        account="dinkes.smg",
        platform="tiktok",
        post_url="https://www.tiktok.com/@dinkes.smg/video/7430000000000000000",
    ),
    "brt": comment(
        "brt",
        "Min BRT koridor 2 jam operasional sampai jam berapa ya? mau pulang kerja malem",
        timedelta(minutes=90),
        platform="youtube",
        post_url="https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    ),
}


def seed(database: Database, model: ServingModel) -> dict[str, int]:
    """Store SEED; key -> comment id."""
    outcome = store.ingest(database, model, list(SEED.values()))
    return {key: comment_id for key, (_, comment_id) in zip(SEED, outcome.results, strict=True)}


@pytest.fixture(scope="module")
def serving(small_model: LoadedModel) -> ServingModel:
    return ServingModel(small_model)


WebFactory = Callable[..., TestClient]


@pytest.fixture
def make_web(models_tree: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebFactory]:
    """`make_web(auth=False, **settings)`: a started app with the admin page installed."""
    monkeypatch.setenv("PILAH_SESSION_SECRET", SECRET)
    monkeypatch.delenv("PILAH_SECURE_COOKIES", raising=False)
    monkeypatch.delenv("PILAH_TIMEZONE", raising=False)
    monkeypatch.setattr(auth, "FAILED_LOGIN_DELAY", 0.0)
    with ExitStack() as stack:

        def make(auth_on: bool = False, **overrides: Any) -> TestClient:
            values: dict[str, Any] = {
                "models_dir": models_tree,
                "switch_interval": None,
                "access_log": False,
                "auth_enabled": auth_on,
                "api_keys": API_KEYS if auth_on else [],
                "rate_limit": None,
            }
            values.update(overrides)
            settings = Settings(**values)
            app = create_app(settings)
            install_web(app, settings)
            client = TestClient(app, follow_redirects=False)
            return stack.enter_context(client)

        yield make


def database_of(client: TestClient) -> Database:
    database = client.app.state.runtime.database  # type: ignore[attr-defined]
    assert database is not None
    return database


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD, next_: str = "") -> Any:
    page = client.get("/admin/login")
    assert page.status_code == 200
    form = {"username": username, "password": password, "csrf_token": csrf_of(page.text)}
    if next_:
        form["next"] = next_
    return client.post("/admin/login", data=form)


def card_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'<article id="c-([0-9]+)"', html)]


@pytest.fixture
def open_web(make_web: WebFactory, serving: ServingModel) -> tuple[TestClient, dict[str, int]]:
    """Auth off (pages open, actor "admin"), SEED stored."""
    client = make_web()
    return client, seed(database_of(client), serving)


@pytest.fixture
def auth_web(make_web: WebFactory, serving: ServingModel) -> tuple[TestClient, dict[str, int]]:
    """Auth on, user "sari" (every account), SEED stored, not logged in."""
    client = make_web(auth_on=True)
    database = database_of(client)
    users.create_user(database, "sari", PASSWORD)
    return client, seed(database, serving)


PAGES = [
    "/admin/",
    "/admin/review",
    "/admin/analytics",
    "/admin/analytics.csv",
    "/admin/report",
    "/admin/report?month=2026-11",
    "/admin/comments/1",
]


# --- login and sessions -------------------------------------------------------------------


def test_every_page_needs_login_when_auth_is_on(
    auth_web: tuple[TestClient, dict[str, int]],
) -> None:
    client, ids = auth_web
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next="), path
    for action, data in (("status", {"status": "answered"}), ("label", {"label": "other"})):
        response = client.post(f"/admin/comments/{ids['pkh']}/{action}", data=data)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login")
    htmx = client.post(
        f"/admin/comments/{ids['pkh']}/status",
        data={"status": "answered"},
        headers={"HX-Request": "true"},
    )
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/admin/login")
    assert client.get("/admin/login").status_code == 200
    assert client.get("/admin/static/app.css").status_code == 200
    assert client.get("/admin/static/vendor/htmx.min.js").status_code == 200
    # Nothing changed, and the API keeps its own authentication.
    assert store.get_comment(database_of(client), ids["pkh"])["status"] == "new"
    assert client.get("/v1/queue").status_code == 401


def test_login_logout_and_session_cookie(auth_web: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = auth_web
    response = login(client, "sari", next_="/admin/analytics?days=7")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/analytics?days=7"
    cookie = response.headers["set-cookie"]
    assert "pilah_admin=" in cookie and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and "path=/admin" in cookie.lower()
    assert "secure" not in cookie.lower()
    queue = client.get("/admin/")
    assert queue.status_code == 200 and "sari" in queue.text
    # An open redirect is refused.
    for target in ("https://evil.example/", "//evil.example/x", "/admin/\\evil", "/v1/queue"):
        client.cookies.clear()
        assert login(client, "sari", next_=target).headers["location"] == "/admin/"
    # Logout needs the CSRF token, then clears the session.
    page = client.get("/admin/")
    assert client.post("/admin/logout").status_code == 403
    out = client.post("/admin/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/admin/login"
    assert client.get("/admin/").status_code == 303


def test_wrong_password_is_generic_and_throttled(
    auth_web: tuple[TestClient, dict[str, int]],
) -> None:
    client, _ = auth_web
    wrong = login(client, "sari", "salah-sandi-sekali")
    unknown = login(client, "tidakada", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    message = "Nama pengguna atau kata sandi salah."
    assert message in wrong.text and message in unknown.text
    assert "set-cookie" not in wrong.headers or "uid" not in wrong.headers["set-cookie"]
    assert client.get("/admin/").status_code == 303
    for _ in range(4):
        login(client, "sari", "salah-sandi-lagi")
    blocked = login(client, "sari", PASSWORD)  # right password, but too many failures
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    assert client.get("/admin/").status_code == 303


def test_sessions_end_when_the_password_changes_or_the_user_is_disabled(
    auth_web: tuple[TestClient, dict[str, int]],
) -> None:
    client, _ = auth_web
    database = database_of(client)
    login(client, "sari")
    assert client.get("/admin/").status_code == 200
    users.set_password(database, "sari", "sandi-baru-yang-panjang")
    assert client.get("/admin/").status_code == 303
    assert login(client, "sari").status_code == 401
    assert login(client, "sari", "sandi-baru-yang-panjang").status_code == 303
    assert client.get("/admin/").status_code == 200
    users.set_disabled(database, "sari")
    assert client.get("/admin/").status_code == 303
    assert login(client, "sari", "sandi-baru-yang-panjang").status_code == 401


def test_a_forged_session_cookie_is_ignored(auth_web: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = auth_web
    client.cookies.set("pilah_admin", "eyJ1aWQiOiAxfQ==.forged.signature", path="/admin")
    assert client.get("/admin/").status_code == 303


def test_users_module(make_web: WebFactory) -> None:
    database = database_of(make_web())
    created = users.create_user(database, "budi.s", PASSWORD, accounts="dinsos.smg, dinkes.smg")
    assert created.accounts == frozenset({"dinsos.smg", "dinkes.smg"}) and created.role == "admin"
    assert "argon2" in _password_hash(database, "budi.s")
    with pytest.raises(users.UserError):
        users.create_user(database, "budi.s", PASSWORD)
    for name, password in (
        ("budi s", PASSWORD),
        ("", PASSWORD),
        ("ok", "pendek"),
        ("x" * 65, PASSWORD),
    ):
        with pytest.raises(users.UserError):
            users.create_user(database, name, password)
    with pytest.raises(users.UserError):
        users.create_user(database, "tamu", PASSWORD, role="superuser")
    assert users.authenticate(database, "budi.s", PASSWORD) == created
    assert users.authenticate(database, "budi.s", PASSWORD + "x") is None
    assert users.authenticate(database, "BUDI.S", PASSWORD) is None
    assert users.authenticate(database, "nobody", PASSWORD) is None
    assert users.authenticate(database, "budi s'; --", PASSWORD) is None
    with pytest.raises(users.UserError):
        users.set_password(database, "nobody", PASSWORD)
    assert users.set_accounts(database, "budi.s", None).accounts is None
    assert [u.username for u in users.list_users(database)] == ["budi.s"]


def _password_hash(database: Database, username: str) -> str:
    from sqlalchemy import select

    from service.store.schema import AdminUser

    with database.reading() as session:
        row = session.scalars(select(AdminUser).where(AdminUser.username == username)).one()
        return row.password_hash


def test_session_secret_is_made_once_and_private(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db' / 'pilah.db'}")
    first = auth.web_config(settings)
    key = tmp_path / "db" / "session.key"
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert auth.web_config(settings).session_secret == first.session_secret
    assert len(first.session_secret) >= 32
    assert not first.secure_cookies and str(first.timezone) == "Asia/Jakarta"
    chosen = auth.web_config(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'other.db'}",
            session_secret=SECRET,
            secure_cookies=True,
            timezone="Asia/Makassar",
        )
    )
    assert chosen.session_secret == SECRET and chosen.secure_cookies
    assert str(chosen.timezone) == "Asia/Makassar"
    assert not (tmp_path / "session.key").exists()
    for bad in ({"session_secret": "short"}, {"timezone": "Mars/Olympus"}):
        with pytest.raises(auth.WebConfigError):
            auth.web_config(Settings(database_url=settings.database_url, **bad))


def test_secure_cookies_setting(make_web: WebFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILAH_SECURE_COOKIES", "1")
    client = make_web(auth_on=True)
    users.create_user(database_of(client), "sari", PASSWORD)
    page = client.get("/admin/login")
    assert "secure" in page.headers["set-cookie"].lower()


# --- CSRF ---------------------------------------------------------------------------------


def test_posts_without_a_valid_csrf_token_are_refused(
    open_web: tuple[TestClient, dict[str, int]],
) -> None:
    client, ids = open_web
    target = f"/admin/comments/{ids['pkh']}"
    page = client.get("/admin/")
    token = csrf_of(page.text)
    wrong_last = "B" if token.endswith("A") else "A"  # a random token ends in "A" 1 time in 64
    for data, headers in (
        ({"status": "answered"}, {}),
        ({"status": "answered", "csrf_token": "x" * 43}, {}),
        ({"status": "answered"}, {"X-CSRF-Token": token[:-1] + wrong_last}),
    ):
        response = client.post(f"{target}/status", data=data, headers=headers)
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert client.post(f"{target}/label", data={"label": "other"}).status_code == 403
    assert client.post(f"{target}/note", data={"note": "x"}).status_code == 403
    other = TestClient(client.app, follow_redirects=False)  # another browser, another session
    with other:
        assert (
            other.post(
                f"{target}/status", data={"status": "answered", "csrf_token": token}
            ).status_code
            == 403
        )
    assert store.get_comment(database_of(client), ids["pkh"])["history"] == []
    # The header htmx sends is accepted as well as the form field.
    ok = client.post(
        f"{target}/status",
        data={"status": "answered"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert ok.status_code == 200


def test_login_form_needs_csrf(auth_web: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = auth_web
    response = client.post("/admin/login", data={"username": "sari", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/admin/").status_code == 303


# --- the queue and its actions ------------------------------------------------------------


def test_queue_is_in_the_store_priority_order(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = open_web
    page = client.get("/admin/")
    assert page.status_code == 200
    expected = [c["id"] for c in store.queue(database_of(client), store.QueueFilter()).items]
    assert card_ids(page.text) == expected
    assert expected[0] == ids["banjir"] and expected[-1] == ids["slot"]
    html = page.text
    for name in (
        "Keluhan",
        "Pertanyaan",
        "Aspirasi",
        "Pujian",
        "Lainnya",
        "Darurat",
        "Spam/promosi",
    ):
        assert name in html
    assert 'class="chip bansos"' in html and "Bansos &amp; kemiskinan" in html
    assert "disamarkan: NIK/KK" in html and "3374056708910002" not in html
    assert 'href="https://www.instagram.com/p/DB7xK2aS9Qm/"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "Pintasan:" in html and "<kbd>j</kbd>" in html
    assert re.search(r"menunggu \d+ (jam|hari)", html)
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    css = client.get("/admin/static/app.css").text
    assert all(colour in css for colour in LABEL_COLOURS.values())


def test_actions_change_the_store_with_the_username_as_actor(
    auth_web: tuple[TestClient, dict[str, int]],
) -> None:
    client, ids = auth_web
    login(client, "sari")
    token = csrf_of(client.get("/admin/").text)
    database = database_of(client)
    target = f"/admin/comments/{ids['dalan']}"
    # htmx: the re-rendered card comes back, with a message for the toast.
    response = client.post(
        f"{target}/label",
        data={"label": "complaint", "csrf_token": token, "next": "/admin/?label=complaint"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<article id="c-{ids["dalan"]}"')
    assert "Label diubah: Keluhan" in response.headers["HX-Trigger"]
    assert 'value="/admin/?label=complaint"' in response.text
    response = client.post(
        f"{target}/label",
        data={"label": "question", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert 'aria-pressed="true">Pertanyaan' in response.text
    # Without JavaScript: a redirect back to the page the form came from.
    response = client.post(
        f"{target}/status",
        data={"status": "answered", "csrf_token": token, "next": "/admin/?q=dalan"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/?q=dalan#c-{ids['dalan']}"
    response = client.post(
        f"{target}/note", data={"note": "Sudah diteruskan ke DPU, tiket #4471", "csrf_token": token}
    )
    assert response.headers["location"] == f"/admin/#c-{ids['dalan']}"
    stored = store.get_comment(database, ids["dalan"])
    assert stored["label"] == stored["human_label"] == "question"
    assert stored["status"] == "answered" and stored["answered_at"] is not None
    history = stored["history"]
    assert [e["label"] for e in history if e["type"] == "label"] == ["complaint", "question"]
    assert {e["actor"] for e in history} == {"sari"}
    assert history[-1]["note"] == "Sudah diteruskan ke DPU, tiket #4471"
    # Answered comments leave the open queue; the detail page shows the history.
    assert ids["dalan"] not in card_ids(client.get("/admin/").text)
    assert ids["dalan"] in card_ids(client.get("/admin/?status=answered").text)
    detail = client.get(f"/admin/comments/{ids['dalan']}")
    assert detail.status_code == 200 and "tiket #4471" in detail.text and "sari" in detail.text
    # Escalate, dismiss and reopen.
    for status in ("escalated", "dismissed", "new"):
        client.post(f"{target}/status", data={"status": status, "csrf_token": token})
        assert store.get_comment(database, ids["dalan"])["status"] == status


def test_auth_off_actor_is_admin(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = open_web
    token = csrf_of(client.get("/admin/").text)
    client.post(
        f"/admin/comments/{ids['ktp']}/label", data={"label": "question", "csrf_token": token}
    )
    history = store.get_comment(database_of(client), ids["ktp"])["history"]
    assert [e["actor"] for e in history] == ["admin"]
    assert client.get("/admin/login").headers["location"] == "/admin/"


def test_filters_and_search(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = open_web
    database = database_of(client)

    def shown(query: str) -> set[int]:
        response = client.get(f"/admin/?{query}")
        assert response.status_code == 200, query
        return set(card_ids(response.text))

    def stored(**filters: Any) -> set[int]:
        return {c["id"] for c in store.queue(database, store.QueueFilter(**filters)).items}

    assert shown("q=GEDHE") == {ids["dalan"]}
    assert shown("q=bansos") == {ids["pkh"]}
    assert shown("platform=facebook") == {ids["pkh"], ids["bpnt"]}
    assert shown("account=dinkes.smg") == {ids["puskesmas"]}
    assert shown("topic=bansos") == {ids["pkh"], ids["bpnt"]}
    assert shown("flag=spam") == {ids["slot"]}
    assert shown("flag=urgent") == {ids["banjir"]}
    assert shown("label=question") == stored(labels=("question",))
    assert shown("review=1") == stored(needs_review=True)
    assert shown("q=%25") == set() and shown("q=_ay") == {ids["mention"]}
    since = (NOW - timedelta(days=4)).astimezone(ZoneInfo("Asia/Jakarta")).date().isoformat()
    assert ids["usul"] in shown(f"since={since}") and ids["sampah"] not in shown(f"since={since}")
    token = csrf_of(client.get("/admin/").text)
    client.post(
        f"/admin/comments/{ids['taman']}/status", data={"status": "answered", "csrf_token": token}
    )
    assert shown("status=answered") == {ids["taman"]}
    assert shown("status=all") == set(ids.values())
    assert ids["taman"] not in shown("")
    # The filter form keeps what was chosen.
    page = client.get("/admin/?label=complaint&q=min").text
    assert '<option value="complaint" selected>' in page and 'value="min"' in page


def test_paging(
    open_web: tuple[TestClient, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.web import routes

    monkeypatch.setattr(routes, "PAGE_SIZE", 5)
    client, _ = open_web
    seen: list[int] = []
    url = "/admin/?status=all"
    while True:
        page = client.get(url)
        seen += card_ids(page.text)
        found = re.search(r'<a href="([^"]+)" class="button">Halaman berikutnya', page.text)
        if not found:
            break
        url = found.group(1).replace("&amp;", "&")
    everything = store.queue(database_of(client), store.QueueFilter(statuses=()), limit=200).items
    assert seen == [c["id"] for c in everything]


def test_review_tab_is_least_sure_first(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = open_web
    database = database_of(client)
    page = client.get("/admin/review")
    assert page.status_code == 200 and "Tinjau" in page.text
    flagged = len(store.queue(database, store.QueueFilter(needs_review=True)).items)
    assert f">{len(SEED)} komentar belum dikoreksi, {flagged} di antaranya" in page.text
    expected = store.review(database, store.QueueFilter()).items
    assert card_ids(page.text) == [c["id"] for c in expected]
    margins = [c["margin"] for c in expected]
    assert margins == sorted(margins)
    assert "selisih dua label teratas" in page.text
    # A corrected comment leaves the review list.
    first = expected[0]["id"]
    token = csrf_of(page.text)
    client.post(f"/admin/comments/{first}/label", data={"label": "other", "csrf_token": token})
    assert first not in card_ids(client.get("/admin/review").text)
    assert set(card_ids(client.get("/admin/review?platform=facebook").text)) <= {
        ids["pkh"],
        ids["bpnt"],
    }


def test_comment_text_is_escaped(
    open_web: tuple[TestClient, dict[str, int]], serving: ServingModel
) -> None:
    client, _ = open_web
    nasty = comment(
        "xss",
        "<script>alert('xss')</script> jalan rusak <b>parah</b> \" onmouseover=alert(1) x=\"",
        timedelta(minutes=30),
        author="<img src=x onerror=alert(2)>",
        account="<i>akun</i>",
        post_url='https://example.org/"><script>alert(3)</script>',
    )
    new_id = store.ingest(database_of(client), serving, [nasty]).results[0][1]
    for path in (
        "/admin/",
        "/admin/review?status=all",
        f"/admin/comments/{new_id}",
        "/admin/analytics",
    ):
        html = client.get(path).text
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html and "<i>akun</i>" not in html, path
    html = client.get(f"/admin/comments/{new_id}").text
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "&#34; onmouseover=alert(1) x=&#34;" in html
    # A link that is not http(s) is not shown at all.
    store_id = store.ingest(
        database_of(client),
        serving,
        [comment("js", "halo min", timedelta(minutes=5), post_url="https://ok.example/a b")],
    ).results[0][1]
    assert "ok.example/a b" not in client.get(f"/admin/comments/{store_id}").text


# --- per-account scoping and roles --------------------------------------------------------


def test_a_user_with_accounts_sees_and_acts_on_those_only(
    auth_web: tuple[TestClient, dict[str, int]],
) -> None:
    client, ids = auth_web
    database = database_of(client)
    users.create_user(database, "dinsos", PASSWORD, accounts=["dinsos.smg"])
    login(client, "dinsos")
    page = client.get("/admin/?status=all")
    assert set(card_ids(page.text)) == {ids["pkh"], ids["bpnt"]}
    assert "pemkotsemarang" not in page.text  # not even in the account filter
    assert set(card_ids(client.get("/admin/review").text)) <= {ids["pkh"], ids["bpnt"]}
    assert set(card_ids(client.get("/admin/?account=pemkotsemarang").text)) == set()
    assert client.get(f"/admin/comments/{ids['banjir']}").status_code == 404
    token = csrf_of(page.text)
    refused = client.post(
        f"/admin/comments/{ids['banjir']}/status", data={"status": "dismissed", "csrf_token": token}
    )
    assert refused.status_code == 404
    assert store.get_comment(database, ids["banjir"])["status"] == "new"
    allowed = client.post(
        f"/admin/comments/{ids['pkh']}/status", data={"status": "answered", "csrf_token": token}
    )
    assert allowed.status_code == 303
    rows = list(csv.DictReader(io.StringIO(client.get("/admin/analytics.csv").text)))
    comments = next(r for r in rows if r["bagian"] == "ringkasan" and r["ukuran"] == "comments")
    assert comments["nilai"] == "2"
    assert {r["akun"] for r in rows if r["bagian"] == "jawaban_per_akun"} == {"dinsos.smg"}
    report = client.get("/admin/report")
    assert report.status_code == 200 and "pemkotsemarang" not in report.text


def test_a_viewer_reads_but_cannot_act(auth_web: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = auth_web
    users.create_user(database_of(client), "kadis", PASSWORD, role="viewer")
    login(client, "kadis")
    page = client.get("/admin/")
    assert page.status_code == 200 and "(lihat saja)" in page.text
    assert '/label"' not in page.text and "Pintasan:" not in page.text
    token = csrf_of(page.text)
    response = client.post(
        f"/admin/comments/{ids['pkh']}/label", data={"label": "other", "csrf_token": token}
    )
    assert response.status_code == 403
    assert client.get("/admin/analytics").status_code == 200


# --- analytics, CSV and the report --------------------------------------------------------


def test_analytics_page_and_csv(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = open_web
    database = database_of(client)
    token = csrf_of(client.get("/admin/").text)
    for key in ("pkh", "ktp", "taman"):
        client.post(
            f"/admin/comments/{ids[key]}/status", data={"status": "answered", "csrf_token": token}
        )
    page = client.get("/admin/analytics")
    assert page.status_code == 200
    for canvas in (
        "chart-daily",
        "chart-drift",
        "chart-answered",
        "chart-time",
        "chart-accounts",
        "chart-topics",
    ):
        assert f'id="{canvas}"' in page.text
    assert 'id="chart-data"' in page.text and "chart.umd.min.js" in page.text
    assert 'id="bansos"' in page.text and "Bansos &amp; kemiskinan" in page.text
    assert re.search(r'id="kpi-comments">12<', page.text)

    response = client.get("/admin/analytics.csv?days=30")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="pilah-analitik-30.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["bagian", "tanggal", "akun", "label", "topik", "ukuran", "nilai"]

    def value(section: str, measure: str, **match: str) -> str:
        found = [
            r
            for r in rows
            if r["bagian"] == section
            and r["ukuran"] == measure
            and all(r[k] == v for k, v in match.items())
        ]
        assert len(found) == 1, (section, measure, match)
        return found[0]["nilai"]

    assert value("ringkasan", "comments") == "12"
    assert value("ringkasan", "spam") == "1"
    assert value("ringkasan", "urgent") == "1"
    daily = [r for r in rows if r["bagian"] == "harian"]
    assert sum(int(r["nilai"]) for r in daily) == 12
    assert len({r["tanggal"] for r in daily}) == 30
    # The same answer figures as the API's /v1/stats for the same period.
    figures = store.stats(database, NOW - timedelta(days=25), NOW + timedelta(minutes=1))
    for label in LABELS:
        expected = figures["answers_by_label"][label]
        name = {
            "complaint": "Keluhan",
            "question": "Pertanyaan",
            "aspiration": "Aspirasi",
            "praise": "Pujian",
            "other": "Lainnya",
        }[label]
        assert value("jawaban_per_label", "answered", label=name) == str(expected["answered"])
        assert value("jawaban_per_label", "total", label=name) == str(expected["total"])
    assert value("topik", "count", topik="Bansos & kemiskinan") == "2"
    # Per account and a shorter period.
    dinsos = list(
        csv.DictReader(
            io.StringIO(client.get("/admin/analytics.csv?days=7&account=dinsos.smg").text)
        )
    )
    assert (
        next(r for r in dinsos if r["ukuran"] == "comments")["nilai"] == "1"
    )  # bpnt is 9 days old


def test_csv_cells_cannot_become_formulas(
    open_web: tuple[TestClient, dict[str, int]], serving: ServingModel
) -> None:
    client, _ = open_web
    store.ingest(
        database_of(client),
        serving,
        [comment("f", "halo min", timedelta(minutes=5), account='=HYPERLINK("http://x")')],
    )
    text = client.get("/admin/analytics.csv").text
    assert "'=HYPERLINK" in text
    assert ",=HYPERLINK" not in text and ',"=HYPERLINK' not in text


def test_monthly_report(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = open_web
    zone = ZoneInfo("Asia/Jakarta")
    month = NOW.astimezone(zone).strftime("%Y-%m")
    report = client.get(f"/admin/report?month={month}")
    assert report.status_code == 200
    html = report.text
    period = month_period(month, zone)
    in_month = sum(1 for c in SEED.values() if period.since <= c["posted_at"] < period.until)
    assert re.search(rf'id="kpi-comments">{in_month}<', html)
    assert "<svg" in html and "Komentar per hari menurut label" in html
    assert "Bansos &amp; kemiskinan" in html and "data-print" in html
    assert "@media print" in client.get("/admin/static/app.css").text
    default = client.get("/admin/report")
    assert default.status_code == 200 and period.title in default.text
    empty = client.get("/admin/report?month=2001-02")
    assert empty.status_code == 200 and 'id="kpi-comments">0<' in empty.text
    assert "2001-01" in empty.text and "2001-03" in empty.text
    december = client.get("/admin/report?month=2025-12")
    assert "2026-01" in december.text and "2025-11" in december.text


def test_openapi_has_no_admin_paths(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = open_web
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/admin")]


def test_analytics_and_users_on_every_backend(database_url: str, serving: ServingModel) -> None:
    """The admin page's own queries (users, figures, accounts, counts) on SQLite and
    PostgreSQL, against the store's statistics."""
    from service.store.db import migrate
    from service.web import analytics

    database = Database(database_url)
    try:
        migrate(database)
        ids = seed(database, serving)
        created = users.create_user(database, "sari", PASSWORD, accounts=["dinsos.smg"])
        assert users.authenticate(database, "sari", PASSWORD) == created
        assert users.authenticate(database, "sari", "salah-sandi-sekali") is None
        with pytest.raises(users.UserError):
            users.create_user(database, "sari", PASSWORD)
        store.update_comment(database, ids["pkh"], "sari", status="answered")
        store.update_comment(database, ids["ktp"], "sari", status="answered")
        store.correct_label(database, ids["mention"], "other", "sari")
        period = analytics.days_period(30, ZoneInfo("Asia/Jakarta"))
        found = analytics.figures(database, period)
        assert found["totals"]["comments"] == len(SEED)
        assert found["totals"]["corrected"] == 1 and found["totals"]["model_agreed"] == 1
        assert sum(day["total"] for day in found["days"]) == len(SEED)
        expected = store.stats(database, period.since, period.until)
        assert found["answers_by_label"] == expected["answers_by_label"]
        assert found["answers_by_account"] == expected["answers_by_account"]
        assert found["bansos"]["count"] == 2 and found["topics"][0]["count"] >= 2
        scoped = analytics.figures(database, period, frozenset({"dinsos.smg"}))
        assert scoped["totals"]["comments"] == 2
        assert analytics.visible_accounts(database) == [
            "dinkes.smg",
            "dinsos.smg",
            "pemkotsemarang",
        ]
        assert analytics.visible_accounts(database, frozenset({"dinsos.smg", "x"})) == [
            "dinsos.smg"
        ]
        assert analytics.count_matching(database, store.QueueFilter(topics=("bansos",))) == 1
        month = analytics.report_figures(
            database, analytics.month_period(analytics.current_month(period.zone), period.zone)
        )
        assert month["previous"]["totals"]["comments"] + month["totals"]["comments"] >= 1
    finally:
        database.dispose()


# --- junk input ---------------------------------------------------------------------------

JUNK_GETS = [
    "/admin/tidak-ada",
    "/admin/comments/1/label",
    "/admin/comments/abc",
    "/admin/comments/0",
    "/admin/comments/-1",
    "/admin/comments/99999999999999999999999",
    "/admin/comments/424242",
    "/admin/comments/1%00",
    "/admin/?label=spam",
    "/admin/?status=open",
    "/admin/?platform=myspace",
    "/admin/?topic=zzz",
    "/admin/?flag=boom",
    "/admin/?review=maybe",
    "/admin/?since=kemarin",
    "/admin/?until=2026-02-30",
    "/admin/?since=99999-01-01",
    "/admin/?cursor=@@@",
    "/admin/?cursor=" + "A" * 1001,
    "/admin/?q=" + "x" * 201,
    "/admin/?q=%00",
    "/admin/?account=" + "a" * 129,
    "/admin/review?cursor=e30",
    "/admin/analytics?days=abc",
    "/admin/analytics?days=31",
    "/admin/analytics?days=99999999999999999999",
    "/admin/analytics?month=2026-13",
    "/admin/analytics.csv?month=11-2026",
    "/admin/report?month=2026-13",
    "/admin/report?month=kemarin",
    "/admin/report?month=0000-01",
    "/admin/report?month=2026-1",
    "/admin/report?account=" + "a" * 129,
]


def test_junk_input_never_gives_a_500(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = open_web
    for path in JUNK_GETS:
        response = client.get(path)
        assert response.status_code in (400, 404, 422), (path, response.status_code)
        assert response.headers["content-type"].startswith("text/html"), path
    token = csrf_of(client.get("/admin/").text)
    posts = [
        ("/admin/comments/abc/status", {"status": "answered"}),
        ("/admin/comments/424242/status", {"status": "answered"}),
        (f"/admin/comments/{ids['pkh']}/status", {"status": "done"}),
        (f"/admin/comments/{ids['pkh']}/status", {}),
        (f"/admin/comments/{ids['pkh']}/label", {"label": "spam"}),
        ("/admin/comments/424242/label", {"label": "other"}),
        (f"/admin/comments/{ids['pkh']}/note", {"note": "   "}),
        (f"/admin/comments/{ids['pkh']}/note", {"note": "x" * 2001}),
        (f"/admin/comments/{ids['pkh']}/note", {"note": "a\x00b"}),
    ]
    for path, data in posts:
        response = client.post(path, data={**data, "csrf_token": token})
        assert response.status_code in (400, 404, 422), (path, data, response.status_code)
        htmx = client.post(path, data={**data, "csrf_token": token}, headers={"HX-Request": "true"})
        assert htmx.status_code == response.status_code
        assert htmx.headers["X-Pilah-Error"]
    json_body = client.post(
        f"/admin/comments/{ids['pkh']}/status",
        json={"status": "answered", "csrf_token": token},
    )
    assert json_body.status_code == 403
    assert store.get_comment(database_of(client), ids["pkh"])["history"] == []


def test_store_unavailable_is_a_503_page(open_web: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = open_web
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    database, runtime.database = runtime.database, None
    try:
        response = client.get("/admin/")
        assert response.status_code == 503 and "Basis data" in response.text
    finally:
        runtime.database = database


def test_importing_the_admin_page_loads_no_model_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, service.web; "
        "print([m for m in ('sklearn', 'scipy', 'service.model', 'service.text') "
        "if m in sys.modules])"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"


def test_topic_names_follow_the_signals() -> None:
    from service.signals import TOPICS
    from service.web.texts import TOPIC_ORDER

    assert tuple(TOPICS) == TOPIC_ORDER


def test_migration_creates_the_admin_users_table(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from service.store.db import current_revision, migrate

    database = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        migrate(database)
        assert current_revision(database) == "0002"
        columns = {c["name"] for c in inspect(database.engine).get_columns("admin_users")}
        assert {"username", "password_hash", "role", "accounts", "disabled"} <= columns
        from alembic import command

        from service.store.db import alembic_config

        config = alembic_config(database.url)
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        assert "admin_users" not in inspect(database.engine).get_table_names()
    finally:
        database.dispose()


def test_times_at_the_edge_of_the_calendar_still_render() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from service.web.texts import local_time, long_date

    edge = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert local_time(edge, ZoneInfo("Asia/Jakarta")).startswith("31 ")
    assert long_date(edge, ZoneInfo("Asia/Jayapura")).endswith("9999")
