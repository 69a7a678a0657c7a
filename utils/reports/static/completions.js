// completions.html: reward curves, then the run's steps a page at a time. A step's groups live in a chunk file
// beside the page, loaded by a script tag when its page is first shown (file:// allows that, not fetch).
"use strict";
const chunks = {};
const waiting = {};
function chexChunk(name, steps) {
  chunks[name] = steps;
  for (const resolve of waiting[name] || []) resolve(steps);
}

function loadChunk(number) {
  const name = DATA.chunks[number];
  if (chunks[name]) return Promise.resolve(chunks[name]);
  return new Promise((resolve, reject) => {
    if (!waiting[name]) {
      waiting[name] = [];
      const script = el("script", { src: `${DATA.folder}/${name}` });
      script.onerror = () => reject(new Error(`cannot load ${DATA.folder}/${name}`));
      document.head.append(script);
    }
    waiting[name].push(resolve);
  });
}

function curve(name, series) {
  const width = 420, height = 150, pad = 30;
  const all = series.raw;
  const xs = all.map(([x]) => x), ys = all.map(([, y]) => y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const [y0, y1] = [Math.min(0, ...ys), Math.max(1, ...ys)];
  const sx = (x) => pad + (width - 2 * pad) * (x - x0) / (x1 - x0);
  const sy = (y) => height - pad + (2 * pad - height) * (y - y0) / (y1 - y0);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("class", "curve");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  add("rect", { x: pad, y: pad / 2, width: width - 2 * pad, height: height - 1.5 * pad, fill: "none", stroke: "#ccc" });
  for (const [x, y] of all) add("circle", { cx: sx(x), cy: sy(y), r: 2, fill: "#5c6bc0", "fill-opacity": 0.25 });
  add("polyline", { points: series.smooth.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), fill: "none",
    stroke: "#283593", "stroke-width": 2 });
  add("text", { x: pad, y: 12 }, name);
  add("text", { x: 2, y: sy(y1) + 4 }, fmt(y1, 1)); add("text", { x: 2, y: sy(y0) }, fmt(y0, 1));
  add("text", { x: sx(x0), y: height - 6 }, `step ${x0}`); add("text", { x: sx(x1) - 40, y: height - 6 }, `${x1}`);
  return svg;
}

function groupView(group) {
  const mark = group.dropped ? `dropped by dynamic sampling (round ${group.round})`
    : group.round > 0 ? `drawn in resample round ${group.round}` : null;
  return el("div", { class: "group" + (group.dropped ? " dropped" : group.round > 0 ? " resampled" : ""),
    "data-dropped": group.dropped ? "1" : "0" },
    el("p", {}, mark ? el("span", { class: "badge" }, mark) : null, el("span", { class: "meta" }, group.prompt)),
    group.solution ? el("p", { class: "meta" }, `reference: ${group.solution}`) : null,
    group.generations.map((g) => el("div", { class: "gen" },
      rewardPills({ ...g.rewards, ...(g.advantage === null ? {} : { advantage: g.advantage }) }),
      g.tokens.length ? shadedTokens(g.tokens, g.probabilities, null, DATA.low_threshold)
        : el("div", { class: "tokens" }, g.completion))));
}

function stepView(entry) {
  const box = el("div", { class: "step sample", id: `step${entry.step}` },
    el("h3", {}, `step ${entry.step}`, el("span", { class: "meta" },
      ` — ${entry.groups} groups kept, ${entry.resampled} resampled, ${entry.dropped} dropped`)),
    el("p", { class: "meta loading" }, "loading…"));
  loadChunk(entry.chunk).then((steps) => {
    const step = steps.find((s) => s.step === entry.step);
    box.querySelector(".loading").replaceWith(...step.groups.map(groupView));
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  }).catch((error) => { box.querySelector(".loading").textContent = error.message; });
  return box;
}

function main() {
  const curves = el("div", { class: "curves" }, Object.entries(DATA.curves).map(([name, s]) => curve(name, s)));
  const list = el("div", { id: "steps" });
  document.getElementById("app").append(
    el("h2", {}, "Rewards and sub-scores (smoothed; raw points faint)"), curves,
    el("h2", {}, "Steps"), el("p", { class: "meta" }, "Tokens shaded by rollout probability; "
      + "dashed groups were dropped by dynamic sampling, purple ones drawn in a resample round."), list);
  pager(list, DATA.index, stepView, DATA.page_size);
}
main();
