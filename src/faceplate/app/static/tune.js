// faceplate review, phase 2: tune an effect on the viewer's frame (the form is built from the effect's
// settings as the server describes them), presets and per-range overrides, the render queue, the training
// monitor. No dependencies; talks to /api/tune, /api/presets, /api/overrides, /api/jobs, /api/train.
"use strict";

(() => {
  const R = window.review, $ = (id) => document.getElementById(id);
  const t = { effect: null, controls: [], values: {}, busy: false, again: false, seq: 0, watch: null };
  const json = async (url, opts) => {
    const r = await fetch(url, opts);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.detail || r.statusText);
    return body;
  };
  const post = (url, body) => json(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify(body) });
  const el = (tag, props = {}, ...kids) => {
    const e = Object.assign(document.createElement(tag), props);
    e.append(...kids);
    return e;
  };
  const model = () => $("tune-model").value.trim() || null;

  // ------------------------------------------------------------------ the settings patch
  function patch() {  // {"settings": {"strength": 0.4}}: nested as the effect's record
    const out = {};
    for (const c of t.controls) {
      const parts = c.key.split("."), last = parts.pop();
      let o = out;
      for (const p of parts) o = o[p] ??= {};
      o[last] = t.values[c.key];
    }
    return out;
  }
  function setValues(p, prefix = "") {
    for (const [k, v] of Object.entries(p || {})) {
      if (v && typeof v === "object" && !Array.isArray(v)) setValues(v, `${prefix}${k}.`);
      else if (`${prefix}${k}` in t.values) t.values[`${prefix}${k}`] = v;
    }
  }

  // ------------------------------------------------------------------ the form (from the server's schema)
  function control(c) {
    const v = t.values[c.key], id = `tune-${c.key.replace(/\W/g, "-")}`;
    const label = el("label", { title: c.help || "" }, el("span", { textContent: c.name }));
    let input;
    if (c.kind === "toggle") {
      input = el("input", { type: "checkbox", id, checked: !!v });
      input.addEventListener("change", () => { t.values[c.key] = input.checked; tune(); });
      label.append(input);
    } else if (c.kind === "range") {
      input = el("input", { type: "range", id, min: c.min, max: c.max, step: c.step, value: v });
      const out = el("output", { id: `${id}-v`, textContent: String(v) });
      input.addEventListener("input", () => { t.values[c.key] = parseFloat(input.value); out.textContent = input.value; tune(); });
      label.append(input, out);
    } else if (c.kind === "select") {
      input = el("select", { id }, ...c.choices.map((o) => el("option", { value: o, textContent: o, selected: o === v })));
      input.addEventListener("change", () => { t.values[c.key] = input.value; tune(); });
      label.append(input);
    } else {
      input = el("input", { id, value: v });
      input.addEventListener("change", () => { t.values[c.key] = input.value; tune(); });
      label.append(input);
    }
    return label;
  }
  function drawForm() { $("tune-form").replaceChildren(...t.controls.map(control)); }

  const guard = (kind, fn) => async (...args) => {  // an action's failure: one line in the page's message
    try { await fn(...args); R.say(kind, null); } catch (err) { R.say(kind, err.message); }
  };
  const load = guard("tune-form", async (effect) => {
    t.effect = effect;
    $("tune-model-row").hidden = !t.needsModel.includes(effect);
    const f = await json(`/api/tune/${effect}`);
    t.controls = f.controls;
    t.values = Object.fromEntries(f.controls.map((c) => [c.key, c.default]));
    t.presets = f.presets;
    $("preset-list").replaceChildren(el("option", { value: "", textContent: "presets…" }),
      ...f.presets.map((p) => el("option", { value: p.name, textContent: p.name })));
    listOverrides(f.overrides);
    drawForm();
    tune();
  });

  // ------------------------------------------------------------------ the tuned frame
  async function tune() {  // one request at a time; the latest settings win
    if (t.busy) { t.again = true; return; }
    t.busy = true;
    const frame = R.state.frame;
    try {
      const r = await fetch("/api/tune/frame", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ effect: t.effect, settings: patch(), model: model(), frame }) });
      if (!r.ok) throw new Error((await r.json().catch(() => ({}))).detail || r.statusText);
      const url = URL.createObjectURL(await r.blob()), img = $("tune-img");
      await new Promise((ok) => { img.onload = ok; img.onerror = ok; img.src = url; });
      URL.revokeObjectURL(url);
      img.dataset.frame = String(frame);
      img.dataset.seq = String(++t.seq);
      $("tune-frame").textContent = String(frame);
      $("tune-ms").textContent = `${r.headers.get("X-Render-Ms")} ms`;
      R.say("tune", null);
    } catch (err) {
      $("tune-ms").textContent = "";
      R.say("tune", err.message);
    } finally {
      t.busy = false;
      if (t.again) { t.again = false; tune(); }
    }
  }
  let lastFrame = R.state.frame;
  setInterval(() => {  // the viewer moved to another frame (and is not playing): tune that one
    if (t.effect && R.state.frame !== lastFrame && !R.state.play) { lastFrame = R.state.frame; tune(); }
  }, 250);

  // ------------------------------------------------------------------ presets and overrides
  $("preset-save").addEventListener("click", guard("preset", async () => {
    const name = $("preset-name").value.trim();
    if (!name) throw new Error("name the preset first");
    await post("/api/presets", { effect: t.effect, name, settings: patch(), model: model() });
    await load(t.effect);
  }));
  $("preset-list").addEventListener("change", (e) => {
    const p = (t.presets || []).find((x) => x.name === e.target.value);
    if (!p) return;
    setValues(p.settings);
    drawForm();
    tune();
  });
  function changed(settings, prefix = "") {  // "strength 0.3, tone false": what differs from the defaults
    const out = [];
    for (const [k, v] of Object.entries(settings || {})) {
      if (v && typeof v === "object" && !Array.isArray(v)) out.push(changed(v, `${prefix}${k}.`));
      else if ((t.controls.find((c) => c.key === `${prefix}${k}`) || {}).default !== v) out.push(`${k} ${v}`);
    }
    return out.filter(Boolean).join(", ") || (prefix ? "" : "the defaults");
  }
  function listOverrides(list) {
    $("override-list").replaceChildren(...list.map((o) => {
      const del = el("button", { textContent: "delete" });
      del.addEventListener("click", guard("override", async () => { await json(`/api/overrides/${o.id}`, { method: "DELETE" }); await load(t.effect); }));
      return el("li", { textContent: `frames ${o.first}–${o.last ?? "end"}: ${changed(o.settings)} ` }, del);
    }));
  }
  const override = guard("override", async (first, last) => {
    await post("/api/overrides", { effect: t.effect, first, last, settings: patch(), model: model() });
    await load(t.effect);
  });
  $("override-on").addEventListener("click", () => override(R.state.frame, null));
  $("override-range").addEventListener("click", () => {
    const p = R.SHOT.plate;
    override(R.state.in ?? p.first, R.state.out ?? p.last);
  });

  // ------------------------------------------------------------------ the render queue
  const jobs = new Map();
  function drawJobs() {
    $("job-list").replaceChildren(...[...jobs.values()].reverse().map((j) => {
      const pct = j.total ? ` ${j.done}/${j.total}` : "", fps = j.fps ? ` · ${Number(j.fps).toFixed(1)} fps` : "";
      const li = el("li", { id: `job-${j.id}`, textContent: `#${j.id} ${j.spec ? j.spec.effect : ""} ${j.state}${pct}${fps} ${j.message || ""} ` });
      li.dataset.state = j.state;
      const act = (name) => {
        const b = el("button", { textContent: name });
        b.addEventListener("click", guard("job", async () => { await post(`/api/jobs/${j.id}/${name}`, {}); await refreshJobs(); }));
        li.append(b);
      };
      if (["queued", "running"].includes(j.state)) act("cancel");
      if (["cancelled", "interrupted", "failed"].includes(j.state)) act("resume");
      return li;
    }));
  }
  async function refreshJobs() {
    for (const j of (await json("/api/jobs")).jobs) jobs.set(j.id, j);
    drawJobs();
  }
  $("job-submit").addEventListener("click", guard("job", async () => {
    const frames = $("job-frames").value.trim() || null, delta = $("job-delta").checked;
    await post("/api/jobs", { effect: t.effect, settings: patch(), model: model(), frames, delta });
    await refreshJobs();
  }));
  R.events.addEventListener("jobs", (e) => {
    const d = JSON.parse(e.data);
    jobs.set(d.id, { ...(jobs.get(d.id) || {}), ...d });
    drawJobs();
    if (d.state !== "running") refreshJobs();
  });
  R.events.addEventListener("sources", (e) => {  // a finished render opens in the viewer (as B)
    const d = JSON.parse(e.data);
    R.SHOT.sources = d.sources;
    for (const sel of [$("src-a"), $("src-b")]) {
      for (const s of d.sources) {
        if (![...sel.options].some((o) => o.value === s.id)) sel.append(el("option", { value: s.id, textContent: s.label }));
      }
    }
    $("src-b").value = d.added;
    $("src-b").dispatchEvent(new Event("change"));
  });

  // ------------------------------------------------------------------ the training monitor
  function plot(losses) {
    const c = $("loss"), g = c.getContext("2d"), w = c.width, h = c.height, pad = 30;
    g.fillStyle = "#111"; g.fillRect(0, 0, w, h);
    if (losses.length < 2) return;
    const its = losses.map((p) => p[0]), ls = losses.map((p) => Math.log10(Math.max(p[1], 1e-9)));
    const x0 = its[0], x1 = its[its.length - 1], y0 = Math.min(...ls), y1 = Math.max(...ls);  // a loss of 1: log 0
    const X = (i) => pad + ((i - x0) / Math.max(1, x1 - x0)) * (w - pad - 6);
    const top = 22, bottom = h - 18;  // room for the latest loss above and the iterations below
    const Y = (v) => (y1 > y0 ? bottom - ((v - y0) / (y1 - y0)) * (bottom - top) : (top + bottom) / 2);
    g.strokeStyle = "#5ab0ff"; g.beginPath();
    losses.forEach((p, k) => (k ? g.lineTo(X(its[k]), Y(ls[k])) : g.moveTo(X(its[k]), Y(ls[k]))));
    g.stroke();
    g.fillStyle = "#aaa"; g.font = "11px sans-serif";
    g.fillText(`loss ${losses[losses.length - 1][1].toPrecision(4)} @ ${x1}`, pad, 12);
    g.fillText(String(x0), pad, h - 4); g.fillText(String(x1), w - 40, h - 4);
  }
  async function poll(gen) {  // one loop per "watch" click: an older one ends at its next turn
    if (!t.watch || gen !== t.gen) return;
    try {
      const m = await json(`/api/train?model=${encodeURIComponent(t.watch)}`);
      if (gen !== t.gen) return;
      plot(m.losses);
      $("loss").dataset.points = String(m.losses.length);
      $("train-state").textContent = `${m.losses.length} iterations logged`;
      if (m.preview && m.preview !== t.previewStamp) {
        t.previewStamp = m.preview;
        $("train-preview").src = `/api/train/preview?model=${encodeURIComponent(t.watch)}&t=${m.preview}`;
      }
      R.say("train", null);
    } catch (err) {
      if (gen !== t.gen) return;
      $("train-state").textContent = "";
      R.say("train", err.message);
    }
    if (gen === t.gen) setTimeout(() => poll(gen), 2000);
  }
  $("train-watch").addEventListener("click", () => {  // watch this folder now (and every 2 s)
    t.gen = (t.gen || 0) + 1;
    t.watch = $("train-model").value.trim() || null;
    t.previewStamp = null;
    if (!t.watch) R.say("train", "name the model folder to watch");
    else poll(t.gen);
  });

  // ------------------------------------------------------------------ start
  (async () => {
    const e = await json("/api/tune");
    t.needsModel = e.needs_model;
    $("tune-effect").replaceChildren(...e.effects.map((n) => el("option", { value: n, textContent: n })));
    $("tune-effect").addEventListener("change", (ev) => load(ev.target.value));
    $("tune-model").addEventListener("change", () => tune());
    refreshJobs();
    await load(e.effects[0]);
  })();
  t.rerun = tune;
  window.review.tune = t;
})();
