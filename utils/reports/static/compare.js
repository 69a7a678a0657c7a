// compare.html: per-type accuracy and KG agreement of two runs with the noise of one evaluation, then the samples,
// flips first, each with both reasonings and their knowledge graphs against the reference.
"use strict";

function summaryTable(summary, labels) {
  const [a, b] = labels;
  const head = ["field", "type", "n", `accuracy ${a}`, `accuracy ${b}`, "change", "± SE (one evaluation)",
    `mean KG ${a}`, `mean KG ${b}`, "± SE", "right→wrong", "wrong→right", `contradicts ${a}`, `contradicts ${b}`,
    `mixed ${a}`, `mixed ${b}`];
  const share = ([bad, checked]) => checked ? `${bad} of ${checked}` : "–";
  const rows = [];
  for (const [field, groups] of Object.entries(summary)) {
    for (const [name, block] of Object.entries(groups)) {
      rows.push(el("tr", {}, el("td", {}, field), el("td", {}, name), el("td", { class: "num" }, block.n),
        el("td", { class: "num" }, fmt(block.accuracy[0])), el("td", { class: "num" }, fmt(block.accuracy[1])),
        el("td", { class: "num" }, fmt(block.accuracy[1] - block.accuracy[0])),
        el("td", { class: "num" }, fmt(block.accuracy_se[0])),
        el("td", { class: "num" }, fmt(block.kg_jac[0])), el("td", { class: "num" }, fmt(block.kg_jac[1])),
        el("td", { class: "num" }, fmt(block.kg_jac_se[0])),
        el("td", { class: "num" }, block.flips["right→wrong"]), el("td", { class: "num" }, block.flips["wrong→right"]),
        el("td", { class: "num" }, share(block.contradictions[0])), el("td", { class: "num" }, share(block.contradictions[1])),
        el("td", { class: "num" }, fmt(block.mixed[0])), el("td", { class: "num" }, fmt(block.mixed[1]))));
    }
  }
  return el("table", { class: "summary" }, el("tr", {}, head.map((h) => el("th", {}, h))), rows);
}

function sampleView(sample) {
  const answer = Array.isArray(sample.answer) ? sample.answer.join(", ") : sample.answer;
  const flipClass = sample.flip === "right→wrong" ? "flip-worse" : sample.flip === "wrong→right" ? "flip-better" : "";
  const run = (index) => {
    const r = sample.runs[index];
    return el("div", { class: "run" },
      el("p", {}, el("span", { class: "badge" }, `${DATA.labels[index]}: ${r.correct ? "correct" : "wrong"}`)),
      el("div", { class: "tokens" }, r.response), el("div", {}, reasoningMarks(r)), rewardPills(r.rewards),
      graphSide(`${DATA.labels[index]} reasoning`, r.graph.response));
  };
  return el("div", { class: `sample ${flipClass}`, id: `s${sample.id}`, "data-flip": sample.flip },
    el("p", {}, el("span", { class: "badge" }, `#${sample.id} ${sample.flip}`),
      el("span", { class: "pill" }, sample.question_type), el("span", { class: "pill" }, sample.semantic_type),
      sample.question),
    thumbnails(sample.images),
    el("p", { class: "meta" }, "reference answer: ", el("b", {}, answer)),
    el("div", { class: "cols" }, run(0), run(1)),
    graphSide("reference reasoning (marks against the second run)", sample.runs[1].graph.reference));
}

function main() {
  const state = { flips: false, question_type: "" };
  const list = el("div", { id: "samples" });
  const refresh = () => pager(list, DATA.samples.filter((s) => (!state.flips || s.flip !== "same")
    && (!state.question_type || s.question_type === state.question_type)), sampleView, DATA.page_size);
  const types = [...new Set(DATA.samples.map((s) => s.question_type))].sort();
  const controls = el("div", { class: "controls" },
    el("label", {}, el("input", { type: "checkbox", name: "flips_only",
      onchange: (e) => { state.flips = e.target.checked; refresh(); } }), " flipped samples only"),
    el("label", {}, "question type ", select("question_type", types,
      (e) => { state.question_type = e.target.value; refresh(); })));
  document.getElementById("app").append(
    el("p", { class: "meta" }, `${DATA.labels[0]} → ${DATA.labels[1]}, correctness by the ${DATA.metric} metric; `
      + "SE: the noise of one evaluation of the first run."),
    summaryTable(DATA.summary, DATA.labels), el("h2", {}, "Samples (flips first)"), legend(), controls, list);
  refresh();
}
main();
