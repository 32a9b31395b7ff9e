// The returns-bench page: uploads, live results, the review queue, the results table.
// Plain JavaScript, no build step; it talks only to this server's /v1 API.
"use strict";

const PER_PAGE = 25;
// Photos per upload request (the server takes at most 100, within its body limit).
const UPLOAD_CHUNK = 20;

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("autorma-token") || "",
  classes: [],
  cards: new Map(),    // key -> card element (this session's uploads)
  seen: new Map(),     // key -> result or dead letter not (yet) matched to an upload here
  resultsPage: 1,
  reviewShown: PER_PAGE,
  thumbs: new Map(),   // "photo:<key>" or "catalogue:<sku>" -> object URL of the image fetched
};

// --- the API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let code = "http_" + response.status, message = response.statusText;
    try { const body = await response.json(); code = body.error.code; message = body.error.message; } catch (_) { /* not JSON */ }
    if (response.status === 401) showLogin("");
    throw new ApiError(response.status, code, message);
  }
  return response;
}

const json = async (path, options) => (await api(path, options)).json();

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// --- start and sign-in -----------------------------------------------------------------

function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("autorma-token", state.token);
  start();
});

async function start() {
  let model;
  try {
    model = await json("/v1/model");
  } catch (e) {
    if (e.status === 401) return showLogin(state.token ? "That token was refused." : "");
    $("model").textContent = "server unreachable: " + e.message;
    return setTimeout(start, 3000);
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("model").textContent = `model ${model.name} v${model.version} · ${model.execution_provider}`;
  state.classes = model.classes;
  const select = $("filter-label");
  select.length = 1;
  for (const c of model.classes) select.add(new Option(c, c));
  followEvents();
  refreshReview();
  refreshResults();
}

// --- uploads and this session's cards ----------------------------------------------------

function card(file) {
  const el = document.createElement("div");
  el.className = "card";
  el.dataset.testid = "card";
  el.innerHTML = `<img alt=""><div class="meta"><div class="name"></div><span class="chip pending">uploading</span>
    <span class="confidence"></span></div>`;
  el.querySelector("img").src = URL.createObjectURL(file);
  el.querySelector(".name").textContent = file.name;
  el.querySelector(".name").title = file.name;
  $("cards").prepend(el);
  $("session").hidden = false;
  $("session-count").textContent = $("cards").children.length;
  return el;
}

function setChip(el, cls, text) {
  const chip = el.querySelector(".chip");
  chip.className = "chip " + cls;
  chip.textContent = text;
}

function showResult(el, result) {
  el.dataset.label = result.label;
  el.dataset.decision = result.decision;
  setChip(el, result.decision, `${result.label} · ${result.decision}`);
  el.querySelector(".confidence").textContent = ` ${(result.confidence * 100).toFixed(1)} %`;
}

function showDeadLetter(el, record) {
  el.dataset.decision = "failed";
  setChip(el, "failed", `failed: ${record.reason}`);
  el.title = record.detail;
}

async function upload(files) {
  $("upload-error").textContent = "";
  const images = [...files].filter((f) => /^image\//.test(f.type) || /\.(jpe?g|png|webp)$/i.test(f.name));
  if (images.length < files.length) $("upload-error").textContent = `${files.length - images.length} file(s) skipped: not JPEG, PNG or WebP.`;
  for (let i = 0; i < images.length; i += UPLOAD_CHUNK) {
    const chunk = images.slice(i, i + UPLOAD_CHUNK);
    const cards = chunk.map(card);
    const form = new FormData();
    for (const f of chunk) form.append("photos", f, f.name);
    try {
      const answer = await json("/v1/uploads", { method: "POST", body: form });
      answer.uploads.forEach((u, j) => {
        const el = cards[j];
        el.dataset.key = u.key;
        state.cards.set(u.key, el);
        setChip(el, "pending", "classifying…");
        const early = state.seen.get(u.key);
        if (early) early.reason ? showDeadLetter(el, early) : showResult(el, early);
      });
    } catch (e) {
      for (const el of cards) setChip(el, "failed", "not uploaded");
      $("upload-error").textContent = `Upload failed (${e.code}): ${e.message}`;
    }
  }
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  upload(e.dataTransfer.files);
});
$("files").addEventListener("change", (e) => { upload(e.target.files); e.target.value = ""; });

// --- live results (server-sent events, read with fetch so the token can be sent) -----------

async function followEvents() {
  const live = $("live");
  try {
    const response = await api("/v1/events", { headers: { Accept: "text/event-stream" } });
    live.className = "live";
    live.textContent = "live";
    // Whatever happened while away shows now.
    refreshReview();
    refreshResults();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        handleEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (e) {
    if (e.status === 401) return;
  }
  live.className = "live off";
  live.textContent = "reconnecting";
  setTimeout(followEvents, 2000);
}

function handleEvent(text) {
  let type = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return; // a keep-alive
  const record = JSON.parse(data);
  const key = type === "result" ? record.item.key : record.event.key;
  const el = state.cards.get(key);
  if (type === "result") {
    if (el) showResult(el, record); else remember(key, record);
    if (record.decision === "review") refreshReviewSoon();
    refreshResultsSoon();
  } else if (type === "dead_letter") {
    if (el) showDeadLetter(el, record); else remember(key, record);
  }
}

// A result may arrive before its upload's answer names its key: kept a while, the newest only.
const SEEN_MAX = 500;
function remember(key, record) {
  state.seen.set(key, record);
  if (state.seen.size > SEEN_MAX) state.seen.delete(state.seen.keys().next().value);
}

const later = (f, ms) => { let t = null; return () => { clearTimeout(t); t = setTimeout(f, ms); }; };
const refreshReviewSoon = later(() => refreshReview(), 300);
const refreshResultsSoon = later(() => refreshResults(), 300);

// --- thumbnails of photos not uploaded here, and catalogue photos --------------------------

function thumbnail(img, key) {
  return shown(img, "photo:" + key, () => "/v1/photos/" + encodeKey(key), "(no photo)");
}

// An image behind the token, fetched once per page and kept as an object URL.
async function shown(img, id, path, missing) {
  let url = state.thumbs.get(id);
  if (!url) {
    try {
      url = URL.createObjectURL(await (await api(path())).blob());
      state.thumbs.set(id, url);
    } catch (_) { img.alt = missing; return; }
  }
  img.src = url;
}

const encodeKey = (key) => key.split("/").map(encodeURIComponent).join("/");

const catalogueImage = (img, sku) =>
  shown(img, "catalogue:" + sku, () => "/v1/catalogue/" + encodeURIComponent(sku), "(no catalogue photo)");

// --- the review queue --------------------------------------------------------------------

async function refreshReview() {
  let page;
  try { page = await json("/v1/review" + query({ per_page: state.reviewShown })); } catch (_) { return; }
  $("review-count").textContent = page.total;
  $("review-empty").hidden = page.total > 0;
  $("review-more").hidden = page.total <= page.items.length;
  const list = $("review-list");
  const wanted = new Set(page.items.map((r) => r.item.key));
  for (const li of [...list.children]) if (!wanted.has(li.dataset.key)) li.remove();
  const present = new Set([...list.children].map((li) => li.dataset.key));
  page.items.forEach((result, i) => {
    if (!present.has(result.item.key)) list.insertBefore(reviewItem(result), list.children[i] || null);
  });
}

function reviewItem(result) {
  const li = document.createElement("li");
  li.className = "review-item";
  li.dataset.key = result.item.key;
  li.dataset.testid = "review-item";
  li.innerHTML = `<div class="photos"><img alt="the returned item"><figure class="catalogue" hidden>
      <img alt="the catalogue photo of the claimed product" data-testid="catalogue-photo">
      <figcaption>ordered: SKU <span class="sku"></span></figcaption></figure></div>
    <div><div class="key"></div>
    <div class="wrong-item" data-testid="wrong-item" hidden>Not what was ordered: claimed <b class="claimed"></b>,
      seen <b class="seen"></b><span class="return-ids"></span></div>
    <div class="product-check" data-testid="product-check" hidden></div>
    <div>model says <b class="label"></b> at <span class="confidence"></span></div>
    <div class="buttons"></div><div class="error"></div></div>`;
  const local = state.cards.get(result.item.key);
  if (local) li.querySelector("img").src = local.querySelector("img").src;
  else thumbnail(li.querySelector("img"), result.item.key);
  li.querySelector(".key").textContent = result.item.key;
  li.querySelector(".label").textContent = result.label;
  li.querySelector(".confidence").textContent = `${(result.confidence * 100).toFixed(1)} %`;
  // The customer's claim is their text: set as text, never as markup.
  const claim = result.claim && result.claim.claim;
  const ids = claim ? [claim.rma_id && `RMA ${claim.rma_id}`, claim.sku && `SKU ${claim.sku}`].filter(Boolean) : [];
  if (result.claim && result.claim.category === "mismatch") {
    const badge = li.querySelector(".wrong-item");
    badge.hidden = false;
    badge.querySelector(".claimed").textContent = claim.expected_label;
    badge.querySelector(".seen").textContent = result.label;
    badge.querySelector(".return-ids").textContent = ids.length ? ` (${ids.join(", ")})` : "";
  }
  // The product check compared the photo with the claimed SKU's catalogue photo: both side by
  // side (a check without a similarity could not compare, and shows nothing).
  const product = result.claim && result.claim.product;
  if (product && product.similarity != null) {
    const figure = li.querySelector(".catalogue");
    figure.hidden = false;
    figure.querySelector(".sku").textContent = result.claim.claim.sku;
    catalogueImage(figure.querySelector("img"), result.claim.claim.sku);
    const line = li.querySelector(".product-check");
    line.hidden = false;
    line.classList.toggle("mismatch", product.outcome === "mismatch");
    line.textContent = (product.outcome === "mismatch" ? "Not the ordered product" : "Looks like the ordered product")
      + ` (${[...ids, `similarity ${product.similarity.toFixed(2)}`].join(", ")})`;
  }
  const buttons = li.querySelector(".buttons");
  const button = (label, text, cls) => {
    const b = document.createElement("button");
    b.textContent = text;
    b.className = cls;
    b.dataset.label = label;
    b.addEventListener("click", () => correct(li, label));
    buttons.append(b);
  };
  button(result.label, `Confirm ${result.label}`, "confirm");
  for (const c of state.classes) if (c !== result.label) button(c, c, "other");
  return li;
}

async function correct(li, label) {
  for (const b of li.querySelectorAll("button")) b.disabled = true;
  try {
    await json("/v1/review/" + encodeKey(li.dataset.key), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ label, by: "returns-bench" }),
    });
    li.remove();
    const el = state.cards.get(li.dataset.key);
    if (el) setChip(el, "corrected", `${label} · corrected`);
    $("review-count").textContent = Math.max(0, Number($("review-count").textContent) - 1);
    refreshReview();
  } catch (e) {
    li.querySelector(".error").textContent = `Not saved (${e.code}): ${e.message}`;
    for (const b of li.querySelectorAll("button")) b.disabled = false;
  }
}

