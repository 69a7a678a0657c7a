// Shared by the three report pages: element building, images with a lightbox, token shading, knowledge graphs
// and a pager. Each page's own script reads DATA (the JSON block the page embeds) and calls these.
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fmt(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
}

function openLightbox(src) {
  const box = el("div", { class: "lightbox", onclick: () => box.remove() }, el("img", { src }));
  document.body.append(box);
}

// Thumbnails of a sample's X-rays; `images` are indices into DATA.images (data URIs, shared between samples).
function thumbnails(images) {
  return el("div", { class: "thumbs" }, images.map((index) => {
    const src = DATA.images[index];
    if (!src) return el("span", { class: "meta" }, "image missing");
    return el("img", { src, alt: "X-ray", title: "click to enlarge", onclick: () => openLightbox(src) });
  }));
}

// The response shaded by token probability (white = certain, red = unlikely), alternatives on hover.
function shadedTokens(tokens, probabilities, alternatives, lowThreshold) {
  return el("div", { class: "tokens" }, tokens.map((token, i) => {
    const p = probabilities[i];
    const alts = (alternatives && alternatives[i]) || [];
    const title = [`p=${fmt(p)}`, ...alts.map(([text, q]) => `${JSON.stringify(text)} ${fmt(q)}`)].join(" | ");
    const alpha = Math.max(0, Math.min(1, 1 - p)).toFixed(2);
    return el("span", { class: "tok" + (p < lowThreshold ? " low" : ""), title,
      style: `background: rgba(229, 57, 53, ${alpha})` }, token);
  }));
}

const POLARITY = { disorder_present: "+", disorder_notpresent: "−", devices_present: "+", devices_notpresent: "−" };

// One side of a KG comparison: the reasoning with its entities highlighted, then entity chips and relations,
// each marked matched / missing (reference only) / invented (response only), as the KG reward's scorer keyed them.
function graphSide(title, side) {
  const text = side.text || "";
  const spans = [];
  let at = 0;
  for (const entity of [...side.entities].sort((a, b) => a.start - b.start)) {
    if (entity.start < at) continue;  // overlapping spans: the chips below still list every entity
    spans.push(text.slice(at, entity.start));
    spans.push(el("span", { class: `ent ${entity.status}`, title: `${entity.type}: ${entity.status}` },
      text.slice(entity.start, entity.end)));
    at = entity.end;
  }
  spans.push(text.slice(at));
  const chips = side.entities.map((entity) => {
    const absent = entity.type.endsWith("notpresent");
    return el("span", { class: `chip entity ${entity.status}${absent ? " absent" : ""}`, "data-status": entity.status,
      "data-type": entity.type },
      POLARITY[entity.type] ? el("span", { class: "polarity", title: absent ? "absent" : "present" },
        POLARITY[entity.type]) : null,
      el("span", { class: "text" }, entity.text), el("span", { class: "type" }, entity.type));
  });
  const relations = side.relations.map((relation) =>
    el("span", { class: `chip relation ${relation.status}`, "data-status": relation.status },
      `${relation.source} —${relation.type}→ ${relation.target}`));
  return el("div", { class: "kg" }, el("h4", {}, title), el("div", { class: "reasoning" }, spans),
    el("div", {}, chips.length ? chips : el("span", { class: "meta" }, "no entities")),
    el("div", {}, relations.length ? relations : el("span", { class: "meta" }, "no relations")));
}

function graphPanel(graph, responseTitle = "response reasoning", referenceTitle = "reference reasoning") {
  return el("div", { class: "cols" }, graphSide(responseTitle, graph.response), graphSide(referenceTitle,
    graph.reference));
}

function legend() {
  return el("p", { class: "legend meta" },
    el("span", {}, el("span", { class: "chip matched" }, "matched"), " in both graphs"),
    el("span", {}, el("span", { class: "chip missing" }, "missing"), " reference only"),
    el("span", {}, el("span", { class: "chip invented" }, "invented"), " response only"),
    el("span", {}, "+ present, − absent (ReXKG types)"));
}

// The marks on one response: its reasoning contradicts its own answer (utils/scoring/consistency.py), and how many of
// its samples at the rollout temperature were right (evaluate.py --num_samples).
function reasoningMarks(run) {
  return [
    run.consistency === "contradicts"
      ? el("span", { class: "pill contradicts", title: "the reasoning does not support the answer given" },
        "reasoning contradicts its answer") : null,
    run.samples_right
      ? el("span", { class: "pill samples", title: "samples at the rollout temperature with the right answer" },
        `${run.samples_right[0]} of ${run.samples_right[1]} samples right`) : null,
  ];
}

function rewardPills(rewards) {
  return el("div", {}, Object.entries(rewards).map(([name, value]) =>
    el("span", { class: "pill", "data-reward": name }, `${name} ${fmt(value)}`)));
}

// A page of `items` at a time in `container`, with previous/next buttons; `render` makes one item's element.
function pager(container, items, render, pageSize) {
  let page = 0;
  const pages = Math.max(1, Math.ceil(items.length / pageSize));
  const status = el("span", { class: "page-status" });
  const body = el("div", {});
  const show = () => {
    body.replaceChildren(...items.slice(page * pageSize, (page + 1) * pageSize).map(render));
    status.textContent = `page ${page + 1} of ${pages} (${items.length} shown of ${DATA.total})`;
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  };
  const controls = el("div", { class: "pager" },
    el("button", { class: "prev", onclick: () => { if (page > 0) { page--; show(); } } }, "◀ previous"), status,
    el("button", { class: "next", onclick: () => { if (page < pages - 1) { page++; show(); } } }, "next ▶"));
  container.replaceChildren(controls, body);
  show();
}

function select(name, values, onchange) {
  return el("select", { name, onchange }, el("option", { value: "" }, "all"),
    values.map((value) => el("option", { value }, value)));
}
