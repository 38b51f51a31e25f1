// The dashboard's live parts. Everything else works without JavaScript: pages are rendered on the
// server, and this only follows a job's or a study's event stream (GET /v1/.../events) while the page
// is open, then swaps in the server's final rendering when it ends.
"use strict";

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
// A plot is re-rendered by the server on each request: ask for a new one at most this often.
const PLOT_REFRESH_MS = 2000;

// As Python's format(x, ".4g"), so that live rows read like the server's.
function number(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (value === 0) return "0";
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  if (exponent < -4 || exponent >= digits) {
    const [mantissa, power] = value.toExponential(digits - 1).split("e");
    const sign = power.startsWith("-") ? "-" : "+";
    return `${mantissa.replace(/\.?0+$/, "")}e${sign}${power.replace(/^[-+]/, "").padStart(2, "0")}`;
  }
  const fixed = value.toPrecision(digits);
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

// As the server prints times: "2025-01-31 12:00:00 UTC".
function utc(iso) {
  return `${new Date(iso).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

function setStatus(data) {
  const badge = document.querySelector("#status .badge");
  if (badge) {
    badge.textContent = data.status;
    badge.className = `badge badge-${data.status}`;
  }
  const started = document.getElementById("started");
  if (started && data.status === "running" && data.at) started.textContent = utc(data.at);
}

function setProgress(done, total, text) {
  const bar = document.getElementById("progress");
  if (bar) {
    bar.max = total;
    bar.value = done;
  }
  const label = document.getElementById("progress-text");
  if (label) label.textContent = text;
}

// The finished page, as the server renders it now (result, weights, every plot), replaces this one's
// content in place: no reload, so anything else the page holds survives.
async function showFinalPage(main) {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (response.redirected) {
    // Sent to sign in (the key was revoked meanwhile): go there, as a click would.
    window.location.assign(response.url);
    return;
  }
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("main");
  if (fresh) main.replaceChildren(...fresh.childNodes);
}

function plotRefresher(figure) {
  let last = 0;
  let timer = null;
  let version = 0;
  return function refresh(epoch) {
    version = epoch;
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      const url = `${figure.dataset.src}?epoch_seen=${version}`;
      const loading = new Image();
      loading.onload = () => {
        figure.querySelector("img").src = url;
        figure.hidden = false;
        const pending = document.getElementById("plots-pending");
        if (pending) pending.hidden = true;
      };
      loading.src = url;
    }, Math.max(0, last + PLOT_REFRESH_MS - Date.now()));
  };
}

function epochRow(table, data) {
  const metric = table.dataset.metric;
  const row = document.createElement("tr");
  row.dataset.epoch = String(data.epoch);
  const heading = document.createElement("th");
  heading.scope = "row";
  heading.textContent = String(data.epoch);
  row.append(heading);
  const cells = [
    number(data.train_data_loss),
    number(data.val_data_loss),
    number(data[metric]),
    number(data.l1_penalty),
    number(data.l2_penalty),
    percent(data.zero_fraction),
    number(data.seconds, 3),
  ];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  return row;
}

function addEpoch(data, refreshPlot) {
  setProgress(data.epoch, data.total_epochs, `Epoch ${data.epoch} of ${data.total_epochs}`);
  const table = document.getElementById("epochs");
  if (table) {
    const body = table.tBodies[0];
    const row = epochRow(table, data);
    const existing = body.querySelector(`tr[data-epoch="${data.epoch}"]`);
    if (existing) {
      existing.replaceWith(row);
    } else {
      // Newest first, as the server renders it.
      const later = [...body.rows].find((other) => Number(other.dataset.epoch) < data.epoch);
      body.insertBefore(row, later || null);
    }
    const empty = document.getElementById("epochs-empty");
    if (empty) empty.hidden = true;
  }
  if (refreshPlot) refreshPlot(data.epoch);
}

function follow(main) {
  const url = main.dataset.events;
  if (!url || typeof EventSource === "undefined") return;
  const figure = document.getElementById("plot-learning_curves");
  const refreshPlot = figure && figure.dataset.src ? plotRefresher(figure) : null;
  const source = new EventSource(url);
  source.addEventListener("epoch", (event) => addEpoch(JSON.parse(event.data), refreshPlot));
  source.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    setProgress(data.done, data.total, `${data.done} of ${data.total} fits`);
  });
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    setStatus(data);
    if (TERMINAL.has(data.status)) {
      // The stream ends after a terminal status; closing it stops the browser from reconnecting.
      source.close();
      showFinalPage(main);
    }
  });
}

// The New job form: the dataset picker writes its choice into the spec, so the text is what is sent.
function linkDatasetPicker(form) {
  const picker = form.querySelector("#dataset");
  const spec = form.querySelector("#spec");
  if (!picker || !spec) return;
  const parsed = () => {
    try {
      const value = JSON.parse(spec.value);
      return value && typeof value === "object" && !Array.isArray(value) ? value : null;
    } catch {
      return null;
    }
  };
  picker.addEventListener("change", () => {
    const value = parsed();
    if (picker.value && value) {
      value.dataset = picker.value;
      spec.value = JSON.stringify(value, null, 2);
    }
  });
  spec.addEventListener("input", () => {
    const value = parsed();
    if (picker.value && value && value.dataset !== picker.value) picker.value = "";
  });
  // One click, one job: the button waits for the answer (and comes back when the page is shown again).
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", () => {
    button.disabled = true;
  });
  window.addEventListener("pageshow", () => {
    button.disabled = false;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const main = document.querySelector("main[data-live]");
  if (main) follow(main);
  const form = document.getElementById("new-job");
  if (form) linkDatasetPicker(form);
});
