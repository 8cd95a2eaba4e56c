// reinforge web UI: score a study's trials by hand (POST /v1/trials/...): ask a trial, run its configuration
// on a few examples, read what it said, score it; the score is told to the study (as `reinforge tune tell`).
"use strict";

const Scoring = {
  study: null, tried: null,

  open(s) {
    this.study = s; this.tried = null;
    const running = s.trials.filter((t) => t.state === "running");
    $("#score-trial").replaceChildren(...running.map((t) => el("option", { value: t.number }, `trial ${t.number}`)));
    $("#score-none").hidden = running.length > 0;
    $("#score-work").hidden = running.length === 0;
    $("#score-error").textContent = ""; $("#score-result").textContent = "";
    $("#score-values").replaceChildren(...s.objective_names.map((n, i) => el("label", {},
      `${n} (${s.directions[i]}) `, el("input", { type: "number", step: "any", "data-objective": n }))));
    this.pick();
  },

  path() { return `/trials/${encodeURIComponent(this.study.file)}/${encodeURIComponent(this.study.name)}`; },

  pick() {
    const n = $("#score-trial").value;
    const t = this.study.trials.find((x) => String(x.number) === n);
    const params = t ? Object.fromEntries(Object.entries(t).filter(([k]) => k.startsWith("params.")).map(([k, v]) => [k.slice(7), v])) : {};
    $("#score-params").textContent = JSON.stringify(params, null, 1);
    $("#score-outputs").replaceChildren(); $("#score-estimate").textContent = "";
  },

  async ask() {
    $("#score-error").textContent = "";
    try {
      const t = await api(`${this.path()}/ask`, { method: "POST" });
      await Studies.show(this.study.id);
      $("#score-trial").value = String(t.number); this.pick();
    } catch (e) { $("#score-error").textContent = e.message; }
  },

  async run() {
    $("#score-error").textContent = ""; $("#score-estimate").textContent = "running…";
    try {
      const n = $("#score-trial").value;
      this.tried = await api(`${this.path()}/${n}/try`, { method: "POST", json: { examples: Number($("#score-n").value || 3) } });
    } catch (e) { $("#score-error").textContent = e.message; $("#score-estimate").textContent = ""; return; }
    const est = this.tried.estimate;
    $("#score-estimate").textContent = `a whole trial (${est.examples} examples): about ${Math.round(est.tokens)} tokens, `
      + `$${est.usd.toFixed(4)}, ${est.seconds.toFixed(1)} s of model time`;
    $("#score-outputs").replaceChildren(...this.tried.examples.map((ex, i) => el("div", { class: "tried", "data-index": i },
      el("div", { class: "prompt" }, ex.input),
      el("div", {}, el("strong", {}, "output: "), ex.output),
      el("div", { class: "hint" }, `expected: ${JSON.stringify(ex.expected)}; the study's grader: ${ex.grade}`),
      ...(ex.trajectory ? [el("pre", {}, ex.trajectory.split(" | ").join("\n"))] : []))));
    for (const input of document.querySelectorAll("#score-values input")) {  // measured ones filled in; edit any
      const v = this.tried.metrics[input.dataset.objective];
      if (v !== undefined && input.value === "") input.value = String(v);
    }
  },

  async tell() {
    $("#score-error").textContent = "";
    const inputs = [...document.querySelectorAll("#score-values input")];
    if (inputs.some((i) => i.value === "")) { $("#score-error").textContent = "give a value for every objective"; return; }
    const n = $("#score-trial").value;
    const metrics = this.tried ? Object.fromEntries(Object.entries(this.tried.metrics).filter(([, v]) => typeof v === "number")) : {};
    try {
      const r = await api(`${this.path()}/${n}/tell`, { method: "POST", json: { values: inputs.map((i) => Number(i.value)), metrics } });
      const id = this.study.id;
      await Studies.show(id);
      $("#score-result").textContent = `trial ${r.number}: ${r.state} ${JSON.stringify(r.values)}; best so far: trial ${r.best ? r.best.number : "–"}`;
    } catch (e) { $("#score-error").textContent = e.message; }
  },
};

$("#score-trial").addEventListener("change", () => Scoring.pick());
$("#score-ask").addEventListener("click", () => Scoring.ask());
$("#score-run").addEventListener("click", () => Scoring.run());
$("#score-tell").addEventListener("click", () => Scoring.tell());
