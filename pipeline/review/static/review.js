// Keyboard-first review: the value field has focus with its text selected, so typing
// replaces it; Enter saves (or accepts, when unchanged); Alt+digit picks a proposal
// (Tab cycles them through the field, where Alt+digit belongs to the browser);
// Up/Down move through the queue; Ctrl+Z takes back the last decision.
(function () {
  "use strict";
  const main = document.getElementById("item");
  if (!main) return;
  const field = document.getElementById("value");
  const message = document.getElementById("message");
  const initial = main.dataset.initial;
  const proposals = Array.from(document.querySelectorAll("button.pick")).map(function (b) { return b.dataset.text; });
  let picked = -1;  // proposal shown in the field by Tab
  let busy = false;

  field.focus();
  field.select();
  const here = document.querySelector(".queue a.q.current");
  if (here) here.scrollIntoView({block: "center"});

  function go(id) {
    if (id) window.location.href = "/?item=" + encodeURIComponent(id);
  }

  function say(text, bad) {
    message.textContent = text;
    message.className = "message" + (bad ? " bad" : " good");
  }

  async function post(url, body) {
    if (busy) return null;
    busy = true;
    try {
      const r = await fetch(url, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        credentials: "same-origin",
        body: JSON.stringify(body || {}),
      });
      const data = await r.json();
      if (!r.ok) {
        say(data.error || ("error " + r.status), true);
        return null;
      }
      return data;
    } catch (e) {
      say("not saved: " + e, true);
      return null;
    } finally {
      busy = false;
    }
  }

  async function decide(body) {
    body.id = main.dataset.id;
    const data = await post("/api/decisions", body);
    if (!data) return;
    say(data.cells > 1 ? "saved for " + data.cells + " cells" : "saved");
    // next open item; none left: stay and show it decided
    if (data.next_open && data.next_open !== main.dataset.id) go(data.next_open);
    else go(main.dataset.id);
  }

  async function undo() {
    const data = await post("/api/undo");
    if (data && data.id) go(data.id);
    else if (data) window.location.href = "/";
  }

  // a cell of the group that differs: take it out, then decide it (or the rest) on its own
  document.querySelectorAll("button.split").forEach(function (b) {
    b.addEventListener("click", async function () {
      const data = await post("/api/split", {id: b.dataset.id});
      if (data) go(main.dataset.id);
    });
  });

  document.querySelectorAll("button.pick").forEach(function (b) {
    b.addEventListener("click", function () {
      decide({action: "pick", index: parseInt(b.dataset.index, 10)});
    });
  });

  document.addEventListener("keydown", function (e) {
    const edited = field.value !== initial;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (picked >= 0 && field.value === proposals[picked]) decide({action: "pick", index: picked});
      else decide(edited ? {action: "set", text: field.value} : {action: "accept"});
    } else if (e.key === "Tab" && proposals.length) {
      // Tab / Shift+Tab put the proposals into the field in turn; Enter saves the one shown
      e.preventDefault();
      const n = proposals.length + 1;  // the proposals, then the value as it was
      const at = picked < 0 ? proposals.length : picked;
      const to = (at + (e.shiftKey ? n - 1 : 1)) % n;
      picked = to < proposals.length ? to : -1;
      field.value = picked >= 0 ? proposals[picked] : initial;
      field.select();
    } else if (e.altKey && /^Digit[1-9]$/.test(e.code)) {
      const n = parseInt(e.code.slice(5), 10);
      if (n <= parseInt(main.dataset.proposals, 10)) {
        e.preventDefault();
        decide({action: "pick", index: n - 1});
      }
    } else if (e.key === "ArrowDown" || e.key === "PageDown") {
      e.preventDefault();
      go(main.dataset.next);
    } else if (e.key === "ArrowUp" || e.key === "PageUp") {
      e.preventDefault();
      go(main.dataset.prev);
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z" && !edited) {
      // an edited field keeps the browser's own text undo
      e.preventDefault();
      undo();
    } else if (e.key === "Escape") {
      picked = -1;
      field.value = initial;
      field.select();
      say("");
    }
  });
})();
