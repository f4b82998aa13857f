// The fleet dashboard's only script: it keeps the API token in this tab
// (sessionStorage), polls the page's fragment with it, and sends each button's
// request to the controller's /v1/ API with it. The server decides which
// buttons exist; the API decides whether a request is allowed.
(() => {
  "use strict";
  const key = "modelslot-fleet-token";
  const view = document.getElementById("view");
  const login = document.getElementById("login");
  const logout = document.getElementById("logout");
  const live = document.getElementById("live");
  const error = document.getElementById("error");
  const poll = Number(view.dataset.poll) || 2000;

  const token = () => sessionStorage.getItem(key) || "";
  const headers = (extra) => Object.assign(token() ? { Authorization: "Bearer " + token() } : {}, extra || {});
  const say = (text) => { error.textContent = text; error.hidden = !text; };

  async function refresh() {
    let r;
    try {
      r = await fetch(view.dataset.fragment, { headers: headers(), cache: "no-store" });
    } catch (e) {
      live.textContent = "controller unreachable";
      return;
    }
    if (r.status === 401) {
      login.hidden = false;
      logout.hidden = true;
      live.textContent = "token needed";
      return;
    }
    login.hidden = true;
    logout.hidden = !token();
    if (!r.ok) {
      live.textContent = "the controller answered " + r.status;
      say(await r.text());
      return;
    }
    view.innerHTML = await r.text();
    live.textContent = "live · " + new Date().toLocaleTimeString();
    view.dataset.loaded = String(Number(view.dataset.loaded || 0) + 1);
  }

  login.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(key, login.elements.token.value.trim());
    login.elements.token.value = "";
    say("");
    refresh();
  });
  logout.addEventListener("click", () => { sessionStorage.removeItem(key); refresh(); });

  view.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b || (b.dataset.confirm && !window.confirm(b.dataset.confirm))) return;
    b.disabled = true;
    try {
      const r = await fetch(b.dataset.action, {
        method: "POST", headers: headers({ "Content-Type": "application/json" }), body: b.dataset.body || "{}",
      });
      const body = await r.json().catch(() => ({}));
      say(r.ok ? "" : (b.textContent + ": " + (body.error || r.status)));
    } catch (err) {
      say(b.textContent + ": controller unreachable");
    }
    refresh();
  });

  // The next poll is asked for a full interval after the last answer, so a
  // slow controller (a large fleet) is never asked faster than it answers.
  const loop = async () => {
    await refresh();
    setTimeout(loop, poll);
  };
  loop();
})();
