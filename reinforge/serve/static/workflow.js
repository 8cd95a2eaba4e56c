// reinforge web UI, the whole workflow: upload data files, start a job (a grader editor for RFT), chat with
// any model. Uses app.js's $, el, api and Session; every call goes to the owner-checked /v1 API.
"use strict";

const options = (select, items, keep) => {
  const before = keep || select.value;
  select.replaceChildren(...items.map(([value, label]) => el("option", { value }, label)));
  if (items.some(([v]) => v === before)) select.value = before;
};
const parseJSON = (text, what) => {
  try { return text.trim() ? JSON.parse(text) : null; } catch (e) { throw new Error(`${what}: invalid JSON (${e.message})`); }
};
const modelIds = async () => (await api("/models")).data.map((m) => [m.id, m.id]);

// ---------------------------------------------------------------- (d) files
const Files = {
  async open() {
    const files = await api("/files?limit=200").catch((e) => { $("#up-error").textContent = e.message; return { data: [] }; });
    $("#file-table tbody").replaceChildren(...files.data.map((f) => el("tr", { "data-id": f.id },
      el("td", {}, el("code", {}, f.id)), el("td", {}, f.filename), el("td", {}, f.purpose), el("td", {}, f.bytes),
      el("td", {}, new Date(f.created_at * 1000).toLocaleString()),
      el("td", {}, el("button", { class: "delete", onclick: () => this.remove(f.id) }, "Delete")))));
    return files.data;
  },

  async upload() {
    $("#up-error").textContent = "";
    const file = $("#up-file").files[0];
    if (!file) { $("#up-error").textContent = "pick a file first"; return; }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("purpose", $("#up-purpose").value);
    try {
      await api("/files", { method: "POST", body: form });
      $("#up-file").value = "";
    } catch (e) { $("#up-error").textContent = e.message; }  // it names the file and the line
    await this.open();
  },

  async remove(id) {
    await api(`/files/${id}`, { method: "DELETE" }).catch((e) => { $("#up-error").textContent = e.message; });
    await this.open();
  },
};
$("#up-send").addEventListener("click", () => Files.upload());

