// reinforge web UI: feedback, jobs dashboard, grader playground. Plain JS, no dependencies.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};

// ---------------------------------------------------------------- session and fetch
// The API key is typed once into the login form and sent only to /ui/login, which answers with an
// HttpOnly, SameSite=Strict session cookie: no script can read it, and neither the URL nor the browser's
// storage ever holds the key. The session's CSRF token lives in this page's memory and goes with every
// state-changing request.
const Session = {
  csrf: null, who: "",

  async check() {
    const r = await fetch("/ui/session", { credentials: "same-origin" });
    if (r.ok) { const s = await r.json(); this.csrf = s.csrf_token; this.who = s.name || s.key_id; }
    else { this.csrf = null; this.who = ""; }
    this.show();
  },

  show() {
    $("#login-form").hidden = !!this.csrf;
    $("#session").hidden = !this.csrf;
    $("#session-who").textContent = this.csrf ? `signed in: ${this.who}` : "";
  },

  async login(key) {
    $("#login-error").textContent = "";
    const r = await fetch("/ui/login", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key }) });
    if (!r.ok) { $("#login-error").textContent = await errorText(r); return; }
    const s = await r.json();
    this.csrf = s.csrf_token; this.who = s.name || s.key_id;
    this.show();
    route();
  },

  async logout() {
    await fetch("/ui/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": this.csrf || "" } });
    this.csrf = null; this.who = "";
    this.show();
  },
};

async function errorText(r) {
  try { return (await r.json()).error.message; } catch (_) { return `${r.status}`; }
}

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = Session.csrf || "";
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(opts.json); }
  const r = await fetch(`/v1${path}`, { ...opts, headers, credentials: "same-origin" });
  if (!r.ok) {
    if (r.status === 401) { Session.csrf = null; Session.show(); }
    throw new Error(await errorText(r));
  }
  return opts.raw ? r.text() : r.json();
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $("#key-input").value.trim();
  $("#key-input").value = "";
  Session.login(key);
});
$("#logout").addEventListener("click", () => Session.logout());

// ---------------------------------------------------------------- routing
const pages = ["feedback", "rounds", "jobs", "graders", "files", "new-job", "chat", "studies"];
function route() {
  const [page, arg] = (location.hash.slice(1) || "feedback").split("/");
  for (const p of pages) $(`#page-${p}`).hidden = p !== page;
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  if (page === "feedback") Feedback.open(arg);
  if (page === "rounds") Rounds.open(arg);
  if (page === "jobs") Jobs.open(arg);
  if (page === "graders") Graders.open();
  if (page === "files") Files.open(); else if (page === "new-job") NewJob.open();  // workflow.js
  else if (page === "chat") Chat.open(arg && decodeURIComponent(arg));
  else if (page === "studies") Studies.open(arg && decodeURIComponent(arg));  // studies.js
}
window.addEventListener("hashchange", route);

// ---------------------------------------------------------------- (a) feedback
// what an item asks of its judges (an RLHF round's items say; others take any judgement)
const KIND_HINTS = { pairwise: "asks: which response is better (1 or 2, Enter; t for a tie)",
  ranking: "asks: a ranking of all the responses (1-9 best first, Enter; t for a tie)",
  thumbs: "asks: thumbs up or down on each response (arrows, + / -, Enter; t for no preference)" };
