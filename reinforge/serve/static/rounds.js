// reinforge web UI: the RLHF round page (#rounds/<queue id>). Loaded after app.js, whose $, el and api it uses.
// A round is a shared feedback queue that `reinforge rlhf` (labelers section) created: its status, the
// reward model's accuracy, PPO's reward and KL, each annotator's figures, and samples before/after.
"use strict";

const fmt = (v, digits = 3) => (v === null || v === undefined ? "–" : typeof v === "number" ? String(+v.toFixed(digits)) : String(v));

const Rounds = {
  queueId: null, timer: null,

  async open(queueId) {
    clearTimeout(this.timer);
    this.queueId = queueId || null;
    await this.tick();
  },

  async tick() {
    if ($("#page-rounds").hidden) return;
    let live = false;
    try {
      const list = await api("/feedback/queues");
      const rounds = list.data.filter((q) => q.round && q.owned);
      $("#round-list").replaceChildren(...rounds.map((q) => el("li", { class: q.id === this.queueId ? "active" : "",
        "data-id": q.id, onclick: () => { location.hash = `rounds/${q.id}`; } },
        `round ${q.round.round}: ${q.round.status || "–"}`)));
      $("#round-empty").textContent = rounds.length ? "Pick a round." : "No RLHF rounds yet: run `reinforge rlhf` with a labelers section.";
      if (this.queueId) live = await this.detail();
    } catch (e) { $("#round-empty").textContent = e.message; }
    if (live) this.timer = setTimeout(() => this.tick(), 3000);
  },

  async detail() {
    const id = this.queueId;
    const [q, quality] = await Promise.all([api(`/feedback/queues/${id}`), api(`/feedback/queues/${id}/quality`)]);
    if (id !== this.queueId) return false;
    const r = q.round || {};
    $("#round-empty").hidden = true; $("#round-detail").hidden = false;
    $("#round-title").textContent = `Round ${r.round ?? "?"}`;
    const fields = { status: r.status, requested: r.requested, "fully labelled": `${quality.complete} of ${quality.items}`,
      labels: quality.labels, "preferences trained on": r.labelled, "RM accuracy": fmt(r.rm_accuracy),
      "PPO reward": fmt(r.ppo_reward), KL: fmt(r.kl), agreement: fmt(quality.agreement), "Krippendorff's alpha": fmt(quality.alpha),
      outcomes: Object.entries(quality.outcomes).map(([k, v]) => `${k} ${v}`).join(", ") };
    $("#round-fields").replaceChildren(...Object.entries(fields).flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", { "data-field": k }, fmt(v))]));
    $("#round-annotators tbody").replaceChildren(...Object.entries(quality.annotators).map(([key, a]) => el("tr", { "data-key": key },
      el("td", {}, a.name), el("td", {}, a.labels), el("td", {}, fmt(a.per_hour, 1)),
      el("td", {}, a.gold ? `${fmt(a.gold.accuracy)} (${a.gold.correct}/${a.gold.answered}, ${a.gold.skipped} skipped)` : "–"))));
    $("#round-samples tbody").replaceChildren(...(r.samples || []).map((s) => el("tr", {},
      el("td", {}, s.prompt), el("td", {}, s.before), el("td", {}, s.after))));
    $("#round-samples").hidden = !(r.samples || []).length;
    return r.status !== "done";
  },
};
