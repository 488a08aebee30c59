// deepdive's page: upload one recording to /api/analyze and show what comes back. No framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const pct = (p) => (100 * p).toFixed(p >= 0.1 ? 0 : 1) + "%";
let objectUrl = null;
let duration = 0;
let current = null;  // the file shown, analysed again when the frequency axis changes
let converted = false;  // the player holds the server's playable copy of `current`

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

async function analyze(file) {
  current = file;
  $("error").hidden = true;
  $("results").hidden = true;
  $("status").textContent = `Listening to ${file.name} …`;
  const body = new FormData();
  body.append("file", file);
  let response;
  try {
    const query = new URLSearchParams();
    if ($("fmax").value) query.set("fmax", $("fmax").value);
    if ($("recall").value) query.set("recall", $("recall").value);
    const q = query.toString();
    response = await fetch("/api/analyze" + (q ? `?${q}` : ""), { method: "POST", body });
  } catch (err) {
    $("status").textContent = "";
    showError(`The server could not be reached (${err.message}).`);
    return;
  }
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  $("status").textContent = "";
  if (!response.ok) {
    const detail = data && data.detail;
    const text = typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : response.statusText;
    showError(`${file.name} was not analysed (${response.status}): ${text}`);
    return;
  }
  render(data, file);
}

function render(data, file) {
  $("filename").textContent = data.file;
  const s = data.spectrogram;
  duration = s.duration_s;
  $("facts").textContent = `${duration.toFixed(1)} s at ${s.sr.toLocaleString()} Hz`;

  // spectrogram and the events along its time axis
  $("spectrogram").src = s.image;
  const area = $("plot-area");
  Object.assign(area.style, {
    left: `${100 * s.plot.left}%`, width: `${100 * (s.plot.right - s.plot.left)}%`,
    top: `${100 * s.plot.top}%`, height: `${100 * (s.plot.bottom - s.plot.top)}%`,
  });
  const marks = $("events");
  marks.replaceChildren();
  const rows = document.querySelector("#events-table tbody");
  rows.replaceChildren();
  data.events.forEach((e, i) => {
    const start = Math.max(0, e.start_s), end = Math.min(duration, e.end_s);
    const mark = el("div", {
      class: "event", title: `right whale ${start.toFixed(1)}-${end.toFixed(1)} s, peak ${pct(e.peak)}`,
      style: `left:${100 * start / duration}%;width:${100 * (end - start) / duration}%`,
    }, el("span", {}, `${i + 1}`));
    mark.addEventListener("click", () => seek(start));
    marks.append(mark);
    const row = el("tr", {}, el("td", {}, `${i + 1}`), el("td", {}, start.toFixed(1)), el("td", {}, end.toFixed(1)),
                   el("td", {}, pct(e.peak)), el("td", {}, pct(e.mean)));
    row.addEventListener("click", () => seek(start));
    rows.append(row);
  });
  $("events-table").hidden = data.events.length === 0;
  $("no-events").hidden = data.events.length > 0;

  // audio player on the local file (nothing is downloaded again)
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(file);
  converted = false;
  $("player-note").hidden = true;
  $("player").src = objectUrl;

  // "none of these": the recording sounds like none of the species the model knows
  const unknown = $("unknown");
  unknown.hidden = data.known !== false;
  unknown.textContent = data.known === false
    ? `None of the species it knows (novelty ${(data.novelty ?? 1).toFixed(2)}): the ranking below is only what it sounds most like.`
    : "";
  $("podium").classList.toggle("faded", data.known === false);

  // podium: gold, silver, bronze
  const podium = $("podium");
  podium.replaceChildren();
  ["gold", "silver", "bronze"].forEach((medal, k) => {
    const r = data.ranking[k];
    if (!r) return;
    podium.append(el("li", { class: medal, "data-species": r.species },
      el("div", { class: "place" }, `${k + 1}`), el("div", { class: "name" }, r.species),
      el("div", { class: "sci" }, r.scientific_name), el("div", { class: "prob" }, pct(r.probability))));
  });

  // the full ranking as bars
  const ranking = $("ranking");
  ranking.replaceChildren();
  for (const r of data.ranking) {
    ranking.append(el("li", { title: r.scientific_name },
      el("span", { class: "species" }, r.species),
      el("div", { class: "bar" }, el("div", { style: `width:${100 * r.probability}%` })),
      el("span", { class: "pct" }, pct(r.probability))));
  }

  const d = data.detection;
  $("detection").replaceChildren(
    el("span", { class: d.detected ? "yes" : "no" }, d.detected ? "Right whale detected" : "No right whale detected"),
    ` — likeliest window ${pct(d.probability)} (threshold ${pct(d.threshold)}), ${data.events.length} event(s).`);
  $("results").hidden = false;
}

// Browsers play neither 2 kHz audio (the right-whale challenge's rate) nor AIFF: ask the server for a WAV they play.
async function playableCopy() {
  if (converted || !current) return;
  converted = true;
  const body = new FormData();
  body.append("file", current);
  const response = await fetch("/api/audio", { method: "POST", body }).catch(() => null);
  if (!response || !response.ok) return;
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(await response.blob());
  $("player").src = objectUrl;
  $("player-note").hidden = false;
}

function seek(t) {
  const player = $("player");
  player.currentTime = t;
  player.play().catch(() => {});
}

function followPlayer() {
  const head = $("playhead");
  if (!duration) return;
  head.style.display = "block";
  head.style.left = `${100 * Math.min(1, $("player").currentTime / duration)}%`;
}

window.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { if (e.target.files.length) analyze(e.target.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) analyze(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("player").addEventListener("timeupdate", followPlayer);
  $("player").addEventListener("error", playableCopy);
  $("fmax").addEventListener("change", () => { if (current) analyze(current); });
  $("recall").addEventListener("change", () => { if (current) analyze(current); });
  fetch("/api/health").then((r) => r.json()).then((h) => {
    if (h.max_upload_mb) $("limit").textContent = `${h.max_upload_mb} MB`;
  }).catch(() => {});
});
