// faceplate review: a frame-accurate viewer of server-made proxies (one image per frame, no <video>),
// compare modes on a canvas, scrub bar with the shot's marks, tracks to follow. No dependencies.
"use strict";

const SHOT = JSON.parse(document.getElementById("shot-data").textContent);
const P = SHOT.plate;
const $ = (id) => document.getElementById(id);
const view = $("view"), vctx = view.getContext("2d", { willReadFrequently: true });
const work = document.createElement("canvas"), wctx = work.getContext("2d", { willReadFrequently: true });
const st = {
  frame: P.first, shown: null, a: $("src-a").value, b: $("src-b").value, mode: "a",
  gain: 1, gamma: 1, dgain: 8, wipe: 0.5, in: null, out: null, play: 0, follow: null, boxes: null, seq: 0,
};

// ------------------------------------------------------------------ timing
function timecode(f, fps) {
  const base = Math.max(1, Math.round(fps)), sign = f < 0 ? "-" : "", n = Math.abs(f);
  const s = Math.floor(n / base), ff = n % base, p = (v) => String(v).padStart(2, "0");
  return `${sign}${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}:${p(ff)}`;
}
const clampFrame = (f) => Math.min(P.last, Math.max(P.first, f));
const loopIn = () => (st.in ?? P.first), loopOut = () => (st.out ?? P.last);

// ------------------------------------------------------------------ the message (one at a time)
function say(kind, text) {  // text: show it (it replaces any other); null: clear it if it is of this kind
  const m = $("message");
  if (text) { m.textContent = text; m.dataset.kind = kind; m.hidden = false; }
  else if (m.dataset.kind === kind) { m.textContent = ""; delete m.dataset.kind; m.hidden = true; }
}
async function detail(url, opts) {  // the server's one-line reason of a failed request
  try {
    const r = await fetch(url, opts), body = await r.json().catch(() => ({}));
    return r.ok ? null : (typeof body.detail === "string" ? body.detail : r.statusText);
  } catch (err) { return `the review server does not answer (${err.message})`; }
}

// ------------------------------------------------------------------ frames (proxies)
const images = new Map(), failed = new Map();  // "src/layer/frame" → Promise<HTMLImageElement|null>; → reason
function proxy(src, layer, f) {
  const key = `${src}/${layer}/${f}`;
  if (!images.has(key)) {
    images.set(key, new Promise((resolve) => {
      const im = new Image();
      im.onload = () => { failed.delete(key); resolve(im); };
      im.onerror = async () => {  // not kept: asked again next time (a file put back shows up)
        failed.set(key, await detail(`/frames/${key}`));
        images.delete(key);
        resolve(null);
      };
      im.src = `/frames/${key}`;
    }));
    if (images.size > 400) images.delete(images.keys().next().value);
  }
  return images.get(key);
}
function layersOf(id) { return (SHOT.sources.find((s) => s.id === id) || { layers: [] }).layers; }
function needs() {
  const m = st.mode, need = [[st.a, "rgb"]];
  if (m === "b") return [[st.b, "rgb"]];
  if (["wipe", "side", "diff"].includes(m)) need.push([st.b, "rgb"]);
  if (m === "matte") need.push([layersOf(st.b).includes("matte") ? st.b : st.a, "matte"]);
  if (m === "delta") need.push([layersOf(st.b).includes("delta") ? st.b : st.a, "delta"]);
  return need;
}
function pixels(im) {
  if (!im) return null;
  work.width = P.width; work.height = P.height;
  wctx.drawImage(im, 0, 0, P.width, P.height);
  return wctx.getImageData(0, 0, P.width, P.height);
}

