// report.html: the summary (accuracy by type, distribution of KG agreement), then every sample with its X-rays,
// question, references, shaded response, rewards and the two knowledge graphs. Filters and sorting re-page.
"use strict";

function summaryView(summary) {
  const rows = [];
  for (const [field, groups] of Object.entries(summary.by_type)) {
    for (const [name, block] of Object.entries(groups)) {
      rows.push(el("tr", {}, el("td", {}, field), el("td", {}, name), el("td", { class: "num" }, block.n),
        el("td", { class: "num" }, fmt(block.accuracy)), el("td", { class: "num" }, fmt(block.accuracy_strict)),
        el("td", { class: "num" }, fmt(block.kg_jac)), el("td", { class: "num" }, fmt(block.contradiction_rate)),
        el("td", { class: "num" }, block.headroom ? fmt(block.headroom.pass_at_k) : "–"),
        el("td", { class: "num" }, block.headroom ? fmt(block.headroom.mixed) : "–")));
    }
  }
  const peak = Math.max(1, ...summary.kg_histogram.map((bin) => bin.count));
  return el("div", {},
    el("table", {}, el("tr", {}, ["field", "type", "n", "accuracy", "strict", "mean KG", "contradicts", "pass@K", "mixed"]
      .map((h) => el("th", {}, h))),
      rows),
    el("h2", {}, "Distribution of KG agreement (external_kg_jac)"),
    el("div", { class: "hist" }, summary.kg_histogram.map((bin) =>
      el("div", { style: `height: ${(90 * bin.count / peak).toFixed(1)}px`, title: `${bin.label}: ${bin.count}` },
        el("span", {}, bin.label)))),
    el("p", { class: "meta", style: "margin-top: 1.8em" }, summary.kg_note),
    el("p", { class: "meta" }, "contradicts: the share of checkable responses whose reasoning does not support their "
      + "answer. pass@K and mixed (from evaluate.py --num_samples K): some sample right; samples both right and wrong, "
      + "the only items that give GRPO an accuracy advantage."));
}

function sampleView(sample) {
  const answer = Array.isArray(sample.answer) ? sample.answer.join(", ") : sample.answer;
  const response = sample.tokens && sample.tokens.length
    ? shadedTokens(sample.tokens, sample.probabilities, sample.alternatives, DATA.low_threshold)
    : el("div", { class: "tokens" }, sample.response);
  return el("div", { class: `sample ${sample.correct ? "right" : "wrong"}`, id: `s${sample.id}`,
    "data-question-type": sample.question_type, "data-semantic-type": sample.semantic_type },
    el("p", {}, el("span", { class: "badge" }, `#${sample.id} ${sample.correct ? "correct" : "wrong"}`),
      el("span", { class: "pill" }, sample.question_type), el("span", { class: "pill" }, sample.semantic_type),
      sample.question),
    thumbnails(sample.images),
    el("p", { class: "meta" }, "reference answer: ", el("b", {}, answer)),
    el("p", { class: "meta" }, "reference reasoning: ", sample.graph.reference.text),
    sample.error ? el("p", { class: "meta" }, `error: ${sample.error}`) : null,
    response,
    el("div", {}, reasoningMarks(sample)),
    rewardPills(sample.rewards),
    graphPanel(sample.graph));
}

function main() {
  const samples = DATA.samples;
  const state = { wrong: false, question_type: "", semantic_type: "", sort: "id", descending: false };
  const list = el("div", { id: "samples" });
  const keyOf = (sample) => state.sort === "id" ? sample.id
    : state.sort === "min_probability" ? sample.min_probability : sample.rewards[state.sort];
  const refresh = () => {
    const shown = samples.filter((s) => (!state.wrong || !s.correct)
      && (!state.question_type || s.question_type === state.question_type)
      && (!state.semantic_type || s.semantic_type === state.semantic_type));
    shown.sort((a, b) => ((keyOf(a) ?? -1) - (keyOf(b) ?? -1)) * (state.descending ? -1 : 1) || a.id - b.id);
    pager(list, shown, sampleView, DATA.page_size);
  };
  const types = (field) => [...new Set(samples.map((s) => s[field]))].sort();
  const controls = el("div", { class: "controls" },
    el("label", {}, el("input", { type: "checkbox", name: "wrong_only",
      onchange: (e) => { state.wrong = e.target.checked; refresh(); } }), " wrong answers only"),
    el("label", {}, "question type ", select("question_type", types("question_type"),
      (e) => { state.question_type = e.target.value; refresh(); })),
    el("label", {}, "semantic type ", select("semantic_type", types("semantic_type"),
      (e) => { state.semantic_type = e.target.value; refresh(); })),
    el("label", {}, "sort by ", el("select", { name: "sort", onchange: (e) => { state.sort = e.target.value; refresh(); } },
      ["id", ...DATA.reward_names, "min_probability"].map((name) => el("option", { value: name }, name)))),
    el("label", {}, el("input", { type: "checkbox", name: "descending",
      onchange: (e) => { state.descending = e.target.checked; refresh(); } }), " descending"));
  document.getElementById("app").append(
    el("h2", {}, "Summary"), summaryView(DATA.summary), el("h2", {}, "Samples"), legend(), controls, list);
  refresh();
}
main();
