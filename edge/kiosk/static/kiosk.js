// The kiosk page: shows what the station pushes (Server-Sent Events) and hands what the card reader
// types (a keyboard wedge: characters, then Enter) to the station. No text is made up here: every
// word comes translated from the station.
(function () {
  "use strict";
  const lang = document.body.dataset.lang;
  const $ = (id) => document.getElementById(id);
  let lastSeq = -1;

  function show(s) {
    if (s.seq !== undefined && s.seq < lastSeq) return;
    lastSeq = s.seq;
    document.body.dataset.tone = s.tone;
    document.body.dataset.screen = s.screen;
    $("title").textContent = s.title;
    $("body").textContent = s.body;
    $("staff").textContent = s.staff;
    $("purpose").textContent = s.purpose;
    const hints = $("hints");
    hints.replaceChildren(...s.hints.map((h) => { const li = document.createElement("li"); li.textContent = h; return li; }));
    $("actions").replaceChildren(...(s.actions || []).map((a) => {
      const b = document.createElement("button");
      b.type = "button"; b.id = "action-" + a.id; b.textContent = a.label;
      b.addEventListener("click", () => {
        fetch("/kiosk/consent", { method: "POST", headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify({ answer: a.id }) }).catch(() => {});
      });
      return b;
    }));
    $("status").textContent = s.status;
    $("pending").textContent = s.pending_text;
    $("net").className = s.online ? "online" : "offline";
    if (s.shift) showShift(s.shift);
  }

  // The clerk's shift: the sign-in screen covers the page until a shift is open (when required).
  function showShift(sh) {
    const signIn = sh.required && !sh.open;
    document.body.dataset.shift = sh.open ? "open" : (sh.required ? sh.screen : "none");
    $("shift").hidden = !signIn;
    $("screen").hidden = signIn;
    $("shift-title").textContent = sh.title;
    $("shift-body").textContent = sh.body;
    $("shift-note").textContent = sh.note;
    $("shift-finger").textContent = sh.labels.finger;
    $("shift-finger").disabled = sh.screen === "signing_in";
    $("pin-operator-label").textContent = sh.labels.operator;
    $("pin-code-label").textContent = sh.labels.pin;
    $("pin-submit").textContent = sh.labels.submit;
    $("shift-bar").hidden = !sh.open;
    $("shift-who").textContent = sh.who;
    $("shift-signout").textContent = sh.labels.signout;
    if (!signIn && document.activeElement && document.activeElement.closest("#shift")) $("card-input").focus();
  }

  const post = (url, body) => fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(body || {}) }).catch(() => {});
  $("shift-finger").addEventListener("click", () => post("/kiosk/shift/finger"));
  $("shift-signout").addEventListener("click", () => post("/kiosk/shift/signout"));
  $("pin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const op = $("pin-operator").value.trim(), pin = $("pin-code").value;
    $("pin-code").value = "";  // never kept on the page
    if (op && pin) post("/kiosk/shift/pin", { operator_id: op, pin: pin });
  });

  show(JSON.parse($("initial").textContent));
  const events = new EventSource("/kiosk/events?lang=" + encodeURIComponent(lang));
  events.onmessage = (e) => show(JSON.parse(e.data));

  // The reader types into the hidden field; keep the focus there whatever is touched.
  const input = $("card-input");
  const refocus = () => {
    if (!$("shift").hidden) return;  // the clerk is typing an ID and PIN
    if (document.activeElement !== input) input.focus();
  };
  document.addEventListener("click", (e) => { if (!e.target.closest("#languages, #actions, #shift, #shift-bar")) refocus(); });
  window.addEventListener("focus", refocus);
  setInterval(refocus, 1000);
  let idle = null;
  input.addEventListener("input", () => {  // a half-typed line (reader unplugged mid-way) is dropped
    clearTimeout(idle);
    idle = setTimeout(() => { input.value = ""; }, 3000);
  });
  $("card-form").addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(idle);
    const text = input.value;
    input.value = "";
    if (!text.trim()) return;
    fetch("/kiosk/card", { method: "POST", headers: { "Content-Type": "application/json" },
                           body: JSON.stringify({ text: text }) }).catch(() => {});
  });
})();