const Feedback = {
  queue: null, index: 0, ranking: [], thumbs: {}, highlight: 0,

  async open(queueId) {
    this.loadModels();
    const list = await api("/feedback/queues").catch(() => ({ data: [] }));
    const ul = $("#queue-list");
    ul.replaceChildren(...list.data.map((q) => el("li", { class: q.id === queueId ? "active" : "",
      "data-id": q.id, onclick: () => { location.hash = `feedback/${q.id}`; } }, `${q.name} (${q.judged}/${q.total})`)));
    if (queueId && (!this.queue || this.queue.id !== queueId)) await this.load(queueId);
  },

  async loadModels() {
    if ($("#nq-models").childElementCount) return;
    const models = await api("/models").catch(() => ({ data: [] }));
    $("#nq-models").replaceChildren(...models.data.map((m) =>
      el("label", { class: "hint" }, el("input", { type: "checkbox", value: m.id }), ` ${m.id}`), ));
  },

  async create() {
    $("#nq-error").textContent = "";
    const body = { name: $("#nq-name").value || "feedback" };
    let text = $("#nq-items").value.trim();
    const file = $("#nq-file").files[0];
    if (file) text = (await file.text()).trim();
    try {
      if (text) body.items = text.split("\n").filter((l) => l.trim()).map((l, i) => {
        try { return JSON.parse(l); } catch (e) { throw new Error(`line ${i + 1}: invalid JSON`); }
      });
      else {
        body.prompts = $("#nq-prompts").value.split("\n").map((s) => s.trim()).filter(Boolean);
        body.models = [...document.querySelectorAll("#nq-models input:checked")].map((c) => c.value);
        body.samples_per_model = Number($("#nq-samples").value || 1);
      }
      const q = await api("/feedback/queues", { method: "POST", json: body });
      location.hash = `feedback/${q.id}`;
    } catch (e) { $("#nq-error").textContent = e.message; }
  },

  async load(queueId) {
    this.queue = await api(`/feedback/queues/${queueId}`);
    const first = this.queue.items.findIndex((it) => !it.judged);
    this.show(first >= 0 ? first : 0);
  },

  item() { return this.queue.items[this.index]; },

  show(i) {
    this.index = Math.max(0, Math.min(i, this.queue.items.length - 1));
    const it = this.item();
    this.ranking = it.ranking ? [...it.ranking] : [];
    this.thumbs = { ...(it.thumbs || {}) };
    this.highlight = 0;
    $("#fb-empty").hidden = true;
    $("#fb-session").hidden = false;
    $("#fb-comment").value = it.comment || "";
    const prompt = Array.isArray(it.prompt) ? it.prompt.map((m) => `${m.role}: ${m.content}`).join("\n") : it.prompt;
    $("#fb-prompt").textContent = prompt;
    $("#fb-kind").textContent = KIND_HINTS[it.kind] || "";
    this.render();
  },

  render() {
    const it = this.item();
    const judged = this.queue.items.filter((x) => x.judged).length;
    const total = this.queue.items.length;
    $("#fb-progress").textContent = `${judged} / ${total} judged`;
    $("#fb-bar").max = total; $("#fb-bar").value = judged;
    $("#fb-position").textContent = `item ${this.index + 1} of ${total}` + (it.judged ? " (judged)" : "");
    $("#fb-done").hidden = judged < total;
    $("#fb-responses").replaceChildren(...it.responses.map((text, k) => {
      const r = this.ranking.indexOf(k);
      const t = this.thumbs[String(k)];
      const card = el("div", { class: "response" + (k === this.highlight ? " highlight" : "") + (t > 0 ? " up" : t < 0 ? " down" : ""),
        "data-index": k, onclick: () => this.pick(k) }, el("span", { class: "num" }, `${k + 1}`), text);
      if (r >= 0) card.append(el("span", { class: "rank" }, `#${r + 1}`));
      if (t) card.append(el("span", { class: "thumb" }, t > 0 ? "\u{1F44D}" : "\u{1F44E}"));
      if (it.sources && it.sources[k]) card.append(el("div", { class: "hint" }, it.sources[k]));
      return card;
    }));
    $("#fb-ranking").textContent = this.ranking.length
      ? "ranking: " + this.ranking.map((k) => k + 1).join(" > ") : "ranking: (press 1-9, best first)";
  },

  pick(k) {
    const n = this.item().responses.length;
    if (k >= n || this.ranking.includes(k)) return;
    this.ranking.push(k);
    if (this.ranking.length === n - 1) this.ranking.push([...Array(n).keys()].find((j) => !this.ranking.includes(j)));
    this.render();
  },

  thumb(v) {
    const key = String(this.highlight);
    this.thumbs[key] = this.thumbs[key] === v ? undefined : v;
    if (this.thumbs[key] === undefined) delete this.thumbs[key];
    this.render();
  },

  async submit() {
    const it = this.item();
    const complete = this.ranking.length === it.responses.length;
    if (!complete && !Object.keys(this.thumbs).length) { $("#fb-ranking").textContent = "rank the responses or give a thumb first"; return; }
    const asked = it.kind === "thumbs" ? Object.keys(this.thumbs).length > 0 : it.kind ? complete : true;
    if (!asked) { $("#fb-ranking").textContent = KIND_HINTS[it.kind]; return; }
    await this.send({ ranking: complete ? this.ranking : null, thumbs: Object.keys(this.thumbs).length ? this.thumbs : null,
      comment: $("#fb-comment").value || null });
  },

  // "t": no preference between the responses (a tie, or cannot tell), recorded as such
  async tie() { await this.send({ skip: true, comment: $("#fb-comment").value || null }); },

  async send(judgement) {
    const it = this.item();
    const saved = await api(`/feedback/items/${it.id}`, { method: "POST", json: judgement });
    Object.assign(it, saved);
    const next = this.queue.items.findIndex((x, j) => j > this.index && !x.judged);
    const any = this.queue.items.findIndex((x) => !x.judged);
    this.show(next >= 0 ? next : any >= 0 ? any : this.index);
    this.open(this.queue.id);
  },

  async exportPrefs() {
    const text = await api(`/feedback/queues/${this.queue.id}/export`, { raw: true });
    const pre = $("#export-output");
    pre.hidden = false; pre.textContent = text || "(nothing judged yet)";
    const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/jsonl" })),
      download: `${this.queue.id}-preferences.jsonl` });
    document.body.append(a); a.click(); a.remove();
  },

  key(ev) {
    if (!this.queue || $("#page-feedback").hidden) return;
    const typing = ["TEXTAREA", "INPUT"].includes(document.activeElement.tagName);
    if (typing) { if (ev.key === "Escape") document.activeElement.blur(); return; }
    const n = this.item().responses.length;
    if (/^[1-9]$/.test(ev.key)) this.pick(Number(ev.key) - 1);
    else if (ev.key === "ArrowRight") { this.highlight = (this.highlight + 1) % n; this.render(); }
    else if (ev.key === "ArrowLeft") { this.highlight = (this.highlight + n - 1) % n; this.render(); }
    else if (ev.key === "+" || ev.key === "=") this.thumb(1);
    else if (ev.key === "-") this.thumb(-1);
    else if (ev.key === "Backspace") { this.ranking.pop(); if (this.ranking.length === n - 1) this.ranking.pop(); this.render(); }
    else if (ev.key === "Enter") this.submit();
    else if (ev.key === "t") this.tie();
    else if (ev.key === "s" || ev.key === "n") this.show((this.index + 1) % this.queue.items.length);
    else if (ev.key === "p") this.show((this.index - 1 + this.queue.items.length) % this.queue.items.length);
    else if (ev.key === "c") $("#fb-comment").focus();
    else if (ev.key === "e") this.exportPrefs();
    else return;
    ev.preventDefault();
  },
};
$("#nq-create").addEventListener("click", () => Feedback.create());
$("#fb-submit").addEventListener("click", () => Feedback.submit());
$("#fb-undo").addEventListener("click", () => { Feedback.ranking.pop(); Feedback.render(); });
$("#fb-skip").addEventListener("click", () => Feedback.show(Feedback.index + 1));
$("#fb-tie").addEventListener("click", () => Feedback.tie());
$("#fb-export").addEventListener("click", () => Feedback.exportPrefs());
document.addEventListener("keydown", (ev) => Feedback.key(ev));

