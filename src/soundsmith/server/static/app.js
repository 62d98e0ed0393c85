// soundsmith page: generate, listen, compare. Talks only to this server's /v1 API; no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 300;
const state = { models: {}, limits: {}, compare: [null, null], busy: false, listenClip: null, listenLoading: null };

// -- API ----------------------------------------------------------------------------------------------------
function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = localStorage.getItem("soundsmith-key");
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

class ApiError extends Error {
  constructor(status, message, field) { super(message); this.status = status; this.field = field; }
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  let response;
  try {
    response = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, "cannot reach the server (" + e.message + ")", null);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const err = (body && body.error) || {};
    throw new ApiError(response.status, err.message || ("HTTP " + response.status), err.field || null);
  }
  return body;
}

// Audio and images: direct URLs, or blob URLs fetched with the key when the server asks for one.
async function mediaUrl(path) {
  if (!localStorage.getItem("soundsmith-key")) return path;
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new ApiError(response.status, "cannot load " + path, null);
  return URL.createObjectURL(await response.blob());
}

// -- errors and progress ------------------------------------------------------------------------------------
function showError(err) {
  const box = $("error");
  document.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = (err.status ? "Error " + err.status + ": " : "Error: ") + err.message;
  box.hidden = false;
  if (err.field && $(err.field)) $(err.field).setAttribute("aria-invalid", "true");
}

function setBusy(busy, text) {
  state.busy = busy;
  $("generate").disabled = busy;
  $("generate").textContent = busy ? "Generating…" : "Generate";
  $("progress").textContent = text || "";
}

// -- the form -----------------------------------------------------------------------------------------------
function readForm() {
  const body = { prompt: $("prompt").value, model: $("model").value || undefined };
  const number = (id, int) => {
    const raw = $(id).value.trim();
    if (raw === "") return undefined;
    return int ? parseInt(raw, 10) : parseFloat(raw);
  };
  for (const [id, int] of [["duration", false], ["seed", true], ["steps", true], ["guidance", false],
                           ["num_candidates", true], ["temperature", false]]) {
    const v = number(id, int);
    if (v !== undefined && !Number.isNaN(v) && !$(id).closest("[hidden]")) body[id] = v;
  }
  const negative = $("negative_prompt").value.trim();
  if (negative && !$("negative_prompt").closest("[hidden]")) body.negative_prompt = negative;
  return body;
}

function fillForm(request, seed) {
  $("prompt").value = request.prompt || "";
  if (request.model && state.models[request.model]) { $("model").value = request.model; modelChanged(); }
  for (const id of ["duration", "steps", "guidance", "num_candidates", "temperature", "negative_prompt"]) {
    if (request[id] !== undefined && request[id] !== null) $(id).value = request[id];
  }
  $("seed").value = seed === undefined ? "" : seed;
}

function modelChanged() {
  const info = state.models[$("model").value];
  if (!info) return;
  document.querySelectorAll(".option").forEach((el) => { el.hidden = !info.options.includes(el.dataset.option); });
  $("duration").placeholder = info.default_duration;
}

async function generate(body) {
  if (state.busy) return;
  showError(null);
  setBusy(true, "sending…");
  const t0 = performance.now();
  try {
    let job = await api("/v1/generate", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const limitMs = ((state.limits.timeout_s || 300) + 60) * 1000;
    while (job.status === "queued" || job.status === "running") {
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      setBusy(true, job.status === "queued" ? "queued (position " + (job.position || 1) + ") · " + secs + " s"
                                           : "generating · " + secs + " s");
      if (performance.now() - t0 > limitMs) throw new ApiError(0, "gave up waiting for job " + job.id, null);
      await new Promise((r) => setTimeout(r, POLL_MS));
      job = await api(job.url);
    }
    const item = await renderJob(job);
    $("results").prepend(item);
    if (job.status === "failed") throw new ApiError(0, job.error, null);
    setBusy(false, "done in " + ((performance.now() - t0) / 1000).toFixed(1) + " s");
  } catch (err) {
    setBusy(false, "");
    showError(err);
  }
}

// -- results ------------------------------------------------------------------------------------------------
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function slug(text) { return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40); }

