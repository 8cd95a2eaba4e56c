// reinforge web UI: tune studies, read-only (GET /v1/studies): trials table, Pareto front (charts.js), parameter importance.
"use strict";

const Studies = {
  current: null,

  async open(id) {
    let list;
    try { list = (await api("/studies")).data; } catch (e) { $("#study-empty").textContent = e.message; return; }
    const sid = (s) => s.id;
    const who = await fetch("/ui/session", { credentials: "same-origin" }).then((r) => r.json()).catch(() => ({}));
    $("#study-key").textContent = who.key_id || "KEY_ID";  // the key's id (not the key: that never comes back)
    $("#study-list").replaceChildren(...list.map((s) => el("li", { class: sid(s) === id ? "active" : "",
      "data-id": sid(s), onclick: () => { location.hash = `studies/${encodeURIComponent(sid(s))}`; } }, `${s.name} (${s.file})`)));
    if (!list.length) $("#study-empty").textContent = "No studies in your studies folder yet.";
    if (id) await this.show(id);
  },

  async show(id) {
    const [file, ...rest] = id.split("/");  // FILE.db/NAME
    const s = await api(`/studies/${encodeURIComponent(file)}/${encodeURIComponent(rest.join("/"))}`);
    this.current = s;
    $("#study-empty").hidden = true; $("#study-detail").hidden = false;
    const dirs = s.objective_names.map((n, i) => `${n} (${s.directions[i]})`).join(", ");
    $("#study-title").textContent = `${s.name}: ${s.trials.length} trials, ${dirs}`;
    this.table(s); this.chart(s); this.importance(s);
    Scoring.open(s);  // scoring.js: score an asked trial by hand
  },

  table(s) {
    const cols = s.trials.length ? Object.keys(s.trials[0]) : [];
    const fmt = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : v ?? "–");
    $("#study-trials thead").replaceChildren(el("tr", {}, ...cols.map((c) => el("th", {}, c))));
    $("#study-trials tbody").replaceChildren(...s.trials.map((t) => el("tr", {
      class: s.pareto.includes(t.number) ? "pareto" : "", "data-number": t.number }, ...cols.map((c) => el("td", {}, fmt(t[c]))))));
  },

  // Two or more objectives: the first two against each other, the front in colour; one: value per trial.
  chart(s) {
    const [a, b] = s.objective_names;
    const two = b !== undefined;
    $("#study-chart-title").textContent = two ? `Pareto front: ${a} against ${b}` : `${a} per trial (best in colour)`;
    const pts = s.trials.filter((t) => t[a] !== null && (!two || t[b] !== null))
      .map((t) => ({ x: two ? t[a] : t.number, y: two ? t[b] : t[a], front: s.pareto.includes(t.number), n: t.number }));
    scatter($("#study-chart"), pts, two ? a : "trial", two ? b : a);
  },

  importance(s) {
    const entries = Object.entries(s.importance);
    $("#study-importance").replaceChildren(...(entries.length ? entries.map(([k, v]) => el("div", { class: "bar-row", "data-param": k },
      el("span", {}, k), el("div", { class: "bar", style: `width:${(100 * v).toFixed(1)}%` }), el("span", {}, v.toFixed(2))))
      : [el("p", { class: "hint" }, "needs three finished trials")]));
  },
};