// ------------------------------------------------------------------ drawing
function lut() {
  const t = new Uint8ClampedArray(256);
  for (let i = 0; i < 256; i++) t[i] = 255 * Math.pow(Math.min(1, (i / 255) * st.gain), 1 / st.gamma);  // rounds
  return t;
}
function compose(imgs) {
  if ((st.mode === "a" || st.mode === "b") && st.gain === 1 && st.gamma === 1 && imgs[0]) {  // fast path
    work.width = P.width; work.height = P.height;
    wctx.drawImage(imgs[0], 0, 0, P.width, P.height);
    say("frame", null);
    return wctx.getImageData(0, 0, P.width, P.height);
  }
  const [A, B] = imgs.map(pixels), w = P.width, h = P.height, L = lut(), m = st.mode;
  const side = m === "side", out = new ImageData(side ? 2 * w : w, h), o = out.data;
  const a = A ? A.data : null, b = B ? B.data : null, split = Math.round(st.wipe * w);
  const why = needs().filter((n, k) => !imgs[k]).map(([s, l]) => failed.get(`${s}/${l}/${st.frame}`) || `${s} has no ${l} at frame ${st.frame}`);
  say("frame", why.length ? why.join("; ") : null);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 4 * (y * w + x);
      for (let c = 0; c < 3; c++) {
        const va = a ? a[i + c] : 0, vb = b ? b[i + c] : 0;
        let v;
        if (m === "a" || m === "b") v = L[va];
        else if (m === "wipe") v = L[x < split ? va : vb];
        else if (m === "side") { o[4 * (y * 2 * w + x) + c] = L[va]; o[4 * (y * 2 * w + w + x) + c] = L[vb]; continue; }
        else if (m === "diff") v = L[Math.min(255, Math.abs(va - vb) * st.dgain)];
        else if (m === "matte") v = c === 0 ? L[va] * (1 - vb / 510) + vb / 2 : L[va] * (1 - vb / 510);
        else v = c === 1 ? Math.min(255, L[va] * 0.6 + vb * st.dgain / 8) : L[va] * 0.6;  // delta: green over A
        o[i + c] = v;
      }
      o[i + 3] = 255;
      if (side) { o[4 * (y * 2 * w + x) + 3] = 255; o[4 * (y * 2 * w + w + x) + 3] = 255; }
    }
  }
  if (m === "wipe") for (let y = 0; y < h; y++) { const i = 4 * (y * w + Math.min(w - 1, split)); o[i] = 255; o[i + 1] = 210; o[i + 2] = 74; }
  return out;
}
function followRect(outW, outH) {
  if (st.follow === null || !st.boxes) return null;
  const box = st.boxes.get(st.frame);
  if (!box) return null;
  const [x0, y0, x1, y1] = box, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const s = Math.min(Math.max(x1 - x0, y1 - y0) * 1.8, P.width, P.height);
  return [Math.min(Math.max(0, cx - s / 2), P.width - s), Math.min(Math.max(0, cy - s / 2), P.height - s), s, s];
}
async function show(f) {
  f = clampFrame(f);
  const seq = ++st.seq;
  st.frame = f;
  const imgs = await Promise.all(needs().map(([s, l]) => proxy(s, l, f)));
  if (seq !== st.seq) return false;  // a later request won: never show an older frame over it
  const out = compose(imgs);
  const rect = followRect(out.width, out.height);
  if (rect && st.mode !== "side") {
    work.width = out.width; work.height = out.height; wctx.putImageData(out, 0, 0);
    view.width = P.width; view.height = P.height;
    vctx.imageSmoothingEnabled = true;
    vctx.drawImage(work, rect[0], rect[1], rect[2], rect[3], 0, 0, P.width, P.height);
  } else {
    view.width = out.width; view.height = out.height;
    vctx.putImageData(out, 0, 0);
  }
  st.shown = f;
  view.dataset.mode = st.mode;  // what is drawn (the page's tests wait on it after a mode change)
  view.dataset.frame = String(f);
  $("frame").textContent = String(f);
  $("tc").textContent = timecode(f, P.fps);
  placeHead();
  return true;
}

