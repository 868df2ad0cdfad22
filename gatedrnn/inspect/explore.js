// gatedrnn explore: the page's script. Data: #meta (JSON) and #blob (base64 of uint8 arrays),
// written by gatedrnn/inspect/explore.py, whose docstring gives the layout.
"use strict";
(function () {
  const meta = JSON.parse(document.getElementById("meta").textContent);
  const bytes = decodeBase64(document.getElementById("blob").textContent);
  const N = meta.steps;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  function decodeBase64(text) {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  // -- data access ------------------------------------------------------------------------
  // quantity q of a layer: codes (H, N) unit-major; value = lo[u] + code * step[u]
  for (const layer of meta.layers) {
    for (const q of layer.quantities) {
      q.codes = bytes.subarray(q.offset, q.offset + layer.hidden * N);
      q.step = q.lo.map((lo, u) => (q.hi[u] - lo) / 255);
      q.totals = null; // per-unit sums, computed on the first selection
    }
  }
  for (const f of meta.features) {
    f.codes = bytes.subarray(f.offset, f.offset + N);
  }
  const inputs = meta.inputs ? Object.assign(meta.inputs, {
    codes: bytes.subarray(meta.inputs.offset, meta.inputs.offset + meta.inputs.channels * N),
  }) : null;
  const guesses = meta.guesses ? {
    count: meta.guesses.count,
    ids: bytes.subarray(meta.guesses.ids, meta.guesses.ids + meta.guesses.count * N),
    probabilities: bytes.subarray(meta.guesses.probabilities, meta.guesses.probabilities + meta.guesses.count * N),
    next: bytes.subarray(meta.guesses.next, meta.guesses.next + N),
  } : null;
  const segment = meta.kind === "text" ? N : meta.segment;

  const state = { layer: 0, quantity: "h", unit: 0, hovered: null, selection: null, ranking: [], pattern: [] };

  function layerOf(index) { return meta.layers[index]; }
  function quantityOf(layer, name) { return layer.quantities.find((q) => q.name === name); }
  function value(q, u, t) { return q.lo[u] + q.codes[u * N + t] * q.step[u]; }
  function featureValue(f, t) {
    const v = f.lo + f.codes[t] * (f.hi - f.lo) / 255;
    return f.integer ? Math.round(v) : v;
  }
  function previousValue(layer, name, u, t) {
    return t % segment === 0 ? layer.initial : value(quantityOf(layer, name), u, t - 1);
  }
  function isSigmoid(layer, name) {
    const gate = layer.diagram.gates.find((g) => g.name === name);
    return gate !== undefined && gate.activation === "σ";
  }
  function fmt(v, digits = 3) { return Number.isFinite(v) ? v.toFixed(digits) : "—"; }

  // -- colours ----------------------------------------------------------------------------
  function rgb(r, g, b) { return `rgb(${r | 0},${g | 0},${b | 0})`; }
  const SEQUENTIAL = [], DIVERGING = [];
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    SEQUENTIAL.push(rgb(255 - 200 * x, 255 - 120 * x, 255 - 40 * x)); // white -> blue
    const d = 2 * x - 1; // blue (-1) - white (0) - red (+1)
    DIVERGING.push(d < 0 ? rgb(255 + 180 * d, 255 + 110 * d, 255) : rgb(255, 255 - 150 * d, 255 - 180 * d));
  }
  // the colour index of each step for one unit, and the legend's range
  function colourScale(layer, q, u) {
    if (isSigmoid(layer, q.name)) return { palette: SEQUENTIAL, low: 0, high: 1 };
    const lo = q.lo[u], hi = q.hi[u];
    if (lo >= 0) return { palette: SEQUENTIAL, low: 0, high: hi > 0 ? hi : 1 };
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return { palette: DIVERGING, low: -m, high: m };
  }
  function colourIndex(scale, v) {
    const x = (v - scale.low) / (scale.high - scale.low);
    return Math.max(0, Math.min(255, Math.round(x * 255)));
  }

  // -- the sequence -----------------------------------------------------------------------
  const container = $("sequence");
  let spans = [];
  const ROW = 100; // steps per row of a numeric sequence (a longer one wraps)

  function escapeHtml(c) { return c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "&" ? "&amp;" : c; }

  function buildSequence() {
    const parts = [];
    if (meta.kind === "text") {
      // one block per line: off-screen lines skip style, layout and paint (content-visibility)
      parts.push('<div class="line">');
      for (let t = 0; t < N; t++) {
        const c = meta.text[t];
        if (c === "\n") parts.push(`<span class="s newline" data-i="${t}">↵</span></div><div class="line">`);
        else parts.push(`<span class="s" data-i="${t}">${escapeHtml(c)}</span>`);
      }
      parts.push("</div>");
      container.innerHTML = parts.join("");
    } else {
      for (let start = 0; start < N; start += Math.min(ROW, segment)) {
        const end = Math.min(N, start + Math.min(ROW, segment), (Math.floor(start / segment) + 1) * segment);
        const example = Math.floor(start / segment);
        parts.push(`<div class="row"><div class="row-label">sequence ${example} (target ${escapeHtml(meta.targets[example] || "")}), steps ${start % segment}–${(end - 1) % segment}</div>`);
        parts.push(`<canvas class="curve" data-start="${start}" data-end="${end}" width="${(end - start) * 7}" height="36"></canvas><div>`);
        for (let t = start; t < end; t++) parts.push(`<span class="s box" data-i="${t}"></span>`);
        parts.push("</div></div>");
      }
      container.innerHTML = parts.join("");
      for (const canvas of container.querySelectorAll("canvas.curve")) drawCurve(canvas);
    }
    spans = Array.from(container.querySelectorAll(".s"));
  }

  function drawCurve(canvas) {
    const start = +canvas.dataset.start, end = +canvas.dataset.end;
    const ctx = canvas.getContext("2d");
    const colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
    const channels = inputs.channels;
    ctx.globalAlpha = channels > 4 ? 0.5 : 1;
    for (let k = 0; k < channels; k++) {
      ctx.strokeStyle = colours[k % colours.length];
      ctx.beginPath();
      for (let t = start; t < end; t++) {
        const code = inputs.codes[k * N + t];
        const x = (t - start) * 7 + 3.5, y = 33 - code / 255 * 30;
        if (t === start) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
    }
  }

  function recolour() {
    const layer = layerOf(state.layer), q = quantityOf(layer, state.quantity), u = state.unit;
    const scale = colourScale(layer, q, u);
    const base = u * N;
    for (let t = 0; t < N; t++) {
      spans[t].style.backgroundColor = scale.palette[colourIndex(scale, q.lo[u] + q.codes[base + t] * q.step[u])];
    }
    $("legend-low").textContent = fmt(scale.low, 2);
    $("legend-high").textContent = fmt(scale.high, 2);
    const bar = $("legend-bar").getContext("2d");
    for (let x = 0; x < 120; x++) {
      bar.fillStyle = scale.palette[Math.round(x / 119 * 255)];
      bar.fillRect(x, 0, 1, 12);
    }
    $("unit").value = u;
    $("unit").max = layer.hidden - 1;
    $("quantity").value = state.quantity;
    $("layer").value = state.layer;
    if (state.hovered !== null) showHover(state.hovered);
    drawForget();
  }

  // -- hover: values and the diagram --------------------------------------------------------
  function stepTitle(t) {
    if (meta.kind === "text") {
      const c = meta.text[t];
      const shown = c === "\n" ? "\\n" : c === "\t" ? "\\t" : c;
      return `step ${t}: '${shown}'`;
    }
    const example = Math.floor(t / segment);
    const channels = [];
    for (let k = 0; k < Math.min(inputs.channels, 4); k++) {
      channels.push(fmt(inputs.lo[k] + inputs.codes[k * N + t] * (inputs.hi[k] - inputs.lo[k]) / 255, 3));
    }
    return `step ${t}: sequence ${example}, step ${t % segment}; input ${channels.join(", ")}` +
      (inputs.channels > 4 ? ", ..." : "");
  }

  function showHover(t) {
    if (state.hovered !== null && spans[state.hovered]) spans[state.hovered].classList.remove("hovered");
    state.hovered = t;
    spans[t].classList.add("hovered");
    const layer = layerOf(state.layer), u = state.unit;
    $("hover-title").textContent = `${stepTitle(t)} — ${layer.name} (${layer.cell}), unit ${u}`;
    const rows = ["<tr><th>quantity</th><th>value</th><th>previous step</th></tr>"];
    for (const q of layer.quantities) {
      const v = value(q, u, t);
      const before = q.kind === "state" ? fmt(previousValue(layer, q.name, u, t)) : "";
      rows.push(`<tr class="${q.name === state.quantity ? "current" : ""}" data-quantity="${q.name}">` +
        `<td class="name">${q.name} (${q.kind})</td><td class="value" data-value="${v}">${fmt(v)}</td><td>${before}</td></tr>`);
    }
    for (const f of meta.features) {
      rows.push(`<tr data-feature="${f.name}"><td class="name">${f.name}</td><td>${f.integer ? featureValue(f, t) : fmt(featureValue(f, t))}</td><td></td></tr>`);
    }
    $("values").innerHTML = rows.join("");
    if (guesses) {
      const list = [];
      for (let k = 0; k < guesses.count; k++) {
        const c = meta.vocabulary[guesses.ids[k * N + t]];
        const shown = c === "\n" ? "\\n" : c === "\t" ? "\\t" : c;
        list.push(`'${escapeHtml(shown)}' ${fmt(guesses.probabilities[k * N + t] / 255, 2)}`);
      }
      $("guesses").innerHTML = `next character: p = ${fmt(guesses.next[t] / 255, 2)}; the model's guesses: ${list.join(", ")}`;
    }
    drawDiagram(layer, u, t);
    drawForgetMarker();
  }

  function svg(tag, attributes, text) {
    const element = document.createElementNS(SVG, tag);
    for (const [key, v] of Object.entries(attributes)) element.setAttribute(key, v);
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // The classic figure, drawn from the spec: gates as boxes (their activation) at the
  // bottom, fed by [h_{t-1}, x_t]; one belt per state update, on which the products of
  // its sum meet (x nodes) and add up (+ nodes); each value annotated.
  function drawDiagram(layer, u, t) {
    const d = layer.diagram, root = $("diagram");
    root.innerHTML = "";
    const W = 480, beltGap = 110, top = 34;
    const gateY = top + d.updates.length * beltGap + 20, height = gateY + 78;
    root.setAttribute("viewBox", `0 0 ${W} ${height}`);
    root.setAttribute("height", height);
    const gateX = {};
    const gateValue = (name) => value(quantityOf(layer, name), u, t);
    d.gates.forEach((g, i) => { gateX[g.name] = 50 + (i + 0.5) * (W - 100) / d.gates.length; });
    // the input bar and the gate boxes
    root.appendChild(svg("line", { x1: 30, y1: gateY + 58, x2: W - 30, y2: gateY + 58, class: "wire" }));
    root.appendChild(svg("text", { x: 30, y: gateY + 73 }, "[h_{t-1}, x_t]"));
    for (const g of d.gates) {
      const x = gateX[g.name];
      const group = svg("g", { class: "gate", "data-gate": g.name });
      group.appendChild(svg("title", {}, g.note));
      group.appendChild(svg("line", { x1: x, y1: gateY + 34, x2: x, y2: gateY + 58, class: "wire" }));
      group.appendChild(svg("rect", { x: x - 30, y: gateY, width: 60, height: 34, rx: 4 }));
      group.appendChild(svg("text", { x: x, y: gateY + 14, "text-anchor": "middle" }, `${g.activation}  ${g.name}`));
      group.appendChild(svg("text", { x: x, y: gateY + 28, "text-anchor": "middle", class: "value",
        "data-gate-value": g.name }, fmt(gateValue(g.name))));
      root.appendChild(group);
    }
    d.updates.forEach((update, k) => {
      const y = top + k * beltGap;
      const newValue = value(quantityOf(layer, update.state), u, t);
      const previous = previousValue(layer, update.state, u, t);
      const terms = update.terms;
      const carries = terms === null || terms.some((term) => term.some((f) => f.kind === "previous"));
      root.appendChild(svg("line", { x1: carries ? 60 : W / 2 - 80, y1: y, x2: W - 70, y2: y, class: "belt" }));
      if (carries) {
        root.appendChild(svg("text", { x: 4, y: y - 4 }, `${update.state}_{t-1}`));
        root.appendChild(svg("text", { x: 4, y: y + 12, class: "value" }, fmt(previous)));
      }
      root.appendChild(svg("text", { x: W - 64, y: y - 4 }, `${update.state}_t`));
      root.appendChild(svg("text", { x: W - 64, y: y + 12, class: "value", "data-state-value": update.state }, fmt(newValue)));
      if (terms === null) {
        const box = svg("g", { class: "function" });
        box.appendChild(svg("ellipse", { cx: W / 2, cy: y, rx: 120, ry: 16 }));
        box.appendChild(svg("text", { x: W / 2, y: y + 4, "text-anchor": "middle" }, update.equation.slice(0, 42)));
        root.appendChild(box);
        for (const g of d.gates) {
          root.appendChild(svg("path", { d: `M${gateX[g.name]},${gateY} L${gateX[g.name]},${y + 40} L${W / 2},${y + 16}`, class: "wire" }));
        }
        return;
      }
      // known factors' values; a factor of another kind is recovered from the new state
      const factorValue = (f) => f.kind === "gate" ? gateValue(f.name) : f.kind === "complement" ? 1 - gateValue(f.name)
        : f.kind === "previous" ? previous : null;
      const termValues = terms.map((term) => term.reduce((p, f) => (p === null || factorValue(f) === null ? null : p * factorValue(f)), 1));
      const unknown = termValues.indexOf(null);
      if (unknown >= 0 && termValues.filter((v) => v === null).length === 1) {
        termValues[unknown] = newValue - termValues.reduce((s, v) => s + (v === null ? 0 : v), 0);
      }
      const spacing = (W - 200) / Math.max(terms.length, 1);
      terms.forEach((term, j) => {
        // an update that does not carry its state (the LSTM's h) sits right of the others
        const x = carries ? 110 + (j + 0.5) * spacing : W - 105 - j * spacing;
        const onBelt = term.some((f) => f.kind === "previous") || (!carries && j === 0);
        const nodeY = onBelt ? y : y + 48;
        if (!onBelt) {
          const plus = svg("g", { class: "op" });
          plus.appendChild(svg("line", { x1: x, y1: nodeY - 11, x2: x, y2: y + 11, class: "wire" }));
          plus.appendChild(svg("circle", { cx: x, cy: y, r: 11 }));
          plus.appendChild(svg("text", { x: x, y: y + 4, "text-anchor": "middle" }, "+"));
          root.appendChild(plus);
        }
        const known = term.filter((f) => factorValue(f) !== null).reduce((p, f) => p * factorValue(f), 1);
        term.forEach((f, m) => {
          if (f.kind === "gate" || f.kind === "complement") {
            const gx = gateX[f.name];
            const bend = nodeY + 22 + 8 * m;
            root.appendChild(svg("path", { d: `M${gx},${gateY} L${gx},${bend} L${x + 6 * m},${bend} L${x + 6 * m},${nodeY + 11}`, class: "wire" }));
            if (f.kind === "complement") {
              const one = svg("g", { class: "op" });
              one.appendChild(svg("circle", { cx: x + 6 * m + 22, cy: bend, r: 10 }));
              one.appendChild(svg("text", { x: x + 6 * m + 22, y: bend + 4, "text-anchor": "middle" }, "1−"));
              root.appendChild(one);
            }
          } else if (f.kind === "function") {
            // a function of another state (tanh(c_t)) hangs from that state's belt above the node
            const source = f.reads ? top + d.updates.findIndex((other) => other.state === f.reads) * beltGap : null;
            const fx = source !== null ? x : x - 70, fy = source !== null ? (source + nodeY) / 2 : nodeY;
            const group = svg("g", { class: "function" });
            group.appendChild(svg("title", {}, f.text));
            if (source !== null) {
              group.appendChild(svg("path", { d: `M${fx},${source} L${fx},${fy - 12} M${fx},${fy + 12} L${x},${nodeY - 11}`, class: "wire" }));
            } else {
              group.appendChild(svg("path", { d: `M${fx + 34},${fy} L${x - 11},${nodeY}`, class: "wire" }));
            }
            group.appendChild(svg("ellipse", { cx: fx, cy: fy, rx: 36, ry: 12 }));
            group.appendChild(svg("text", { x: fx, y: fy + 4, "text-anchor": "middle" }, f.text.length > 14 ? f.text.slice(0, 13) + "…" : f.text));
            const recovered = termValues[j] === null || known === 0 ? NaN : termValues[j] / known;
            group.appendChild(svg("text", { x: fx + 40, y: fy + 4, class: "value" }, "≈" + fmt(recovered)));
            root.appendChild(group);
          }
        });
        const times = svg("g", { class: "op" });
        times.appendChild(svg("circle", { cx: x, cy: nodeY, r: 11 }));
        times.appendChild(svg("text", { x: x, y: nodeY + 4, "text-anchor": "middle" }, "×"));
        times.appendChild(svg("text", { x: x + 14, y: nodeY - 13, class: "value" }, fmt(termValues[j])));
        root.appendChild(times);
      });
    });
    $("equations").textContent = d.equations.join("\n");
  }

  // -- select and match ---------------------------------------------------------------------
  function totals(q, hidden) {
    if (q.totals === null) {
      q.totals = new Float64Array(hidden);
      for (let u = 0; u < hidden; u++) {
        let s = 0;
        const base = u * N;
        for (let t = 0; t < N; t++) s += q.codes[base + t];
        q.totals[u] = q.lo[u] * N + s * q.step[u];
      }
    }
    return q.totals;
  }

  // units ranked by (mean inside the span) - (mean elsewhere), of the quantity coloured
  function rank(from, to) {
    const layer = layerOf(state.layer), q = quantityOf(layer, state.quantity), H = layer.hidden;
    const all = totals(q, H), length = to - from + 1, rest = N - length;
    const scores = [];
    for (let u = 0; u < H; u++) {
      let s = 0;
      const base = u * N;
      for (let t = from; t <= to; t++) s += q.codes[base + t];
      const inside = q.lo[u] + s * q.step[u] / length;
      const outside = rest > 0 ? (all[u] - inside * length) / rest : 0;
      scores.push({ unit: u, score: inside - outside, inside, outside });
    }
    scores.sort((a, b) => b.score - a.score);
    return scores;
  }

  function select(from, to) {
    from = Math.max(0, Math.min(N - 1, from | 0));
    to = Math.max(0, Math.min(N - 1, to | 0));
    if (to < from) [from, to] = [to, from];
    if (state.selection) for (let t = state.selection[0]; t <= state.selection[1]; t++) spans[t].classList.remove("selected");
    state.selection = [from, to];
    for (let t = from; t <= to; t++) spans[t].classList.add("selected");
    $("select-from").value = from;
    $("select-to").value = to;
    $("selection-text").textContent = meta.kind === "text" ? JSON.stringify(meta.text.slice(from, Math.min(to + 1, from + 60))) : `${to - from + 1} steps`;
    state.ranking = rank(from, to);
    state.pattern = state.ranking.slice(0, 5).map((r) => r.unit);
    showRanking();
    match();
    drawForget();
  }

  function showRanking() {
    const rows = ["<tr><th>unit</th><th>on in span − elsewhere</th><th>mean in span</th><th>mean elsewhere</th><th>match</th></tr>"];
    for (const r of state.ranking.slice(0, 10)) {
      const checked = state.pattern.includes(r.unit) ? "checked" : "";
      rows.push(`<tr data-unit="${r.unit}"><td>${r.unit}</td><td>${fmt(r.score)}</td><td>${fmt(r.inside)}</td>` +
        `<td>${fmt(r.outside)}</td><td><input type="checkbox" data-unit="${r.unit}" ${checked}></td></tr>`);
    }
    $("ranking").innerHTML = rows.join("");
  }

  let matched = [];
  // the other spans where every checked unit is on: above the midpoint of its mean in the
  // span and its mean elsewhere (LSTMVis' match, with per-unit thresholds)
  function match() {
    for (const t of matched) spans[t].classList.remove("matched");
    matched = [];
    const list = $("matches");
    if (!state.selection || state.pattern.length === 0) { list.innerHTML = ""; return []; }
    const layer = layerOf(state.layer), q = quantityOf(layer, state.quantity);
    const chosen = state.pattern.map((u) => state.ranking.find((r) => r.unit === u));
    const on = new Uint8Array(N).fill(1);
    for (const r of chosen) {
      const threshold = (r.inside + r.outside) / 2, base = r.unit * N;
      for (let t = 0; t < N; t++) if (!(q.lo[r.unit] + q.codes[base + t] * q.step[r.unit] > threshold)) on[t] = 0;
    }
    const [from, to] = state.selection, length = to - from + 1;
    const runs = [];
    for (let t = 0; t < N; t++) {
      if (!on[t]) continue;
      let end = t;
      while (end + 1 < N && on[end + 1]) end++;
      if (end < from || t > to) runs.push([t, end]);
      t = end;
    }
    runs.sort((a, b) => Math.abs(a[1] - a[0] + 1 - length) - Math.abs(b[1] - b[0] + 1 - length) || a[0] - b[0]);
    const shown = runs.slice(0, 15);
    const items = [];
    for (const [a, b] of shown) {
      for (let t = a; t <= b; t++) { spans[t].classList.add("matched"); matched.push(t); }
      const label = meta.kind === "text"
        ? JSON.stringify(meta.text.slice(Math.max(0, a - 10), a)).slice(1, -1) + "[" + JSON.stringify(meta.text.slice(a, b + 1)).slice(1, -1) + "]" + JSON.stringify(meta.text.slice(b + 1, b + 11)).slice(1, -1)
        : `sequence ${Math.floor(a / segment)}, steps ${a % segment}–${b % segment}`;
      items.push(`<li data-start="${a}">${a}–${b}: ${escapeText(label)}</li>`);
    }
    list.innerHTML = items.join("") || "<li>no other span where all the checked units are on</li>";
    return shown;
  }
  function escapeText(text) { return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

  // -- search by feature --------------------------------------------------------------------
  function search(featureName) {
    const layer = layerOf(state.layer);
    const entries = [];
    for (const q of layer.quantities) {
      layer.correlations[featureName][q.name].forEach((r, u) => entries.push({ quantity: q.name, unit: u, r }));
    }
    entries.sort((a, b) => Math.abs(b.r) - Math.abs(a.r));
    const rows = ["<tr><th>quantity</th><th>unit</th><th>correlation</th></tr>"];
    for (const e of entries.slice(0, 15)) {
      rows.push(`<tr data-unit="${e.unit}" data-quantity="${e.quantity}"><td class="name">${e.quantity}</td><td>${e.unit}</td><td>${fmt(e.r)}</td></tr>`);
    }
    $("search").innerHTML = rows.join("");
    $("feature").value = featureName;  // a search from the script shows its feature too
    const f = meta.features.find((x) => x.name === featureName);
    $("feature-description").textContent = f ? f.description : "";
    return entries.slice(0, 15);
  }

  // -- the forget gate over time --------------------------------------------------------------
  function forgetUnits() { return state.pattern.length ? state.pattern : [state.unit]; }

  function drawForget() {
    const layer = layerOf(state.layer), gate = layer.diagram.forget, canvas = $("forget");
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!gate) {
      $("forget-hint").textContent = `The ${layer.cell} cell has no forget gate.`;
      return;
    }
    const q = quantityOf(layer, gate), units = forgetUnits().slice(0, 12);
    $("forget-hint").textContent = `Gate ${gate} (near 1 keeps the state, near 0 forgets it) of unit(s) ${units.join(", ")}, ` +
      `one row each, all ${N} steps left to right; each column shows the lowest value of its steps (dark: here it forgets). Click to go there.`;
    const width = canvas.width, rowHeight = Math.floor((canvas.height - 10) / units.length);
    const image = ctx.createImageData(width, canvas.height);
    units.forEach((u, row) => {
      const base = u * N;
      for (let x = 0; x < width; x++) {
        const a = Math.floor(x * N / width), b = Math.max(a + 1, Math.floor((x + 1) * N / width));
        let low = 255;
        for (let t = a; t < b; t++) low = Math.min(low, q.codes[base + t]);
        const v = q.lo[u] + low * q.step[u]; // the gate value, 0..1
        const shade = Math.round(255 * Math.max(0, Math.min(1, v)));
        for (let y = row * rowHeight; y < (row + 1) * rowHeight - 1; y++) {
          const p = (y * width + x) * 4;
          image.data[p] = shade; image.data[p + 1] = shade; image.data[p + 2] = Math.min(255, shade + 40); image.data[p + 3] = 255;
        }
      }
    });
    ctx.putImageData(image, 0, 0);
    drawForgetMarker();
  }

  function drawForgetMarker() {
    const canvas = $("forget"), ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, canvas.height - 9, canvas.width, 9);
    if (state.hovered === null) return;
    ctx.fillStyle = "#d62728";
    ctx.fillRect(Math.floor(state.hovered * canvas.width / N) - 1, canvas.height - 9, 3, 9);
  }

  // -- controls -------------------------------------------------------------------------------
  function setView(layerIndex, quantity, unit) {
    state.layer = Math.max(0, Math.min(meta.layers.length - 1, layerIndex | 0));
    const layer = layerOf(state.layer);
    state.quantity = quantityOf(layer, quantity) ? quantity : "h";
    state.unit = Math.max(0, Math.min(layer.hidden - 1, unit | 0));
    recolour();
  }

  function scrollTo(t) {
    spans[t].scrollIntoView({ block: "center", inline: "nearest" });
    showHover(t);
  }

  function fillControls() {
    $("title").textContent = meta.title;
    $("layer").innerHTML = meta.layers.map((l, i) => `<option value="${i}">${l.name} (${l.cell}, ${l.hidden} units)</option>`).join("");
    const fillQuantities = () => {
      $("quantity").innerHTML = layerOf(state.layer).quantities.map((q) => `<option value="${q.name}">${q.name} (${q.kind})</option>`).join("");
    };
    fillQuantities();
    $("feature").innerHTML = meta.features.map((f) => `<option value="${f.name}">${f.name}</option>`).join("");
    $("layer").addEventListener("change", (e) => { state.layer = +e.target.value; fillQuantities(); setView(state.layer, state.quantity, state.unit); search($("feature").value); });
    $("quantity").addEventListener("change", (e) => setView(state.layer, e.target.value, state.unit));
    $("unit").addEventListener("change", (e) => setView(state.layer, state.quantity, +e.target.value));
    $("previous-unit").addEventListener("click", () => setView(state.layer, state.quantity, state.unit - 1));
    $("next-unit").addEventListener("click", () => setView(state.layer, state.quantity, state.unit + 1));
    $("feature").addEventListener("change", (e) => search(e.target.value));
    $("select-apply").addEventListener("click", () => select(+$("select-from").value, +$("select-to").value));
    $("ranking").addEventListener("click", (e) => {
      if (e.target.matches("input[type=checkbox]")) {
        const u = +e.target.dataset.unit;
        state.pattern = e.target.checked ? state.pattern.concat([u]) : state.pattern.filter((x) => x !== u);
        match();
        drawForget();
        return;
      }
      const row = e.target.closest("tr[data-unit]");
      if (row) setView(state.layer, state.quantity, +row.dataset.unit);
    });
    $("search").addEventListener("click", (e) => {
      const row = e.target.closest("tr[data-unit]");
      if (row) setView(state.layer, row.dataset.quantity, +row.dataset.unit);
    });
    $("matches").addEventListener("click", (e) => {
      const item = e.target.closest("li[data-start]");
      if (item) scrollTo(+item.dataset.start);
    });
    $("forget").addEventListener("click", (e) => {
      const box = e.target.getBoundingClientRect();
      scrollTo(Math.min(N - 1, Math.floor((e.clientX - box.left) / box.width * N)));
    });
    let dragFrom = null;
    container.addEventListener("mouseover", (e) => {
      const span = e.target.closest(".s");
      if (!span) return;
      showHover(+span.dataset.i);
    });
    container.addEventListener("mousedown", (e) => {
      const span = e.target.closest(".s");
      if (span) { dragFrom = +span.dataset.i; e.preventDefault(); }
    });
    document.addEventListener("mouseup", (e) => {
      if (dragFrom === null) return;
      const span = e.target.closest ? e.target.closest("#sequence .s") : null;
      const to = span ? +span.dataset.i : state.hovered;
      if (to !== null) select(dragFrom, to);
      dragFrom = null;
    });
  }

  fillControls();
  buildSequence();
  setView(0, "h", 0);
  search(meta.features[0].name);
  const loadMs = performance.now();
  performance.mark("explorer-ready");
  $("status").textContent = `${N} steps, ${meta.layers.map((l) => l.hidden).join("+")} units; ready in ${Math.round(loadMs)} ms`;
  // what the tests and benchmarks drive and read
  window.explorer = { meta, state, loadMs, setView, select, match, search, showHover, scrollTo,
    value: (layerIndex, name, u, t) => value(quantityOf(layerOf(layerIndex), name), u, t) };
})();