// ---------------------------------------------------------------- (b) jobs dashboard
const TERMINAL = ["succeeded", "failed", "cancelled"];
const Jobs = {
  jobId: null, metrics: [], since: 0, timer: null,

  async open(jobId) {
    clearTimeout(this.timer);
    if (jobId !== this.jobId) { this.jobId = jobId; this.metrics = []; this.since = 0; }
    await this.tick();
  },

  async tick() {
    if ($("#page-jobs").hidden) return;
    try {
      const jobs = await api("/fine_tuning/jobs?limit=100");
      $("#job-table tbody").replaceChildren(...jobs.data.map((j) => el("tr", {
        class: j.id === this.jobId ? "active" : "", "data-id": j.id, onclick: () => { location.hash = `jobs/${j.id}`; } },
        el("td", {}, j.id.slice(0, 14) + "…"), el("td", {}, j.method ? j.method.type : "supervised"),
        el("td", { class: `status-${j.status}` }, j.status))));
      let live = jobs.data.some((j) => !TERMINAL.includes(j.status));
      if (this.jobId) live = (await this.detail()) || live;
    } catch (e) { $("#job-empty").textContent = e.message; }
    this.timer = setTimeout(() => this.tick(), 2000);
  },

  async detail() {
    const id = this.jobId;
    const [job, m, events, ckpts] = await Promise.all([api(`/fine_tuning/jobs/${id}`),
      api(`/fine_tuning/jobs/${id}/metrics?since=${this.since}`), api(`/fine_tuning/jobs/${id}/events?limit=100`),
      api(`/fine_tuning/jobs/${id}/checkpoints?limit=50`)]);
    if (id !== this.jobId) return false;
    this.metrics.push(...m.data);
    if (m.data.length) this.since = m.data[m.data.length - 1].seq;
    $("#job-empty").hidden = true; $("#job-detail").hidden = false;
    $("#job-title").textContent = id;
    const fields = { status: job.status, model: job.model, method: job.method ? job.method.type : "",
      fine_tuned_model: job.fine_tuned_model || "–", trained_tokens: job.trained_tokens ?? "–",
      created: new Date(job.created_at * 1000).toLocaleString(), error: job.error ? job.error.message : "–" };
    $("#job-fields").replaceChildren(...Object.entries(fields).flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", { class: k === "status" ? `status-${v}` : "", id: `job-${k}` }, v)]));
    $("#job-pause").disabled = !["running", "queued"].includes(job.status);
    $("#job-resume").disabled = job.status !== "paused";
    $("#job-cancel").disabled = TERMINAL.includes(job.status);
    $("#job-chat").hidden = !job.fine_tuned_model; $("#job-chat").href = `#chat/${encodeURIComponent(job.fine_tuned_model || "")}`;
    $("#job-events").replaceChildren(...events.data.map((e) => el("li", { class: e.level },
      `${new Date(e.created_at * 1000).toLocaleTimeString()} ${e.message}`)));
    $("#job-checkpoints").replaceChildren(...ckpts.data.map((c) => el("li", {},
      `step ${c.step_number}: `, el("code", {}, c.fine_tuned_model_checkpoint))));
    this.chart();
    return !TERMINAL.includes(job.status);
  },

  chart() {
    const pts = (key) => this.metrics.filter((d) => d[key] !== undefined && d[key] !== null).map((d) => [d.step, d[key]]);
    let series = [
      { key: "train_mean_reward", name: "train reward", color: "#2f6fde", points: pts("train_mean_reward") },
      { key: "full_valid_mean_reward", name: "validation reward", color: "#e07b20", points: pts("full_valid_mean_reward") },
    ];
    let title = "Reward";
    if (!series.some((s) => s.points.length)) {
      title = "Loss";
      series = [{ key: "train_loss", name: "train loss", color: "#2f6fde", points: pts("train_loss") },
        { key: "full_valid_loss", name: "validation loss", color: "#e07b20", points: pts("full_valid_loss") }];
    }
    $("#chart-title").textContent = title;
    drawChart($("#reward-chart"), series);
  },

  async control(action) { await api(`/fine_tuning/jobs/${this.jobId}/${action}`, { method: "POST" }); this.open(this.jobId); },
};
$("#job-pause").addEventListener("click", () => Jobs.control("pause"));
$("#job-resume").addEventListener("click", () => Jobs.control("resume"));
$("#job-cancel").addEventListener("click", () => Jobs.control("cancel"));

// ---------------------------------------------------------------- (c) grader playground
const Graders = {
  open() {
    if (!$("#gr-spec").value) $("#gr-spec").value = JSON.stringify({ type: "string_check", name: "exact",
      input: "{{sample.output_text}}", reference: "{{item.answer}}", operation: "eq" }, null, 2);
  },
  parse() {
    const grader = JSON.parse($("#gr-spec").value);
    const itemText = $("#gr-item").value.trim();
    return { grader, model_sample: $("#gr-sample").value, item: itemText ? JSON.parse(itemText) : {} };
  },
  async run(validateOnly) {
    try {
      const body = this.parse();
      const out = validateOnly
        ? await api("/fine_tuning/alpha/graders/validate", { method: "POST", json: { grader: body.grader } })
        : await api("/fine_tuning/alpha/graders/run", { method: "POST", json: body });
      $("#gr-reward").textContent = validateOnly ? "valid" : out.reward;
      $("#gr-result").textContent = JSON.stringify(validateOnly ? out : { metadata: out.metadata, sub_rewards: out.sub_rewards }, null, 2);
      $("#gr-result").classList.remove("error");
    } catch (e) {
      $("#gr-reward").textContent = "error";
      $("#gr-result").textContent = e.message;
      $("#gr-result").classList.add("error");
    }
  },
};
$("#gr-run").addEventListener("click", () => Graders.run(false));
$("#gr-validate").addEventListener("click", () => Graders.run(true));
document.addEventListener("keydown", (ev) => {
  if (!$("#page-graders").hidden && ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { Graders.run(false); ev.preventDefault(); }
});

Session.check().then(route);
