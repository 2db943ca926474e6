// The cumulo dashboard's live parts: poll the /api/ JSON and update the page in place.
"use strict";
const POLL_MS = 2000;

async function getJSON(path) {
  const answer = await fetch(path, { credentials: "same-origin" });
  if (!answer.ok) throw new Error(path + ": HTTP " + answer.status);
  return answer.json();
}

function stamp() {
  const live = document.getElementById("live");
  if (live) live.textContent = "live · " + new Date().toLocaleTimeString();
}

function setField(row, field, value) {
  const cell = row && row.querySelector('[data-field="' + field + '"]');
  if (cell && cell.textContent !== String(value)) cell.textContent = value;
}

const refreshers = {
  async functions() {
    for (const f of await getJSON("/api/functions")) {
      const row = document.querySelector('tr[data-function="' + CSS.escape(f.name) + '"]');
      for (const field of ["replicas", "invocations", "errors", "coldStarts"]) setField(row, field, f[field]);
    }
  },
  async graph() {
    for (const edge of (await getJSON("/api/graph")).edges) {
      const label = document.getElementById("edge-" + edge.from + "->" + edge.to);
      if (label) label.textContent = edge.count;
    }
  },
  async runs() {
    const runs = await getJSON("/api/runs");
    for (const run of runs) {
      const row = document.querySelector('tr[data-run="' + CSS.escape(run.id) + '"]');
      if (!row) continue;
      if (row.className !== run.status) { location.reload(); return; }
      if (run.progress !== null) setField(row, "progress", Math.round(run.progress) + "%");
    }
    if (runs.length !== document.querySelectorAll("tr[data-run]").length) location.reload();
  },
  async run() {
    const log = document.getElementById("log");
    const run = await getJSON("/api/runs/" + encodeURIComponent(log.dataset.run));
    const answer = await fetch("/api/runs/" + encodeURIComponent(log.dataset.run) + "/log");
    log.textContent = await answer.text();
    if (run.status !== "running") location.reload();
  },
};

function poll() {
  const refresh = refreshers[document.body.dataset.live];
  if (!refresh) return;
  const tick = () => refresh().then(stamp).catch((e) => console.warn(e)).finally(() => setTimeout(tick, POLL_MS));
  setTimeout(tick, POLL_MS);
}

function epoch(local) {
  return local ? new Date(local).getTime() / 1000 : undefined;
}

function wireRedrive() {
  for (const button of document.querySelectorAll("button.redrive")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      const answer = await fetch(button.dataset.url, { method: "POST", headers: { "X-Cumulo-UI": "1" } });
      const done = await answer.json();
      const note = document.createElement("span");
      note.className = "muted redriven";
      note.textContent = answer.ok ? "redriven → offset " + done.newOffset : "failed: " + (done.detail || answer.status);
      button.replaceWith(note);
    });
  }
}

function wireReplay() {
  const form = document.getElementById("replay");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const body = { trigger: fields.get("trigger") };
    if (fields.get("fromOffset")) body.fromOffset = Number(fields.get("fromOffset"));
    else if (fields.get("fromTime")) body.fromTime = epoch(fields.get("fromTime"));
    else body.fromOffset = 0;
    const answer = await fetch("/api/replay", {
      method: "POST", headers: { "Content-Type": "application/json", "X-Cumulo-UI": "1" }, body: JSON.stringify(body),
    });
    const done = await answer.json();
    document.getElementById("replayed").textContent = answer.ok ? done.replayed + " event(s) will be delivered again" : "failed: " + done.detail;
  });
}

function openLinkedEvent() {
  const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === "DETAILS") target.open = true;
}

wireRedrive();
wireReplay();
openLinkedEvent();
poll();
