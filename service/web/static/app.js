/* Pilah admin page: keyboard shortcuts on the focused comment card, messages after actions,
   the print button. Everything also works without this file (plain forms, full reloads). */
(function () {
  "use strict";

  var toastTimer = null;
  function toast(message, isError) {
    var box = document.getElementById("toast");
    if (!box || !message) return;
    box.textContent = message;
    box.classList.toggle("error", !!isError);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, isError ? 6000 : 2500);
  }

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll("#cards .card"));
  }

  function currentCard() {
    var active = document.activeElement;
    return active && active.closest ? active.closest(".card") : null;
  }

  function focusCard(card) {
    if (!card) return;
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var list = cards();
    if (!list.length) return;
    var index = list.indexOf(currentCard());
    var next = index < 0 ? (step > 0 ? 0 : list.length - 1) : index + step;
    focusCard(list[Math.max(0, Math.min(list.length - 1, next))]);
  }

  // While a card's action is on its way (and until the new card is in place), further
  // shortcut keys wait in a short queue, so fast typing never acts on a stale card.
  var busy = false;
  var busyTimer = null;
  var queued = [];
  var pending = null;

  function setBusy(value) {
    busy = value;
    clearTimeout(busyTimer);
    if (value) busyTimer = setTimeout(function () { setBusy(false); queued = []; }, 15000);
  }

  function act(key) {
    if (key === "j" || key === "k") {
      move(key === "j" ? 1 : -1);
      return true;
    }
    var card = currentCard();
    if (!card) return false;
    if (key === "n") {
      var note = card.querySelector("textarea[name=note]");
      if (!note) return false;
      note.focus();
      return true;
    }
    var button = card.querySelector('button[data-key="' + key + '"]');
    if (!button || button.disabled) return false;
    button.click();
    return true;
  }

  function replay() {
    while (!busy && queued.length) act(queued.shift());
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && target.matches && target.matches("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") {
        var holder = target.closest(".card");
        target.blur();
        focusCard(holder);
      }
      return;
    }
    var key = event.key;
    if (!/^[jkn1-5adeu]$/.test(key)) return;
    if (event.repeat && key !== "j" && key !== "k") {
      event.preventDefault();
      return;
    }
    if (busy) {
      event.preventDefault();
      if (queued.length < 5) queued.push(key);
      return;
    }
    if (act(key)) event.preventDefault();
  });

  // Keep the keyboard focus on a card that htmx re-rendered.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var card = event.target && event.target.closest ? event.target.closest(".card") : null;
    pending = card ? card.id : null;
    setBusy(true);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!event.detail.successful || !xhr || xhr.status !== 200) {
      setBusy(false);
      queued = [];
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (pending) {
      var card = document.getElementById(pending);
      pending = null;
      if (card) card.focus({ preventScroll: true });
    }
    setBusy(false);
    replay();
  });
  document.addEventListener("pilah-toast", function (event) {
    toast(event.detail && event.detail.value, false);
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var message = "Gagal menyimpan. Coba lagi.";
    if (xhr) {
      var header = xhr.getResponseHeader("X-Pilah-Error");
      if (header) {
        try { message = decodeURIComponent(header); } catch (e) { /* keep the default */ }
      }
    }
    toast(message, true);
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Tidak terhubung ke server. Periksa koneksi lalu coba lagi.", true);
  });

  document.addEventListener("click", function (event) {
    var print = event.target && event.target.closest ? event.target.closest("[data-print]") : null;
    if (print) window.print();
  });
})();
