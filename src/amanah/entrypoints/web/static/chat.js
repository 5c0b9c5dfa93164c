// The bank's web chat: sends messages to /api/chat and renders typed replies.
// The page follows the language of the latest reply: Arabic switches it to right-to-left.
(function () {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("message");
  const suggestions = document.getElementById("suggestions");

  function setDirection(lang, dir) {
    document.documentElement.lang = lang;
    document.documentElement.dir = dir;
  }

  function bubble(text, who, dir, lang) {
    const li = document.createElement("li");
    li.className = "msg " + who;
    li.textContent = text;
    li.dir = dir || "auto";
    if (lang) li.lang = lang;
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    return li;
  }

  function showReply(reply) {
    const li = bubble(reply.text, "bot", reply.dir, reply.lang);
    li.dataset.testid = "bot-reply";
    if (reply.buttons && reply.buttons.length) {
      const links = document.createElement("div");
      links.className = "links";
      for (const b of reply.buttons) {
        const a = document.createElement("a");
        a.href = b.url; a.textContent = b.title; a.rel = "noopener";
        links.appendChild(a);
      }
      li.appendChild(links);
    }
    suggestions.replaceChildren();
    for (const q of reply.quick_replies || []) {
      const btn = document.createElement("button");
      btn.type = "button"; btn.textContent = q.title; btn.dir = "auto";
      btn.addEventListener("click", () => send(q.title, q.payload));
      suggestions.appendChild(btn);
    }
    setDirection(reply.lang, reply.dir);
  }

  async function send(text, payload) {
    bubble(text, "me", "auto");
    suggestions.replaceChildren();
    try {
      const res = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ text: text, payload: payload || null }),
      });
      if (res.status === 401) { window.location.href = "/login"; return; }
      const data = await res.json();
      if (!res.ok) {
        bubble(document.documentElement.lang === "ar" ? "تعذر إرسال الرسالة." : "The message could not be sent.", "bot", "auto");
        return;
      }
      showReply(data.reply);
    } catch (err) {
      bubble(document.documentElement.lang === "ar" ? "انقطع الاتصال، حاول مرة أخرى." : "Connection lost, please try again.", "bot", "auto");
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text, null);
  });

  fetch("/api/history", { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { turns: [] }))
    .then((data) => {
      for (const t of data.turns) {
        bubble(t.text, "me", "auto");
        bubble(t.reply, "bot", t.dir, t.lang);
      }
      if (data.turns.length) { const last = data.turns[data.turns.length - 1]; setDirection(last.lang, last.dir); }
    });
  input.focus();
})();
