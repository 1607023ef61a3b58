// The live board's script: refreshes the state panels every few seconds and keeps a live
// feed of the hotel's events from the gateway's WebSocket, opened with the short-lived
// board token the authenticated page hands over (never the identity's secret).
"use strict";
(function () {
  const body = document.body;
  const feed = document.getElementById("feed");
  const empty = document.getElementById("feed-empty");
  const live = document.getElementById("live");
  const zone = body.dataset.timezone;
  const refreshMs = Number(body.dataset.refreshS || 5) * 1000;
  const MAX_ITEMS = 60;
  let token = body.dataset.wsToken;
  let cursor = null;
  let retryMs = 500;
  let refreshing = null;
  let soon = null;

  const clock = new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function status(text, on) {
    live.textContent = text;
    live.className = on ? "live on" : "live off";
  }

  async function refresh() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      try {
        const answer = await fetch(body.dataset.panelsUrl, { cache: "no-store" });
        if (!answer.ok) return;
        const holder = document.createElement("div");
        holder.innerHTML = await answer.text();  // the server escaped every value
        const fresh = holder.firstElementChild;
        const current = document.getElementById("panels");
        if (fresh && current) current.replaceWith(fresh);
      } catch (error) {
        // The next tick tries again; the panels keep what they last showed.
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  function refreshSoon() {
    if (soon) return;
    soon = setTimeout(() => { soon = null; refresh(); }, 250);
  }

  function cell(className, text) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  }

  function show(message) {
    const type = String(message.type || "").replace(/^hotel\./, "");
    const [kind, ...rest] = type.split(".");
    const source = String(message.source || "").split("/").pop();
    const item = document.createElement("li");
    item.className = "event k-" + kind.replace(/[^a-z_]/g, "");
    item.dataset.eventId = String(message.id || "");
    let when = "";
    try { when = clock.format(new Date(message.time)); } catch (error) { when = ""; }
    item.append(cell("when", when), cell("kind", kind), cell("action", rest.join(".")),
                cell("entity", String(message.subject || "")), cell("source", source));
    feed.prepend(item);
    while (feed.children.length > MAX_ITEMS) feed.lastElementChild.remove();
    empty.hidden = true;
  }

  async function freshToken() {
    const answer = await fetch(body.dataset.tokenUrl, { cache: "no-store" });
    if (!answer.ok) throw new Error("token " + answer.status);
    token = (await answer.json()).token;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws?board_token=${encodeURIComponent(token)}`;
    const socket = new WebSocket(url);
    let used = false;
    socket.onopen = () => {
      const request = { type: "subscribe", patterns: ["*"] };
      if (cursor) request.cursor = cursor;
      else request.since = new Date(Date.now() - 30 * 60 * 1000).toISOString();
      socket.send(JSON.stringify(request));
    };
    socket.onmessage = (incoming) => {
      const message = JSON.parse(incoming.data);
      if (message.control === "subscribed") {
        used = true; retryMs = 500; status("live", true);
        return;
      }
      if (message.control) {
        if (message.cursor) cursor = message.cursor;
        if (message.code === "cursor_expired") cursor = null;
        return;
      }
      if (message.hubcursor) cursor = message.hubcursor;
      show(message);
      refreshSoon();
    };
    socket.onclose = async () => {
      status("reconnecting…", false);
      if (!used) retryMs = Math.min(retryMs * 2, 15000);
      setTimeout(async () => {
        try { await freshToken(); } catch (error) { /* try again with the one we have */ }
        connect();
      }, retryMs);
    };
  }

  setInterval(refresh, refreshMs);
  connect();
})();