// ---------------------------------------------------------------- (e) a new job
const NewJob = {
  async open() {
    if (!$("#nj-grader").value) $("#nj-grader").value = JSON.stringify({ type: "string_check", name: "exact",
      input: "{{sample.output_text}}", reference: "{{item.answer}}", operation: "eq" }, null, 2);
    try {
      const [models, files] = await Promise.all([modelIds(), api("/files?limit=200")]);
      options($("#nj-model"), models.filter(([id]) => !id.startsWith("ft:")));
      const rows = files.data.filter((f) => f.purpose === "fine-tune").map((f) => [f.id, `${f.filename} (${f.id})`]);
      options($("#nj-train"), rows);
      options($("#nj-valid"), [["", "(none)"], ...rows]);
    } catch (e) { $("#nj-error").textContent = e.message; }
    this.method();
  },

  method() { $("#nj-grader-box").hidden = $("#nj-method").value !== "reinforcement"; },

  grader() { return parseJSON($("#nj-grader").value, "grader"); },

  show(reward, result, failed) {
    $("#nj-reward").textContent = reward;
    $("#nj-result").textContent = typeof result === "string" ? result : JSON.stringify(result, null, 2);
    $("#nj-result").classList.toggle("error", !!failed);
  },

  async validate() {
    try {
      const out = await api("/fine_tuning/alpha/graders/validate", { method: "POST", json: { grader: this.grader() } });
      this.show("valid", out);
      return true;
    } catch (e) { this.show("error", e.message, true); return false; }
  },

  // The chosen row of the training file as the grader's item; the sample is typed in, or the model's answer.
  async tryRow() {
    try {
      const fid = $("#nj-train").value;
      if (!fid) throw new Error("pick a training file first");
      const lines = (await api(`/files/${fid}/content`, { raw: true })).split("\n").filter((l) => l.trim());
      const n = Number($("#nj-row").value || 1);
      if (n < 1 || n > lines.length) throw new Error(`row ${n}: the file has ${lines.length} rows`);
      const item = parseJSON(lines[n - 1], `row ${n}`);
      let sample = $("#nj-sample").value;
      if (!sample) {
        const prompt = (item.messages || []).filter((m) => m.role !== "assistant");
        const extra = parseJSON($("#nj-extra").value, "reinforge settings") || {};
        const out = await api("/chat/completions", { method: "POST", json: { model: $("#nj-model").value,
          messages: prompt, temperature: 0, max_tokens: extra.max_new_tokens || 16 } });
        sample = out.choices[0].message.content || "";
      }
      const out = await api("/fine_tuning/alpha/graders/run", { method: "POST",
        json: { grader: this.grader(), model_sample: sample, item } });
      this.show(out.reward, { row: n, sample, metadata: out.metadata, sub_rewards: out.sub_rewards });
    } catch (e) { this.show("error", e.message, true); }
  },

  async create() {
    $("#nj-error").textContent = "";
    try {
      const type = $("#nj-method").value;
      const hyperparameters = parseJSON($("#nj-hp").value, "hyperparameters") || {};
      const method = { type, [type]: { hyperparameters } };
      if (type === "reinforcement") {
        if (!(await this.validate())) throw new Error("the grader is not valid (see its result)");
        method.reinforcement.grader = this.grader();
      }
      const extra = parseJSON($("#nj-extra").value, "reinforge settings");
      if (extra && Object.keys(extra).length) method.reinforge = extra;
      const body = { model: $("#nj-model").value, training_file: $("#nj-train").value, method };
      if ($("#nj-valid").value) body.validation_file = $("#nj-valid").value;
      const job = await api("/fine_tuning/jobs", { method: "POST", json: body });
      location.hash = `jobs/${job.id}`;
    } catch (e) { $("#nj-error").textContent = e.message; }
  },
};
$("#nj-method").addEventListener("change", () => NewJob.method());
$("#nj-validate").addEventListener("click", () => NewJob.validate());
$("#nj-try").addEventListener("click", () => NewJob.tryRow());
$("#nj-create").addEventListener("click", () => NewJob.create());

// ---------------------------------------------------------------- (f) chat
const Chat = {
  messages: [],

  async open(model) {
    try { options($("#chat-model"), await modelIds(), model); } catch (e) { $("#chat-error").textContent = e.message; }
  },

  render() {
    $("#chat-log").replaceChildren(...this.messages.map((m) => {
      const calls = (m.tool_calls || []).map((c) => el("span", { class: "hint tool-call" },
        `calls ${c.function.name}(${c.function.arguments})`));
      return el("li", { class: m.role }, m.content || "", ...calls);
    }));
  },

  async send() {
    const text = $("#chat-input").value.trim();
    if (!text) return;
    $("#chat-error").textContent = "";
    try {
      const tools = parseJSON($("#chat-tools").value, "tools");
      this.messages.push({ role: "user", content: text });
      $("#chat-input").value = "";
      this.render();
      const system = $("#chat-system").value.trim();
      const body = { model: $("#chat-model").value, temperature: Number($("#chat-temp").value || 0),
        max_tokens: Number($("#chat-max").value || 32),
        messages: [...(system ? [{ role: "system", content: system }] : []), ...this.messages] };
      if (tools) body.tools = tools;
      const out = await api("/chat/completions", { method: "POST", json: body });
      const { role, content, tool_calls } = out.choices[0].message;
      this.messages.push(tool_calls ? { role, content, tool_calls } : { role, content });
      this.render();
    } catch (e) { $("#chat-error").textContent = e.message; }
  },
};
$("#chat-form").addEventListener("submit", (ev) => { ev.preventDefault(); Chat.send(); });
$("#chat-clear").addEventListener("click", () => { Chat.messages = []; Chat.render(); });