// ------------------------------------------------------------------ scrub bar and marks
const scrub = $("scrub"), marks = $("marks");
const xOf = (f) => ((f - P.first + 0.5) / (P.last - P.first + 1)) * scrub.clientWidth;
const frameAt = (x) => clampFrame(P.first + Math.floor((x / scrub.clientWidth) * (P.last - P.first + 1)));
function drawMarks() {
  marks.width = scrub.clientWidth; marks.height = scrub.clientHeight;
  const g = marks.getContext("2d"), per = scrub.clientWidth / (P.last - P.first + 1), H = marks.height;
  const band = (runs, colour, y0, y1) => {
    g.fillStyle = colour;
    for (const [a, b] of runs) g.fillRect(xOf(a) - per / 2, y0, Math.max(1, (b - a + 1) * per), y1 - y0);
  };
  band(SHOT.marks.unanalysed, "#3b3b55", 0, H);
  band(SHOT.marks.noface, "#666", H * 0.55, H);
  band(SHOT.marks.cuts, "#fff", 0, H);
  const flagColour = { jitter: "#ff9a2e", drift: "#e04ce0" };
  Object.entries(SHOT.flags).forEach(([name, list], k) => {
    band(list.map((e) => [e.frame, e.frame]), flagColour[name] || "#4ce0e0", k * 6, k * 6 + 6);
  });
}
function placeHead() {
  $("head").style.left = `${xOf(st.frame) - 1}px`;
  const i = $("inout");
  i.style.left = `${xOf(loopIn()) - 1}px`;
  i.style.width = `${xOf(loopOut()) - xOf(loopIn()) + 2}px`;
  i.hidden = st.in === null && st.out === null;
  $("marks-in-out").textContent = `in ${st.in ?? "–"} · out ${st.out ?? "–"}`;
}
let dragging = false;
scrub.addEventListener("pointerdown", (e) => { dragging = true; scrub.setPointerCapture(e.pointerId); stop(); show(frameAt(e.offsetX)); });
scrub.addEventListener("pointermove", (e) => { if (dragging) show(frameAt(e.offsetX)); });
scrub.addEventListener("pointerup", () => { dragging = false; });

// ------------------------------------------------------------------ wipe handle
let wiping = false;
const wipeAt = (e) => {
  const r = view.getBoundingClientRect();
  st.wipe = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
  if (st.mode === "wipe") show(st.frame);
};
view.addEventListener("pointerdown", (e) => { wiping = true; view.setPointerCapture(e.pointerId); wipeAt(e); });
view.addEventListener("pointermove", (e) => { if (wiping) wipeAt(e); });
view.addEventListener("pointerup", () => { wiping = false; });

// ------------------------------------------------------------------ playback (looped, at the plate's fps)
let timer = null;
function stop() { st.play = 0; clearTimeout(timer); $("play-state").textContent = "stopped"; }
function play(dir) {
  st.play = dir;
  $("play-state").textContent = `playing ${dir > 0 ? "▶" : "◀"} ${Math.abs(dir)}x`;
  clearTimeout(timer);
  tick();
}
async function tick() {
  if (!st.play) return;
  const t0 = performance.now(), lo = loopIn(), hi = loopOut();
  let n = st.frame + Math.sign(st.play);
  if (n > hi) n = lo;
  if (n < lo) n = hi;
  await show(n);
  for (let k = 1; k <= 6; k++) {  // read ahead
    const f = n + k * Math.sign(st.play);
    if (f >= lo && f <= hi) needs().forEach(([s, l]) => proxy(s, l, f));
  }
  const wait = 1000 / (P.fps * Math.abs(st.play)) - (performance.now() - t0);
  if (st.play) timer = setTimeout(tick, Math.max(0, wait));
}

