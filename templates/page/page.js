// drover's status page: draws the timeline chart, then keeps the page
// live by asking the scheduler for its update every refresh (a worker's
// page follows its log). No library: a few tables and one canvas.
"use strict";

// Drawn in this order: jobs running over workers, as they are often equal.
const colours = { workers: "#2b5fb4", pending: "#c98a00", running: "#1f7a3a", tasks_running: "#8a3fb0" };
const busyColours = { busy_percent: "#8a3fb0" };

// Each sample's busy cores as a share of the workers' cores (100 at most).
function utilisation(samples) {
  return samples.map((s) => ({ at_ms: s.at_ms, busy_percent: s.cores ? Math.round((100 * (s.busy_cores || 0)) / s.cores) : 0 }));
}

function drawBoth(samples) {
  draw(document.getElementById("chart"), samples, colours);
  draw(document.getElementById("utilisation"), utilisation(samples), busyColours, 100);
}

function draw(canvas, samples, colours, fixedTop) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#6b6b70";
  if (samples.length === 0) {
    ctx.fillText("no samples yet", pad, h / 2);
    canvas.dataset.drawn = "0";
    return;
  }
  const t0 = samples[0].at_ms, t1 = Math.max(samples[samples.length - 1].at_ms, t0 + 1);
  let top = fixedTop || 1;
  if (!fixedTop) for (const s of samples) for (const key of Object.keys(colours)) top = Math.max(top, s[key]);
  const x = (t) => pad + (w - 2 * pad) * (t - t0) / (t1 - t0);
  const y = (v) => h - pad - (h - 2 * pad) * v / top;
  ctx.strokeStyle = "#e3e3e8";
  ctx.beginPath(); ctx.moveTo(pad, y(0)); ctx.lineTo(w - pad, y(0)); ctx.moveTo(pad, y(top)); ctx.lineTo(w - pad, y(top)); ctx.stroke();
  ctx.fillText(String(top), 4, y(top) + 4);
  ctx.fillText("0", 4, y(0) + 4);
  const span = Math.round((t1 - t0) / 1000);
  ctx.fillText(span >= 120 ? Math.round(span / 60) + " min ago" : span + " s ago", pad, h - 8);
  ctx.fillText("now", w - pad - 20, h - 8);
  for (const key of Object.keys(colours)) {
    ctx.strokeStyle = colours[key];
    ctx.lineWidth = key === "workers" ? 4 : 2;
    ctx.beginPath();
    samples.forEach((s, i) => (i === 0 ? ctx.moveTo(x(s.at_ms), y(s[key])) : ctx.lineTo(x(s.at_ms), y(s[key]))));
    ctx.stroke();
  }
  canvas.dataset.drawn = String(samples.length);
}

// An action from the page: confirmed first, sent with the session's
// action token (a request from another site has none).
async function act(body, question) {
  const token = document.querySelector('meta[name="drover-actions"]');
  const result = document.getElementById("act-result");
  if (!token || !window.confirm(question)) return;
  try {
    const r = await fetch("/ui/action", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Drover-Action-Token": token.content },
      body: JSON.stringify(body),
    });
    result.textContent = (await r.text()).trim();
    result.className = r.ok ? "meta" : "meta lost";
  } catch (e) {
    result.textContent = "not done (" + e.message + ")";
    result.className = "meta lost";
  }
}

function actions() {
  const scale = document.getElementById("scale-form");
  if (!scale) return;
  scale.addEventListener("submit", (e) => {
    e.preventDefault();
    const group = document.getElementById("scale-group").value;
    const workers = Number(document.getElementById("scale-workers").value);
    const body = { action: "scale", workers: workers };
    if (group) body.group = group;
    act(body, "Scale " + (group ? "group " + group : "the pool") + " to " + workers + " workers?");
  });
  document.getElementById("cancel-task-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const task = Number(document.getElementById("cancel-task").value.replace(/^t/, ""));
    act({ action: "cancel_task", task: task }, "Cancel task t" + task + " (and what depends on it)?");
  });
  // Rows are redrawn by every update: one listener on the live part.
  document.getElementById("live").addEventListener("click", (e) => {
    const button = e.target.closest("button.cancel-job");
    if (button) act({ action: "cancel_job", job: button.dataset.cancel }, "Cancel job " + button.dataset.cancel + "? (The pool replaces it.)");
  });
}