$("review-more").addEventListener("click", () => { state.reviewShown += PER_PAGE; refreshReview(); });

// --- all results ---------------------------------------------------------------------------

const filters = () => ({ label: $("filter-label").value, decision: $("filter-decision").value });

async function refreshResults() {
  let page;
  try { page = await json("/v1/results" + query({ ...filters(), page: state.resultsPage, per_page: PER_PAGE })); } catch (_) { return; }
  $("results-count").textContent = page.total;
  const body = $("results-body");
  body.replaceChildren(...page.items.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = "result-row";
    for (const [cls, text] of [["key", r.item.key], ["", r.label], ["", `${(r.confidence * 100).toFixed(1)} %`],
                               ["", r.decision], ["", new Date(r.processed_at).toLocaleString()]]) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
  const pages = Math.max(1, Math.ceil(page.total / PER_PAGE));
  $("page-info").textContent = `page ${page.page} of ${pages}`;
  $("prev").disabled = page.page <= 1;
  $("next").disabled = page.page >= pages;
}

for (const id of ["filter-label", "filter-decision"]) {
  $(id).addEventListener("change", () => { state.resultsPage = 1; refreshResults(); });
}
$("prev").addEventListener("click", () => { state.resultsPage -= 1; refreshResults(); });
$("next").addEventListener("click", () => { state.resultsPage += 1; refreshResults(); });

$("download").addEventListener("click", async () => {
  const blob = await (await api("/v1/results.csv" + query(filters()))).blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "results.csv";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
});

// --- tabs ------------------------------------------------------------------------------------

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    $("review").hidden = tab.dataset.tab !== "review";
    $("results").hidden = tab.dataset.tab !== "results";
  });
}

start();