function describe(job) {
  const r = job.request || {};
  const parts = [job.model];
  if (job.meta && job.meta.family) parts.push(job.meta.family);
  if (r.duration) parts.push(r.duration + " s");
  if (r.steps) parts.push(r.steps + " steps");
  if (r.guidance !== null && r.guidance !== undefined) parts.push("guidance " + r.guidance);
  if (r.temperature) parts.push("temperature " + r.temperature);
  if (r.negative_prompt) parts.push("not: " + r.negative_prompt);
  if (job.started && job.finished) parts.push("took " + (job.finished - job.started).toFixed(1) + " s");
  parts.push(new Date(job.created * 1000).toLocaleString());
  return parts.join(" · ");
}

async function renderClip(job, clip, forCompare) {
  const box = el("div", { class: "clip" });
  const img = el("img", { alt: "spectrogram of seed " + clip.seed, loading: "lazy" });
  const audio = el("audio", { controls: "", preload: "metadata" });
  const tools = el("div", { class: "tools" });
  tools.append(el("span", { class: "seed" }, "seed " + clip.seed));
  const name = "soundsmith-" + slug(job.prompt) + "-seed" + clip.seed + ".wav";
  const download = el("a", { download: name, class: "download" }, "download");
  tools.append(download);
  if (!forCompare) {
    const again = el("button", { type: "button", title: "fill the form with this take's settings and seed" }, "again");
    again.onclick = () => { fillForm(job.request, clip.seed); $("num_candidates").value = 1; $("prompt").focus(); };
    const vary = el("button", { type: "button", title: "same settings, a new random seed" }, "vary");
    vary.onclick = () => { const r = Object.assign({}, job.request); delete r.seed; r.num_candidates = 1; generate(r); };
    const a = el("button", { type: "button", class: "to-a" }, "A");
    const b = el("button", { type: "button", class: "to-b" }, "B");
    a.onclick = () => setCompare(0, job, clip);
    b.onclick = () => setCompare(1, job, clip);
    tools.append(again, vary, a, b);
  }
  box.append(img, audio, tools);
  try {
    audio.src = await mediaUrl(clip.url);
    download.href = audio.src;
    img.src = await mediaUrl(clip.spectrogram_url);
  } catch (err) { showError(err); }
  return box;
}

async function renderJob(job, forCompare, onlyClip) {
  const item = el(forCompare ? "div" : "li", { class: "job " + job.status, "data-job": job.id });
  item.append(el("div", { class: "prompt" }, job.prompt));
  item.append(el("div", { class: "meta" }, describe(job)));
  if (job.status === "failed") item.append(el("div", { class: "error" }, job.error));
  else if (job.status !== "done") item.append(el("div", { class: "meta" }, job.status + "…"));
  for (const clip of job.clips || []) {
    if (onlyClip && clip.index !== onlyClip.index) continue;
    item.append(await renderClip(job, clip, forCompare));
  }
  return item;
}

async function setCompare(slot, job, clip) {
  state.compare[slot] = { job, clip };
  const slots = $("compare-slots");
  slots.textContent = "";
  for (const [i, entry] of state.compare.entries()) {
    const cell = el("div");
    cell.append(el("span", { class: "slot-label" }, i === 0 ? "A" : "B"));
    if (entry) cell.append(await renderJob(entry.job, true, entry.clip));
    else cell.append(el("span", { class: "muted" }, "press " + (i === 0 ? "A" : "B") + " on a take"));
    slots.append(cell);
  }
  $("compare").hidden = false;
}

// A job still queued or running when the history was loaded (another tab, a reload): refresh it when it ends.
async function watch(job, item) {
  const limitMs = ((state.limits.timeout_s || 300) + 600) * 1000;
  const t0 = performance.now();
  while ((job.status === "queued" || job.status === "running") && performance.now() - t0 < limitMs) {
    await new Promise((r) => setTimeout(r, 1000));
    try { job = await api(job.url); } catch (err) { return; }
  }
  if (item.isConnected) item.replaceWith(await renderJob(job));
}

async function loadHistory() {
  const q = encodeURIComponent($("search").value.trim());
  const { jobs } = await api("/v1/jobs?limit=50&q=" + q);
  const list = $("results");
  const items = [];
  for (const job of jobs) {
    const item = await renderJob(job);
    items.push(item);
    if (job.status === "queued" || job.status === "running") watch(job, item);
  }
  list.replaceChildren(...items);
}