// ------------------------------------------------------------------ keys
function allFlags() {
  const f = new Set();
  Object.values(SHOT.flags).forEach((l) => l.forEach((e) => f.add(e.frame)));
  SHOT.marks.cuts.forEach(([a]) => f.add(a));
  return [...f].sort((x, y) => x - y);
}
document.addEventListener("keydown", (e) => {
  const typing = e.target.tagName === "INPUT" && !["range", "checkbox"].includes(e.target.type);
  if (e.target.tagName === "SELECT" || typing) return;  // menus and text fields keep their keys; sliders give theirs to the viewer
  const k = e.key, step = e.shiftKey ? 10 : 1;
  if (k === "ArrowRight") { stop(); show(st.frame + step); }
  else if (k === "ArrowLeft") { stop(); show(st.frame - step); }
  else if (k === "l" || k === "L") play(st.play > 0 ? Math.min(8, st.play * 2) : 1);
  else if (k === "j" || k === "J") play(st.play < 0 ? Math.max(-8, st.play * 2) : -1);
  else if (k === "k" || k === "K") stop();
  else if (k === " ") { st.play ? stop() : play(1); }
  else if (k === "i" || k === "I") { st.in = st.frame; if (st.out !== null && st.out < st.in) st.out = null; placeHead(); }
  else if (k === "o" || k === "O") { st.out = st.frame; if (st.in !== null && st.in > st.out) st.in = null; placeHead(); }
  else if (k === "Escape") { st.in = st.out = null; placeHead(); }
  else if (k === "Home") { stop(); show(loopIn()); }
  else if (k === "End") { stop(); show(loopOut()); }
  else if (k === "ArrowUp" || k === "ArrowDown") {
    const fl = allFlags(), up = k === "ArrowUp";
    const next = up ? fl.find((f) => f > st.frame) : fl.reverse().find((f) => f < st.frame);
    if (next !== undefined) { stop(); show(next); }
  } else return;
  e.preventDefault();
});

// ------------------------------------------------------------------ go to a frame
$("goto").addEventListener("keydown", (e) => {
  if (e.key !== "Enter") return;
  const v = e.target.value.trim(), n = Number(v);
  if (!/^-?\d+$/.test(v)) say("frame", `"${v}" is not a frame number`);
  else if (n < P.first || n > P.last) say("frame", `frame ${n} is outside the plate (${P.first}–${P.last})`);
  else { stop(); show(n); e.target.blur(); }
});

// ------------------------------------------------------------------ controls
function slider(id, fn, text) {
  const el = $(id);
  el.addEventListener("input", () => { fn(parseFloat(el.value)); $(`${id}-v`).textContent = text(); show(st.frame); });
}
slider("gain", (v) => { st.gain = Math.pow(2, v); }, () => st.gain.toFixed(2));
slider("gamma", (v) => { st.gamma = v; }, () => st.gamma.toFixed(2));
slider("dgain", (v) => { st.dgain = v; }, () => String(st.dgain));
$("mode").addEventListener("change", (e) => { st.mode = e.target.value; show(st.frame); });
$("src-a").addEventListener("change", (e) => { st.a = e.target.value; warm(st.a); show(st.frame); });
$("src-b").addEventListener("change", (e) => { st.b = e.target.value; warm(st.b); show(st.frame); });
[...document.querySelectorAll(".track")].forEach((li) => li.addEventListener("click", async () => {
  const id = Number(li.dataset.track);
  document.querySelectorAll(".track").forEach((o) => o.classList.remove("following"));
  if (st.follow === id) { st.follow = null; st.boxes = null; $("follow-state").textContent = ""; show(st.frame); return; }
  const got = await fetch(`/api/tracks/${id}/boxes`), r = await got.json().catch(() => ({}));
  if (!got.ok) { say("shot", r.detail || got.statusText); return; }
  say("shot", null);
  st.follow = id; st.boxes = new Map(r.boxes.map((b) => [b[0], b.slice(1)]));
  li.classList.add("following");
  $("follow-state").textContent = `following track ${id}`;
  if (st.frame < Number(li.dataset.first) || st.frame > Number(li.dataset.last)) await show(Number(li.dataset.first));
  else await show(st.frame);
}));

// ------------------------------------------------------------------ progress (server-sent events)
const progress = {};
function warm(id) { fetch(`/api/warm/${id}`, { method: "POST" }); }
const events = new EventSource("/events");
events.addEventListener("cache", (e) => {
  const d = JSON.parse(e.data);
  progress[d.source] = d.error ? "not cached" : d.done >= d.total ? "cached" : `${d.done}/${d.total}`;  // why: the frame's message
  $("progress").textContent = "· proxies " + Object.entries(progress).map(([k, v]) => `${k} ${v}`).join(", ");
  if (d.error) $("progress").title = d.error;
});

window.addEventListener("resize", () => { drawMarks(); placeHead(); });
window.review = { state: st, show, timecode, events, SHOT, say };  // for tests and the tune panel (tune.js)
drawMarks();
show(P.first);
warm(st.a); if (st.b !== st.a) warm(st.b);