// A span of seconds as the scheduler words one (protocol::short_duration):
// 42s, 3m05s, 1h02m.
function span(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, "0");
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + two(s % 60) + "s";
  return Math.floor(s / 3600) + "h" + two(Math.floor(s / 60) % 60) + "m";
}

// The rows carry absolute times (so that a row changes only when its job
// does, and an update sends only the rows that changed): their ages,
// times left and expected starts are written here, as of the scheduler's
// clock at its last update.
function times(root, now) {
  for (const e of root.querySelectorAll("[data-since]")) e.textContent = span(now - Number(e.dataset.since));
  for (const e of root.querySelectorAll("[data-until]")) e.textContent = span(Number(e.dataset.until) - now);
  for (const e of root.querySelectorAll("[data-expected]")) {
    const s = Number(e.dataset.expected) - now;
    e.textContent = s <= 0 ? "expected to start now" : "expected to start in " + span(s);
  }
}

// The live part's lines after an update's edits ({keep: n}, {drop: n},
// {add: [lines]}, in order from the first line).
function edited(old, edits) {
  const out = [];
  let at = 0;
  for (const e of edits) {
    if (e.keep !== undefined) {
      for (let i = 0; i < e.keep; i++) out.push(old[at + i]);
      at += e.keep;
    } else if (e.drop !== undefined) at += e.drop;
    else for (const line of e.add) out.push(line);
  }
  if (at !== old.length) throw new Error("an update that does not fit the page");
  return out;
}

function pool() {
  actions();
  const samples = JSON.parse(document.getElementById("timeline").textContent);
  drawBoth(samples);
  document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
  const live = document.getElementById("live");
  const connection = document.getElementById("connection");
  const every = Number(document.body.dataset.refreshMs || 2000);
  const now = () => Number(document.getElementById("updated").dataset.now || Date.now() / 1000);
  times(live, now());
  // The version of the live part this page has, and its lines: the
  // first update brings the whole part, the next ones what changed.
  let version = null;
  let lines = null;
  const poll = async () => {
    try {
      const since = version === null ? "" : "?since=" + version;
      const r = await fetch("/ui/update" + since, { credentials: "same-origin", cache: "no-store" });
      if (!r.ok) throw new Error(r.status === 401 ? "logged out: run drover dashboard" : String(r.status));
      const update = await r.json();
      const change = update.live;
      if (change.kind === "whole") lines = change.html.split("\n");
      else if (change.kind === "edits") {
        try {
          lines = edited(lines, change.edits);
        } catch (e) {
          version = null; // ask for the whole part next time
          throw e;
        }
      }
      version = update.version;
      if (change.kind !== "same") live.innerHTML = lines.join("\n");
      const s = update.sample;
      if (s && (samples.length === 0 || s.at_ms > samples[samples.length - 1].at_ms)) {
        samples.push(s);
        if (samples.length > 5000) samples.shift();
        drawBoth(samples);
      }
      times(live, s ? s.at_ms / 1000 : now());
      connection.textContent = "live";
      connection.className = "meta";
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    } catch (e) {
      connection.textContent = "not updating (" + e.message + ")";
      connection.className = "meta lost";
    }
    setTimeout(poll, every);
  };
  setTimeout(poll, every);
}

function worker() {
  const log = document.getElementById("log");
  const connection = document.getElementById("connection");
  const url = document.body.dataset.log;
  let offset = Number(log.dataset.offset || 0);
  const follow = async () => {
    try {
      const r = await fetch(url + "?from=" + offset, { credentials: "same-origin" });
      if (!r.ok) throw new Error(String(r.status));
      const chunk = await r.json();
      if (chunk.from > offset) log.textContent += "\n[… " + (chunk.from - offset) + " bytes skipped …]\n";
      if (chunk.text) {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.textContent += chunk.text;
        if (atEnd) log.scrollTop = log.scrollHeight;
      }
      offset = chunk.to;
      log.dataset.offset = String(offset);
      connection.textContent = "following";
      connection.className = "meta";
    } catch (e) {
      connection.textContent = "log unavailable (" + e.message + ")";
      connection.className = "meta lost";
    }
    setTimeout(follow, 1000);
  };
  setTimeout(follow, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "worker") worker();
  else pool();
});