// -- listening test: one blind clip at a time, OVL and REL from 1 to 100 ----------------------------------------
// One request at a time: opening the panel and pressing "next" together must not load two clips, and the sliders
// are reset before the clip is shown, so a rating moved after the clip appears is the one sent.
function nextClip() {
  if (!state.listenLoading) state.listenLoading = loadClip().finally(() => { state.listenLoading = null; });
  return state.listenLoading;
}

async function loadClip() {
  const rater = $("rater").value.trim();
  if (!rater) { $("listen-state").textContent = "type your name first"; $("rater").focus(); return; }
  localStorage.setItem("soundsmith-rater", rater);
  $("listen-clip").hidden = true;  // shown again once the new clip and fresh sliders are in place
  try {
    const next = await api("/v1/listening/next?rater=" + encodeURIComponent(rater));
    state.listenClip = next.clip;
    if (!next.clip) {
      $("listen-state").textContent = "nothing left to rate: generate more takes, or export the CSV";
      return;
    }
    const src = await mediaUrl(next.audio_url);
    for (const id of ["ovl", "rel"]) { $(id).value = 50; $(id + "-value").textContent = "50"; }
    $("listen-prompt").textContent = next.prompt;
    $("listen-audio").src = src;
    $("listen-state").textContent = next.remaining + " clip(s) left to rate";
    $("listen-clip").hidden = false;
  } catch (err) { showError(err); }
}

async function submitRating() {
  try {
    await api("/v1/ratings", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ clip: state.listenClip, ovl: +$("ovl").value, rel: +$("rel").value,
                             rater: $("rater").value.trim() }),
    });
    await nextClip();
  } catch (err) { showError(err); }
}

async function downloadCsv() {
  try {
    const response = await fetch("/v1/ratings.csv", { headers: headers() });
    if (!response.ok) throw new ApiError(response.status, "cannot export the ratings", null);
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: "soundsmith-ratings.csv" });
    link.click();
  } catch (err) { showError(err); }
}

// -- start --------------------------------------------------------------------------------------------------
function init() {
  $("api-key").value = localStorage.getItem("soundsmith-key") || "";
  $("api-key").addEventListener("change", () => {
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem("soundsmith-key", key); else localStorage.removeItem("soundsmith-key");
    connect();
  });
  $("generate-form").onsubmit = (e) => { e.preventDefault(); generate(readForm()); };
  $("model").onchange = modelChanged;
  $("rater").value = localStorage.getItem("soundsmith-rater") || "";
  $("listen").addEventListener("toggle", () => { if ($("listen").open && $("rater").value.trim()) nextClip(); });
  $("listen-next").onclick = nextClip;
  $("rate").onclick = submitRating;
  $("ratings-csv").onclick = downloadCsv;
  for (const id of ["ovl", "rel"]) $(id).oninput = () => { $(id + "-value").textContent = $(id).value; };
  $("compare-clear").onclick = () => { state.compare = [null, null]; $("compare").hidden = true; };
  let timer = null;
  $("search").oninput = () => { clearTimeout(timer); timer = setTimeout(() => loadHistory().catch(showError), 250); };
  connect();
}

async function connect() {
  showError(null);
  try {
    const health = await api("/health");
    if (health.auth) $("key-box").open = !localStorage.getItem("soundsmith-key");
    const info = await api("/v1/models");
    state.limits = info.limits;
    $("model").replaceChildren();
    for (const m of info.models) {
      state.models[m.name] = m;
      $("model").append(el("option", { value: m.name }, m.name + " (" + m.family + ")"));
    }
    $("model").value = info.default;
    $("duration").max = info.limits.max_duration;
    $("steps").max = info.limits.max_steps;
    $("num_candidates").max = info.limits.max_candidates;
    $("prompt").maxLength = info.limits.max_prompt_chars;
    modelChanged();
    $("server-state").textContent = "soundsmith " + health.version + " · " + info.models.length + " model(s)";
    await loadHistory();
  } catch (err) {
    $("server-state").textContent = "not connected";
    showError(err);
  }
}

document.addEventListener("DOMContentLoaded", init);
