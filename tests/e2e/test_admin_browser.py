"""The admin page in a real browser (Debian's Chromium, headless, through Playwright): log in,
the queue in the store's priority order, a label corrected with its keyboard shortcut and
stored, marked answered, filters and search, the review tab, the analytics charts drawn by
Chart.js, the printable report, and a phone-sized screen. Screenshots go to
reports/screenshots/ (not committed) for a reviewer to look at."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from api_helpers import API_KEYS, serve_in_thread
from test_web import PASSWORD, SECRET, seed

from service.app import create_app
from service.inference import ServingModel
from service.model import LoadedModel
from service.settings import ApiKeySetting, Settings
from service.store import comments as store
from service.store.db import Database
from service.web import auth, install_web, users

pytest_plugins = ["conftest_api"]
pytestmark = pytest.mark.browser

USERNAME = "sari.humas"
CHARTS = (
    "chart-daily",
    "chart-drift",
    "chart-answered",
    "chart-time",
    "chart-accounts",
    "chart-topics",
)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    url: str
    database: Database
    ids: dict[str, int]


@dataclass
class Browser:
    """Pages opened by one test, and the errors their scripts reported."""

    contexts: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def serving(small_model: LoadedModel) -> ServingModel:
    return ServingModel(small_model)


@pytest.fixture
def site(
    models_tree: Path, serving: ServingModel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Site]:
    """The real app (auth on) on uvicorn, SEED stored, one admin user."""
    monkeypatch.setenv("PILAH_SESSION_SECRET", SECRET)
    monkeypatch.setattr(auth, "FAILED_LOGIN_DELAY", 0.0)
    settings = Settings(
        models_dir=models_tree,
        switch_interval=None,
        access_log=False,
        auth_enabled=True,
        api_keys=[ApiKeySetting.model_validate(key) for key in API_KEYS],
        rate_limit=None,
    )
    app = create_app(settings)
    install_web(app, settings)
    with serve_in_thread(app) as port:
        database = app.state.runtime.database
        assert database is not None
        users.create_user(database, USERNAME, PASSWORD)
        yield Site(f"http://127.0.0.1:{port}", database, seed(database, serving))


@pytest.fixture
def browser_pages(chromium: Any) -> Iterator[tuple[Browser, Callable[..., Any]]]:
    """`open_page(viewport=DESKTOP, **context_options)`; every context is closed afterwards."""
    opened = Browser()

    def open_page(viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
        context = chromium.new_context(
            viewport=viewport, locale="id-ID", timezone_id="Asia/Jakarta", **options
        )
        opened.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on(
            "console",
            lambda message: opened.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: opened.errors.append(str(error)))
        return page

    try:
        yield opened, open_page
    finally:
        for context in opened.contexts:
            context.close()


def log_in(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/admin/")
    assert "/admin/login" in page.url
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Masuk')")
    page.wait_for_url(f"{site.url}/admin/")


def shown_ids(page: Any) -> list[int]:
    ids: list[int] = page.eval_on_selector_all(
        "#cards .card", "cards => cards.map(card => Number(card.dataset.id))"
    )
    return ids


def focused_id(page: Any) -> int | None:
    found = page.evaluate("() => document.activeElement && document.activeElement.dataset.id")
    return int(found) if found else None


def test_login_queue_order_and_keyboard_triage(
    site: Site, browser_pages: tuple[Browser, Callable[..., Any]], screenshots: Path
) -> None:
    opened, open_page = browser_pages
    page = open_page()
    # A wrong password first: a generic message, still on the login page.
    page.goto(f"{site.url}/admin/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", "bukan-sandinya")
    page.click("button:has-text('Masuk')")
    assert page.locator(".alert").inner_text() == "Nama pengguna atau kata sandi salah."
    assert opened.errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    opened.errors.clear()
    log_in(page, site)

    expected = [c["id"] for c in store.queue(site.database, store.QueueFilter()).items]
    assert shown_ids(page) == expected
    assert expected[0] == site.ids["banjir"] and expected[-1] == site.ids["slot"]
    assert page.locator("#shortcuts").is_visible()
    first = page.locator(f"#c-{expected[0]}")
    assert first.locator(".badge.f-urgent").inner_text() == "Darurat"
    assert first.locator(".pill").inner_text() == "Keluhan"
    page.screenshot(path=str(screenshots / "queue-desktop.png"), full_page=True)

    # j/k move between cards; "2" corrects the focused card's label to Pertanyaan.
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert focused_id(page) == expected[0]
    page.keyboard.press("j")
    target = expected[1]
    assert focused_id(page) == target
    page.keyboard.press("2")
    page.wait_for_function(
        "id => document.getElementById('c-' + id)?.dataset.label === 'question'", arg=target
    )
    assert page.locator("#toast").inner_text() == "Label diubah: Pertanyaan"
    stored = store.get_comment(site.database, target)
    assert stored["label"] == stored["human_label"] == "question"
    assert [(e["actor"], e["label"]) for e in stored["history"]] == [(USERNAME, "question")]

    # Focus stays on the re-rendered card: "a" marks it answered.
    assert focused_id(page) == target
    page.keyboard.press("a")
    page.wait_for_function(
        "id => document.getElementById('c-' + id)?.dataset.status === 'answered'", arg=target
    )
    assert page.locator(f"#c-{target} .status").inner_text() == "Dijawab"
    stored = store.get_comment(site.database, target)
    assert stored["status"] == "answered" and stored["answered_at"] is not None

    # "n" opens the note field of the focused card.
    page.keyboard.press("n")
    page.keyboard.type("Sudah dibalas lewat DM, diteruskan ke DPU")
    page.locator(f"#c-{target} button:has-text('Simpan catatan')").click()
    page.wait_for_selector(f"#c-{target} .history q")
    assert store.get_comment(site.database, target)["history"][-1]["note"] == (
        "Sudah dibalas lewat DM, diteruskan ke DPU"
    )

    # Escalate another card with the mouse.
    other = expected[2]
    page.locator(f"#c-{other} button:has-text('Eskalasi')").click()
    page.wait_for_function(
        "id => document.getElementById('c-' + id)?.dataset.status === 'escalated'", arg=other
    )
    assert store.get_comment(site.database, other)["status"] == "escalated"

    # After a reload the answered comment has left the open queue.
    page.reload()
    assert target not in shown_ids(page)
    assert shown_ids(page) == [
        c["id"] for c in store.queue(site.database, store.QueueFilter()).items
    ]
    assert opened.errors == [], opened.errors


def test_filters_search_and_review_tab(
    site: Site, browser_pages: tuple[Browser, Callable[..., Any]]
) -> None:
    opened, open_page = browser_pages
    page = open_page()
    log_in(page, site)
    page.click("summary:has-text('Filter')")
    page.select_option("select[name=label]", "question")
    page.click("button:has-text('Terapkan')")
    page.wait_for_url("**/admin/?*label=question*")
    questions = store.queue(site.database, store.QueueFilter(labels=("question",))).items
    assert shown_ids(page) == [c["id"] for c in questions]
    labels = page.eval_on_selector_all("#cards .card", "cards => cards.map(c => c.dataset.label)")
    assert labels and set(labels) == {"question"}

    page.click("a:has-text('Hapus filter')")
    page.fill("#q", "gedhe")
    page.press("#q", "Enter")
    page.wait_for_url("**/admin/?q=gedhe*")
    assert shown_ids(page) == [site.ids["dalan"]]
    assert "bolong gedhe" in page.locator("#cards .card .text").inner_text()

    page.goto(f"{site.url}/admin/?topic=bansos")
    assert set(shown_ids(page)) == {site.ids["pkh"], site.ids["bpnt"]}
    assert page.locator(".chip.bansos").count() == 2

    page.click("nav a:has-text('Tinjau')")
    page.wait_for_url("**/admin/review")
    review = store.review(site.database, store.QueueFilter()).items
    assert shown_ids(page) == [c["id"] for c in review]
    assert opened.errors == [], opened.errors


def test_analytics_charts_and_report(
    site: Site, browser_pages: tuple[Browser, Callable[..., Any]], screenshots: Path
) -> None:
    opened, open_page = browser_pages
    for key in ("pkh", "ktp", "taman"):
        store.update_comment(site.database, site.ids[key], USERNAME, status="answered")
    page = open_page()
    log_in(page, site)
    page.click("nav a:has-text('Analitik')")
    page.wait_for_url("**/admin/analytics")
    page.wait_for_function(
        "ids => typeof Chart !== 'undefined' && "
        "ids.every(id => Chart.getChart(document.getElementById(id)))",
        arg=list(CHARTS),
    )
    charts = page.evaluate(
        """ids => ids.map(id => {
            const canvas = document.getElementById(id);
            const chart = Chart.getChart(canvas);
            const pixels = canvas.getContext('2d')
                .getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
            return {
                id, type: chart.config.type, width: chart.width, height: chart.height,
                datasets: chart.data.datasets.length,
                values: chart.data.datasets.flatMap(d => d.data).filter(v => v).length,
                painted,
            };
        })""",
        list(CHARTS),
    )
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 100, chart
        assert chart["values"] > 0 and chart["painted"] > 1000, chart
    by_id = {chart["id"]: chart for chart in charts}
    assert by_id["chart-daily"]["datasets"] == 5 and by_id["chart-drift"]["type"] == "line"
    topic_colours = page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById('chart-topics'));"
        " return Object.fromEntries(c.data.labels.map("
        "(name, i) => [name, c.data.datasets[0].backgroundColor[i]])); }"
    )
    assert topic_colours["Bansos & kemiskinan"] == "#a35f00"
    assert len(set(topic_colours.values())) == 2  # bansos stands out from the others
    assert page.locator("#kpi-comments").inner_text() == "12"
    assert "Bansos & kemiskinan" in page.locator("#bansos h2").inner_text()
    page.screenshot(path=str(screenshots / "analytics.png"), full_page=True)

    with page.expect_download() as download_info:
        page.click("a:has-text('Unduh CSV')")
    download = download_info.value
    assert download.suggested_filename == "pilah-analitik-30.csv"
    content = Path(download.path()).read_text(encoding="utf-8")
    assert content.startswith("bagian,tanggal,akun,label,topik,ukuran,nilai")

    page.click("a:has-text('Laporan bulanan')")
    page.wait_for_url("**/admin/report")
    assert page.locator("svg.chart-svg rect").count() > 5
    assert page.locator("#bansos").is_visible()
    page.screenshot(path=str(screenshots / "report.png"), full_page=True)
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 703, "height": 1000})  # A4 minus the print margins
    assert page.locator(".report-nav").is_hidden() and page.locator(".topbar").is_hidden()
    page.screenshot(path=str(screenshots / "report-print.png"), full_page=True)
    page.pdf(path=str(screenshots / "report.pdf"), format="A4", print_background=True)
    assert opened.errors == [], opened.errors


def test_phone_sized_screen(
    site: Site, browser_pages: tuple[Browser, Callable[..., Any]], screenshots: Path
) -> None:
    opened, open_page = browser_pages
    page = open_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    log_in(page, site)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    page.screenshot(path=str(screenshots / "queue-phone.png"))
    first = shown_ids(page)[0]
    page.locator(f"#c-{first} button:has-text('Dijawab')").tap()
    page.wait_for_function(
        "id => document.getElementById('c-' + id)?.dataset.status === 'answered'", arg=first
    )
    assert store.get_comment(site.database, first)["status"] == "answered"
    page.goto(f"{site.url}/admin/analytics")
    page.wait_for_function("() => Chart.getChart(document.getElementById('chart-daily'))")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    page.screenshot(path=str(screenshots / "analytics-phone.png"), full_page=True)
    assert opened.errors == [], opened.errors
