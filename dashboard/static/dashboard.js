// The dashboard's only script: the live tail (EventSource), pause/resume, expandable events, local times,
// and the admin's re-publish button. No framework, no CDN: this file and the CSS are all the page loads.
"use strict";

const MAX_ROWS = 2000;
const KEY_FIELDS = ["run_id", "transfer_process_id", "consumer_id", "deployment_id", "asset_id", "site", "exit_code", "reason"];

function localTimes(root) {
  for (const el of root.querySelectorAll(".time[data-time]")) {
    const value = el.dataset.time;
    if (!value) continue;
    const when = new Date(value);
    if (!isNaN(when)) {
      el.textContent = when.toLocaleString(undefined, { hour12: false }) + "." + String(when.getMilliseconds()).padStart(3, "0");
      el.title = value;
    }
  }
}

function kindOf(type) {
  if (/(failed|timed_out|dead)$/.test(type)) return "failed";
  if (/(succeeded|ready|granted|registered|published|deprovisioned)$/.test(type)) return "ok";
  if (/requested$/.test(type)) return "command";
  return "fact";
}

function summary(event) {
  const data = event && typeof event.data === "object" && event.data ? event.data : {};
  return KEY_FIELDS.filter((k) => data[k] !== undefined && data[k] !== null && data[k] !== "")
    .map((k) => `${k}=${data[k]}`).join("  ");
}

// What the event is about, as a link: a transfer's timeline, or the events of one run.
function correlation(event) {
  const data = event && typeof event.data === "object" && event.data ? event.data : {};
  const transfer = data.transfer_process_id || (String(event.type || "").startsWith("edc.") ? event.correlationid : null);
  const run = data.run_id;
  if (!transfer && !run) return null;
  const a = document.createElement("a");
  a.className = "corr";
  a.href = transfer ? `/transfers/${encodeURIComponent(transfer)}` : `/tail?run=${encodeURIComponent(run)}&since=1d`;
  a.textContent = transfer ? "timeline" : "this run";
  a.addEventListener("click", (e) => e.stopPropagation());
  return a;
}

// An operator's action keeps its answer on screen a while: no refresh replaces it.
let holdUntil = 0;

// Pages that show state (overview, delivery, a timeline) re-read themselves every few seconds, keeping what the
// operator has expanded; a hidden tab does not poll.
function autoRefresh(seconds) {
  const main = document.querySelector("main");
  setInterval(async () => {
    if (document.hidden || Date.now() < holdUntil) return;
    const open = new Set([...main.querySelectorAll("details[open]")].map((d) => d.closest("[data-seq]")?.dataset.seq));
    try {
      const response = await fetch(location.href, { headers: { accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("main");
      if (!fresh) return;
      main.replaceChildren(...fresh.childNodes);
      for (const item of main.querySelectorAll("[data-seq]")) {
        if (open.has(item.dataset.seq)) item.querySelector("details")?.setAttribute("open", "");
      }
      localTimes(main);
      republishButtons(main);
    } catch (error) {
      // the next tick tries again
    }
  }, seconds * 1000);
}

function startTail(list) {
  const base = list.dataset.stream;
  const status = document.getElementById("status");
  const count = document.getElementById("count");
  const pause = document.getElementById("pause");
  const seen = new Set();
  let lastId = null;
  let source = null;
  let shown = 0;

  function row(message) {
    const item = JSON.parse(message.data);
    if (seen.has(item.seq)) return; // a resumed stream starts after lastId, so this never happens; be safe
    seen.add(item.seq);
    const event = item.event || {};
    const li = document.createElement("li");
    li.className = "event " + kindOf(String(event.type || item.subject));
    li.dataset.seq = item.seq;
    li.dataset.subject = item.subject;
    const head = document.createElement("div");
    head.className = "head";
    for (const [cls, text] of [["seq mono", "#" + item.seq], ["time", ""], ["subject", item.subject], ["sum mono", summary(event)]]) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      if (cls === "time") span.dataset.time = event.time || "";
      head.appendChild(span);
    }
    const link = correlation(event);
    if (link) head.appendChild(link);
    li.appendChild(head);
    li.addEventListener("click", () => {
      let pre = li.querySelector("pre");
      if (pre) { pre.remove(); return; }
      pre = document.createElement("pre");
      pre.textContent = JSON.stringify(event, null, 2);
      li.appendChild(pre);
    });
    localTimes(li);
    list.insertBefore(li, list.firstChild);
    shown += 1;
    count.textContent = String(shown);
    while (list.childElementCount > MAX_ROWS) list.lastElementChild.remove();
  }

  function connect() {
    const url = lastId ? `${base}${base.includes("?") ? "&" : "?"}lastEventId=${encodeURIComponent(lastId)}` : base;
    source = new EventSource(url);
    source.addEventListener("open", () => { status.textContent = "live"; status.className = "status live"; });
    source.addEventListener("error", () => {
      status.textContent = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…";
      status.className = "status down";
    });
    source.addEventListener("cursor", (m) => { lastId = m.lastEventId; });
    source.addEventListener("event", (m) => { lastId = m.lastEventId; row(m); });
  }

  pause.addEventListener("click", () => {
    if (source) {
      // Paused: no stream at all. Resuming asks for what came after the last event shown.
      source.close();
      source = null;
      pause.textContent = "Resume";
      status.textContent = "paused";
      status.className = "status paused";
    } else {
      pause.textContent = "Pause";
      connect();
    }
  });
  connect();
}

// Dead letters live in their own stream (its own sequence numbers), so the tail shows how many there are and
// links to them, checked every few seconds.
function deadLetterBadge(badge) {
  async function check() {
    if (document.hidden) return;
    try {
      const response = await fetch("/api/dead-letters?limit=1", { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      const body = await response.json();
      badge.hidden = body.total === 0;
      badge.textContent = `${body.total} dead letter${body.total === 1 ? "" : "s"}`;
    } catch (error) {
      // the next check tries again
    }
  }
  check();
  setInterval(check, 5000);
}

function republishButtons(root) {
  for (const button of root.querySelectorAll("button.republish")) {
    button.addEventListener("click", async () => {
      const out = button.parentElement.querySelector(".outcome");
      button.disabled = true;
      holdUntil = Date.now() + 15000;
      try {
        const response = await fetch(`/api/dead-letters/${button.dataset.seq}/republish`, {
          method: "POST", headers: { "x-gxwf-action": "1", accept: "application/json" }, credentials: "same-origin",
        });
        const body = await response.json();
        out.textContent = response.ok
          ? (body.duplicate ? `already re-published as #${body.stream_sequence}` : `re-published as #${body.stream_sequence}`)
          : `${response.status}: ${body.detail}`;
        out.className = "outcome " + (response.ok ? "ok" : "failed");
      } catch (error) {
        out.textContent = String(error);
        out.className = "outcome failed";
      } finally {
        button.disabled = false;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  const list = document.getElementById("events");
  if (list) startTail(list);
  const badge = document.getElementById("dead-letters");
  if (badge) deadLetterBadge(badge);
  republishButtons(document);
  const every = Number(document.body.dataset.refresh || 0);
  if (every > 0) autoRefresh(every);
});
