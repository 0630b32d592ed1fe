/* msunas dashboard: hand-written vanilla JS + SVG, no framework, no third-party code, no build step.
 *
 * Views (hash routes): "#/" the caller's jobs; "#/jobs/ID" one job (front scatter, HV and surrogate-tau plots,
 * archive table, selection panel, architecture detail). Every API call sends `Authorization: Bearer <token>`
 * from sessionStorage; a 401 shows the token prompt again. While a job is queued or running its view polls
 * GET /jobs/{id} every POLL_MS and refetches iterations and archive when they changed, redrawing in place.
 * SVG elements carry data-testid hooks (arch-point, front-point, selected-point, hv-point, tau-point, ...).
 */
"use strict";

(() => {
  const TOKEN_KEY = "msunas.token";
  const POLL_MS = 2000;
  const LIST_IDLE_POLL_MS = 10000;
  const ACTIVE = new Set(["queued", "running"]);
  const BASE = new URL(".", document.baseURI); // the API lives beside the page (works behind a path prefix)
  const SVGNS = "http://www.w3.org/2000/svg";
  const MILLION = new Set(["params", "macs", "activations", "peak_activation", "avg_macs"]);
  const UNITS = {
    top1_err: "%", top1_robust: "%", params: "M", macs: "M", activations: "M", peak_activation: "M",
    avg_macs: "M", latency: "ms", tiny_ml: "M, weighted",
  };
  const METRIC_ORDER = ["top1", "params", "macs", "activations", "peak_activation", "latency_ms", "avg_macs",
    "robustness", "top1_robust"];
  const MAX_TABLE_ROWS = 2000;

  // ------------------------------------------------------------------------------------------- DOM helpers
  const $ = (sel, root = document) => root.querySelector(sel);

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** An HTML element; text children are always text nodes (no HTML parsing of data). */
  const h = (tag, attrs, ...children) => append(setAttrs(document.createElement(tag), attrs), children);
  /** An SVG element. */
  const sv = (tag, attrs, ...children) => append(setAttrs(document.createElementNS(SVGNS, tag), attrs), children);

  function fmt(v, digits = 4) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e7 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(digits)));
  }

  const objLabel = (name) => (UNITS[name] ? `${name} (${UNITS[name]})` : name);
  const metricLabel = (k) => (MILLION.has(k) ? `${k} (M)` : k);
  const metricValue = (m, k) => {
    const v = m ? m[k] : undefined;
    if (typeof v !== "number") return null;
    return MILLION.has(k) ? v / 1e6 : v;
  };

  // --------------------------------------------------------------------------------------------- the API
  class AuthError extends Error {}

  const getToken = () => sessionStorage.getItem(TOKEN_KEY);

  async function problemOf(r) {
    try {
      return await r.json();
    } catch (_e) {
      return { detail: `HTTP ${r.status}` };
    }
  }

  // `msunas ui DIR` serves a run folder read-only without tokens: the page says so in a meta tag
  const NO_TOKEN = document.querySelector('meta[name="msunas-auth"]')?.content === "none";

  /** One API call with the bearer token; problem+json errors become Error(detail); 401 shows the prompt. */
  async function api(path, { method = "GET", body, raw = false } = {}) {
    const tok = NO_TOKEN ? "local" : getToken();
    if (!tok) {
      showLogin("");
      throw new AuthError("no token");
    }
    const headers = { Authorization: `Bearer ${tok}`, Accept: "application/json, application/problem+json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let r;
    try {
      r = await fetch(new URL(path, BASE), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
      });
    } catch (e) {
      throw new Error(`cannot reach the server: ${e.message}`);
    }
    if (r.status === 401) {
      const p = await problemOf(r);
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(p.detail || "the server refused this token");
      throw new AuthError(p.detail || "unauthorized");
    }
    if (!r.ok) {
      const p = await problemOf(r);
      const err = new Error(p.detail || p.title || `HTTP ${r.status}`);
      err.status = r.status;
      err.field = p.field;
      throw err;
    }
    return raw ? r : r.json();
  }

  async function fetchArchive(jobId) {
    const items = [];
    let cursor = null;
    for (;;) {
      const q = `jobs/${jobId}/archive?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await api(q);
      items.push(...page.items);
      cursor = page.next_cursor;
      if (!cursor) return items;
    }
  }

  // ------------------------------------------------------------------------------------ login and routing
  let gen = 0; // route generation: work started by an older view is dropped
  let timer = null;

  function stopPolling() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function setLive(text) {
    $("#live").textContent = text;
  }

  function showLogin(msg) {
    stopPolling();
    gen++;
    $("#login").hidden = false;
    $("#view").hidden = true;
    $("#forget-token").hidden = true;
    $("#login-msg").textContent = msg || "";
    setLive("");
    $("#token-input").focus();
  }

  function hideLogin() {
    $("#login").hidden = true;
    $("#view").hidden = false;
    $("#forget-token").hidden = false;
  }

  function setCrumbs(parts) {
    const nav = $("#crumbs");
    nav.replaceChildren();
    append(nav, parts.flatMap((p, i) => [i ? " / " : "", p]));
  }

  function route() {
    stopPolling();
    gen++;
    if (!NO_TOKEN && !getToken()) {
      showLogin("");
      return;
    }
    hideLogin();
    if (NO_TOKEN) $("#forget-token").hidden = true;
    const m = location.hash.match(/^#\/jobs\/(\d+)/);
    const g = gen;
    const run = m ? jobView(Number(m[1]), g) : listView(g);
    run.catch((e) => showError(e, g));
  }

  function showError(e, g) {
    if (e instanceof AuthError || g !== gen) return;
    const view = $("#view");
    let box = $("[data-testid=error]", view);
    if (!box) {
      box = h("p", { class: "error", "data-testid": "error" });
      view.prepend(box);
    }
    box.textContent = e.message;
  }

  function clearError() {
    const box = $("[data-testid=error]");
    if (box) box.remove();
  }

  // ----------------------------------------------------------------------------------------- plot helpers
  function niceStep(span, n) {
    const raw = span / Math.max(n, 1);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  }

  function ticks(lo, hi, n = 6, integer = false) {
    let step = niceStep(hi - lo, n);
    if (integer) step = Math.max(1, Math.round(step));
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  function domain(vals, pad = 0.06) {
    const v = vals.filter((x) => typeof x === "number" && Number.isFinite(x));
    if (!v.length) return [0, 1];
    let lo = Math.min(...v);
    let hi = Math.max(...v);
    if (lo === hi) {
      const d = Math.abs(lo) * 0.05 || 0.5;
      lo -= d;
      hi += d;
    }
    const p = (hi - lo) * pad;
    return [lo - p, hi + p];
  }

  /** Clear ``svg`` and draw axes/grid for the given domains; returns the scales. */
  function frame(svg, { W = 640, H = 400, xd, yd, xlabel, ylabel, xint = false }) {
    const m = { l: 64, r: 14, t: 10, b: 42 };
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const x = (v) => m.l + ((v - xd[0]) / (xd[1] - xd[0])) * (W - m.l - m.r);
    const y = (v) => H - m.b - ((v - yd[0]) / (yd[1] - yd[0])) * (H - m.t - m.b);
    const grid = sv("g", { class: "grid" });
    const axis = sv("g", { class: "axis" });
    for (const t of ticks(xd[0], xd[1], 7, xint)) {
      grid.append(sv("line", { x1: x(t), x2: x(t), y1: m.t, y2: H - m.b }));
      axis.append(sv("line", { x1: x(t), x2: x(t), y1: H - m.b, y2: H - m.b + 4 }));
      axis.append(sv("text", { x: x(t), y: H - m.b + 16, "text-anchor": "middle" }, fmt(t)));
    }
    for (const t of ticks(yd[0], yd[1], 6)) {
      grid.append(sv("line", { x1: m.l, x2: W - m.r, y1: y(t), y2: y(t) }));
      axis.append(sv("line", { x1: m.l - 4, x2: m.l, y1: y(t), y2: y(t) }));
      axis.append(sv("text", { x: m.l - 7, y: y(t) + 4, "text-anchor": "end" }, fmt(t)));
    }
    axis.append(sv("path", { d: `M${m.l},${m.t}V${H - m.b}H${W - m.r}`, fill: "none" }));
    axis.append(sv("text", { class: "label", x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, xlabel));
    axis.append(sv("text", {
      class: "label", x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})`,
    }, ylabel));
    svg.append(grid, axis);
    return { x, y, W, H, m };
  }

  function emptyPlot(svg, text, W = 640, H = 220) {
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.append(sv("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, text));
  }

  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

  function viridis(t) {
    const u = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(u), VIRIDIS.length - 2);
    const f = u - i;
    const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  /** Indices of the non-dominated rows (2 objectives, minimised; equal points are all kept, as pymoo does).
   * Sorted sweep, O(n log n): a point survives when its second value is below every earlier distinct point's. */
  function nonDominated(F) {
    const idx = F.map((_, i) => i).sort((i, j) => F[i][0] - F[j][0] || F[i][1] - F[j][1]);
    const keep = [];
    let minB = Infinity;
    for (let k = 0; k < idx.length;) {
      const [a, b] = F[idx[k]];
      let e = k;
      while (e < idx.length && F[idx[e]][0] === a && F[idx[e]][1] === b) e++;
      if (b < minB) for (let t = k; t < e; t++) keep.push(idx[t]);
      minB = Math.min(minB, b);
      k = e;
    }
    return keep;
  }

  // -------------------------------------------------------------------------------------------- job list
  async function listView(g) {
    setCrumbs([h("a", { href: "#/" }, "jobs")]);
    const view = $("#view");
    view.replaceChildren();
    const cols = ["job", "name", "state", "iteration", "evaluations (current iteration)", "evaluated", "HV",
      "best first objective", "best second objective", "created"];
    const tbody = h("tbody");
    const more = h("button", { type: "button", class: "more", hidden: true }, "show more");
    const empty = h("p", { class: "muted", hidden: true, "data-testid": "no-jobs" },
      "No jobs yet for this token: submit one with `msunas submit spec.yaml` or POST /jobs.");
    view.append(h("div", { class: "card" }, h("h2", {}, "Your jobs"),
      h("div", { class: "table-wrap" }, h("table", { class: "grid", "data-testid": "jobs-table" },
        h("thead", {}, h("tr", {}, cols.map((c, i) => h("th", { class: i < 3 ? "left" : "" }, c)))), tbody)),
      empty, more));
    let wanted = 25;
    more.addEventListener("click", () => {
      wanted = Math.min(wanted + 25, 500);
      stopPolling();
      refresh().catch((e) => showError(e, g));
    });

    async function refresh() {
      const page = await api(`jobs?limit=${wanted}`);
      const sums = await Promise.all(page.items.map((j) => api(`jobs/${j.id}`).catch((e) => {
        if (e instanceof AuthError) throw e;
        return { ...j, progress: null, error: e.message };
      })));
      if (g !== gen) return;
      clearError();
      tbody.replaceChildren(...sums.map(jobRow));
      empty.hidden = sums.length > 0;
      more.hidden = !page.next_cursor || wanted >= 500;
      const active = sums.some((s) => ACTIVE.has(s.state));
      setLive(active ? `live: refreshing every ${POLL_MS / 1000} s` : `refreshing every ${LIST_IDLE_POLL_MS / 1000} s`);
      timer = setTimeout(() => refresh().catch((e) => retry(e)), active ? POLL_MS : LIST_IDLE_POLL_MS);
    }

    function retry(e) {
      showError(e, g);
      if (!(e instanceof AuthError) && g === gen) timer = setTimeout(() => refresh().catch(retry), POLL_MS * 2);
    }

    await refresh();
  }

  function bestCell(sum, key, idx) {
    const b = sum.best && sum.best[key];
    if (!b) return "–";
    const name = (sum.objectives || [])[idx] || `f${idx + 1}`;
    return `${fmt(b.objectives[idx])} ${UNITS[name] || ""} (arch ${b.arch_id})`;
  }

  function jobRow(s) {
    const p = s.progress;
    const hv = s.hv_history && s.hv_history.length ? s.hv_history[s.hv_history.length - 1].hv : null;
    const frac = p && p.tasks_total ? p.tasks_done / p.tasks_total : 0;
    const bar = h("span", { class: "bar" }, h("span"));
    bar.firstChild.style.width = `${Math.round(frac * 100)}%`;
    const tr = h("tr", { "data-testid": "job-row", "data-id": s.id },
      h("td", { class: "left" }, h("a", { href: `#/jobs/${s.id}` }, `#${s.id}`)),
      h("td", { class: "left" }, s.name || ""),
      h("td", { class: "left" }, h("span", { class: `state state-${s.state}`, "data-testid": "job-state" }, s.state)),
      h("td", {}, p ? `${Math.max(p.iteration, 0)} / ${p.iterations}` : "–"),
      h("td", {}, p ? [bar, ` ${p.tasks_done}/${p.tasks_total}`] : "–"),
      h("td", {}, p ? `${p.n_evaluated}${p.n_failed ? ` (${p.n_failed} failed)` : ""}` : "–"),
      h("td", {}, fmt(hv)),
      h("td", {}, p ? bestCell(s, "min_f1", 0) : "–"),
      h("td", {}, p ? bestCell(s, "min_f2", 1) : "–"),
      h("td", {}, (s.created_at || "").replace("T", " ").slice(0, 19)));
    tr.addEventListener("click", (ev) => {
      if (ev.target.tagName !== "A") location.hash = `#/jobs/${s.id}`;
    });
    return tr;
  }

  // ---------------------------------------------------------------------------------------------- job page
  async function jobView(jobId, g) {
    setCrumbs([h("a", { href: "#/" }, "jobs"), h("span", {}, `job ${jobId}`)]);
    const st = {
      id: jobId, sum: null, iters: [], archive: [], ok: [], front: new Set(), selected: new Set(), picked: [],
      current: null, highlight: null, sig: "", sort: { key: "id", dir: 1 },
    };
    const view = $("#view");
    view.replaceChildren();
    const ui = buildJobLayout(st);
    view.append(ui.root);

    async function tick() {
      const sum = await api(`jobs/${jobId}`);
      if (g !== gen) return;
      clearError();
      st.sum = sum;
      renderHead(st, ui);
      const last = sum.hv_history.length ? sum.hv_history[sum.hv_history.length - 1] : null;
      const sig = [sum.state, sum.progress.n_evaluated, sum.progress.iteration, sum.hv_history.length,
        last ? last.hv : ""].join("|");
      if (sig !== st.sig) {
        const [its, arch] = await Promise.all([api(`jobs/${jobId}/iterations`), fetchArchive(jobId)]);
        if (g !== gen) return;
        st.iters = its.items;
        st.archive = arch;
        st.sig = sig;
        derive(st);
        renderAll(st, ui);
      }
      const active = ACTIVE.has(sum.state);
      const now = new Date().toLocaleTimeString();
      setLive(active ? `live: polling every ${POLL_MS / 1000} s, updated ${now}` : `${sum.state}: not polling`);
      if (active) timer = setTimeout(() => tick().catch(retry), POLL_MS);
    }

    function retry(e) {
      showError(e, g);
      if (e instanceof AuthError || g !== gen || e.status === 404) return;
      timer = setTimeout(() => tick().catch(retry), POLL_MS * 2); // transient (503, network): keep trying
    }

    try {
      await tick();
    } catch (e) {
      retry(e);
    }
  }

  function derive(st) {
    const nObj = (st.sum.objectives || []).length;
    st.ok = st.archive.filter((r) => r.status === "ok" && Array.isArray(r.objectives) && r.objectives.length >= 2
      && r.objectives.slice(0, 2).every((v) => typeof v === "number"));
    const pool = st.ok.filter((r) => r.feasible !== false);
    const F = pool.map((r) => [r.objectives[0], r.objectives[1]]);
    st.front = new Set(nObj >= 2 ? nonDominated(F).map((i) => pool[i].id) : []);
    st.iterations = [...new Set(st.archive.map((r) => r.iteration))].sort((a, b) => a - b);
    const keys = new Set();
    for (const r of st.archive) {
      for (const [k, v] of Object.entries(r.metrics || {})) if (typeof v === "number") keys.add(k);
    }
    st.metricKeys = [...METRIC_ORDER.filter((k) => keys.has(k)), ...[...keys].filter((k) => !METRIC_ORDER.includes(k)).sort()]
      .slice(0, 9);
  }

  function buildJobLayout(st) {
    const ui = {};
    ui.head = h("div", { class: "card job-head", "data-testid": "job-head" });
    ui.scatter = sv("svg", { class: "plot", "data-testid": "front-plot", role: "img" });
    ui.legend = h("div", { class: "legend", "data-testid": "iteration-legend" });
    ui.hv = sv("svg", { class: "plot", "data-testid": "hv-plot", role: "img" });
    ui.tau = sv("svg", { class: "plot", "data-testid": "tau-plot", role: "img" });
    ui.tauLegend = h("div", { class: "legend" },
      h("span", { class: "sw" }, h("i", { class: "tau-key" }), "cross-validated on the archive (held-out folds)"),
      h("span", { class: "sw" }, h("i", { class: "tau-cand-key" }), "this iteration's candidates, predicted before evaluation"));
    ui.tauLegend.children[0].firstChild.style.background = "#6f42c1";
    ui.tauLegend.children[1].firstChild.style.background = "#e08a00";

    // archive table + filters
    ui.filterText = h("input", { type: "search", placeholder: "filter: id, iteration, status, error, key…",
      "data-testid": "archive-filter", size: 28 });
    ui.filterStatus = h("select", { "data-testid": "archive-status" },
      h("option", { value: "" }, "any status"), h("option", { value: "ok" }, "ok"),
      h("option", { value: "failed" }, "failed"));
    ui.filterIter = h("select", { "data-testid": "archive-iteration" });
    ui.frontOnly = h("input", { type: "checkbox", "data-testid": "archive-front-only" });
    ui.selOnly = h("input", { type: "checkbox", "data-testid": "archive-selected-only" });
    ui.count = h("span", { class: "muted", "data-testid": "archive-count" });
    ui.thead = h("thead");
    ui.tbody = h("tbody");
    for (const el of [ui.filterText, ui.filterStatus, ui.filterIter, ui.frontOnly, ui.selOnly]) {
      el.addEventListener("input", () => renderTable(st, ui));
    }

    // selection panel
    ui.selN = h("input", { type: "number", min: 1, max: 100, value: 3, "data-testid": "select-n", size: 4 });
    ui.selMode = h("select", { "data-testid": "select-mode" },
      h("option", { value: "" }, "most accurate"), h("option", { value: "metric" }, "lowest of a metric"),
      h("option", { value: "trade-off" }, "trade-off (knees)"), h("option", { value: "point" }, "preference point"));
    ui.selMetric = h("input", { list: "metric-names", placeholder: "macs", "data-testid": "select-metric", size: 14 });
    ui.metricList = h("datalist", { id: "metric-names" });
    ui.selPoint = h("input", { placeholder: "top1#80+macs#150", "data-testid": "select-point", size: 22 });
    ui.selErr = h("p", { class: "error", "data-testid": "select-error" });
    ui.picked = h("ol", { class: "picked", "data-testid": "picked-list" });
    const metricRow = [h("label", {}, "metric"), ui.selMetric];
    const pointRow = [h("label", {}, "point"), ui.selPoint];
    const syncMode = () => {
      for (const el of metricRow) el.hidden = ui.selMode.value !== "metric";
      for (const el of pointRow) el.hidden = ui.selMode.value !== "point";
    };
    ui.selMode.addEventListener("change", syncMode);
    const runBtn = h("button", { type: "submit", class: "primary", "data-testid": "select-run" }, "Select");
    const clearBtn = h("button", { type: "button", "data-testid": "select-clear" }, "Clear marks");
    ui.selForm = h("form", { class: "select-form", "data-testid": "select-form" },
      h("label", {}, "n"), ui.selN, h("label", {}, "prefer"), ui.selMode, metricRow, pointRow,
      h("div", { class: "actions" }, runBtn, clearBtn));
    syncMode();
    ui.selForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      runSelection(st, ui).catch((e) => {
        if (!(e instanceof AuthError)) ui.selErr.textContent = e.message;
      });
    });
    clearBtn.addEventListener("click", () => {
      st.selected = new Set();
      st.picked = [];
      renderAll(st, ui);
    });

    ui.detail = h("div", { class: "detail", "data-testid": "arch-detail" },
      h("p", { class: "muted" }, "Click a point or a row to see an architecture."));

    ui.root = h("div", {},
      ui.head,
      h("div", { class: "plots" },
        h("div", { class: "card" }, h("h2", {}, "Archive and Pareto front"), ui.scatter, ui.legend),
        h("div", { class: "side" },
          h("div", { class: "card" }, h("h2", {}, "Hypervolume per iteration"), ui.hv,
            h("p", { class: "hint" }, "Click a point to highlight that iteration's candidates.")),
          h("div", { class: "card" }, h("h2", {}, "Surrogate: Kendall tau of predicted vs true top-1 error"), ui.tau,
            ui.tauLegend))),
      h("div", { class: "lower" },
        h("div", { class: "card" }, h("h2", {}, "Archive"),
          h("div", { class: "filters" }, ui.filterText, ui.filterStatus, ui.filterIter,
            h("label", {}, ui.frontOnly, " front only"), h("label", {}, ui.selOnly, " selected only"), ui.count),
          h("div", { class: "table-wrap" }, h("table", { class: "grid", "data-testid": "archive-table" },
            ui.thead, ui.tbody))),
        h("div", {},
          h("div", { class: "card" }, h("h2", {}, "Select architectures"), ui.selForm, ui.metricList, ui.selErr,
            ui.picked),
          h("div", { class: "card detail-card" }, h("h2", {}, "Architecture"), ui.detail))));
    return ui;
  }

  async function runSelection(st, ui) {
    ui.selErr.textContent = "";
    const body = { n: Number(ui.selN.value) || 3 };
    const mode = ui.selMode.value;
    if (mode === "metric") body.prefer = ui.selMetric.value.trim();
    else if (mode === "trade-off") body.prefer = "trade-off";
    else if (mode === "point") body.prefer = ui.selPoint.value.trim();
    if ((mode === "metric" || mode === "point") && !body.prefer) {
      ui.selErr.textContent = mode === "metric" ? "prefer: name a metric (e.g. macs)" : "prefer: give a point like top1#80+macs#150";
      return;
    }
    const res = await api(`jobs/${st.id}/select`, { method: "POST", body });
    st.picked = res.items;
    st.selected = new Set(res.items.map((r) => r.id));
    if (!res.items.length) ui.selErr.textContent = "no architecture matches (failed, infeasible or filtered out)";
    renderAll(st, ui);
  }

  // ------------------------------------------------------------------------------------------- rendering
  function renderAll(st, ui) {
    renderScatter(st, ui);
    renderHV(st, ui);
    renderTau(st, ui);
    renderTableHead(st, ui);
    renderTable(st, ui);
    renderPicked(st, ui);
  }

  function renderHead(st, ui) {
    const s = st.sum;
    const p = s.progress;
    const hv = s.hv_history.length ? s.hv_history[s.hv_history.length - 1].hv : null;
    const cons = Object.entries(s.constraints || {}).map(([k, v]) => `${k} ≤ ${k === "latency_ms" ? `${fmt(v)} ms`
      : `${fmt(v / 1e6)} M`}`);
    const frac = p.tasks_total ? p.tasks_done / p.tasks_total : 0;
    const bar = h("span", { class: "bar" }, h("span"));
    bar.firstChild.style.width = `${Math.round(frac * 100)}%`;
    ui.head.replaceChildren();
    append(ui.head, [
      h("h1", {}, `Job ${s.id}${s.name ? ` · ${s.name}` : ""}`),
      h("span", { class: `state state-${s.state}`, "data-testid": "job-state" }, s.state),
      h("div", { class: "facts" },
        h("div", {}, h("span", {}, "iteration"), `${Math.max(p.iteration, 0)} / ${p.iterations}`),
        h("div", { "data-testid": "job-tasks" }, h("span", {}, "current iteration"), bar,
          ` ${p.tasks_done}/${p.tasks_total} evaluated${p.tasks_running ? `, ${p.tasks_running} running` : ""}`),
        h("div", { "data-testid": "job-evaluated" }, h("span", {}, "archive"),
          `${p.n_evaluated}${p.n_failed ? ` (${p.n_failed} failed)` : ""}${p.n_feasible !== undefined
            ? `, ${p.n_feasible} feasible` : ""}`),
        h("div", {}, h("span", {}, "HV"), fmt(hv)),
        h("div", {}, h("span", {}, "objectives"), (s.objectives || []).join(", ")),
        h("div", {}, h("span", {}, "constraints"),
          cons.length ? `${cons.join(", ")} (${s.constraint_mode})` : "none"),
        h("div", {}, h("span", {}, "best"), bestCell(s, "min_f1", 0), " · ", bestCell(s, "min_f2", 1))),
      s.error ? h("pre", { class: "error", "data-testid": "job-error" }, s.error) : null,
      ...(s.warnings || []).map((w) => h("p", { class: "warning", "data-testid": "job-warning" }, `⚠ ${w}`))]);
  }

  function iterColor(st) {
    const its = st.iterations || [];
    const idx = new Map(its.map((k, i) => [k, i]));
    return (k) => viridis(its.length > 1 ? idx.get(k) / (its.length - 1) : 0.45);
  }

  function renderScatter(st, ui) {
    const svg = ui.scatter;
    const objs = st.sum.objectives || [];
    ui.legend.replaceChildren();
    if (objs.length < 2) {
      emptyPlot(svg, "single-objective job: see the archive table");
      return;
    }
    if (!st.ok.length) {
      emptyPlot(svg, st.archive.length ? "no successful evaluation yet" : "no evaluation yet");
      return;
    }
    const lines = (st.sum.constraint_lines || []).filter((c) => c.axis <= 1);
    // penalty mode adds a huge penalty to a violator's second objective: scale the axes to the feasible points
    // (violators are drawn faded at the edge); hard mode stores true values, so every point sets the scale
    const feasible = st.ok.filter((r) => r.feasible !== false);
    const base = st.sum.constraint_mode === "penalty" && feasible.length ? feasible : st.ok;
    const xs = base.map((r) => r.objectives[1]);
    const ys = base.map((r) => r.objectives[0]);
    const span = (v) => Math.max(...v) - Math.min(...v) || Math.abs(v[0]) || 1;
    for (const c of lines) { // show the bound when it is near the data (not when it would squash the points)
      const v = c.axis === 1 ? xs : ys;
      if (c.value >= Math.min(...v) - span(v) && c.value <= Math.max(...v) + span(v)) v.push(c.value);
    }
    const xd = domain(xs);
    const yd = domain(ys);
    const f = frame(svg, { xd, yd, xlabel: objLabel(objs[1]), ylabel: objLabel(objs[0]), W: 680, H: 440 });
    const clampX = (v) => f.x(Math.min(Math.max(v, xd[0]), xd[1]));
    const clampY = (v) => f.y(Math.min(Math.max(v, yd[0]), yd[1]));
    const color = iterColor(st);

    const cl = sv("g", { class: "constraints" });
    for (const c of lines) {
      const v = c.value;
      if (c.axis === 1 && v >= xd[0] && v <= xd[1]) {
        cl.append(sv("line", { class: "constraint-line", "data-testid": "constraint-line", x1: f.x(v), x2: f.x(v),
          y1: f.m.t, y2: f.H - f.m.b }, sv("title", {}, `${c.constraint} ≤ ${fmt(v)} ${UNITS[c.objective] || ""}`)));
        cl.append(sv("text", { x: f.x(v) - 4, y: f.m.t + 12, "text-anchor": "end" }, `${c.constraint} ≤ ${fmt(v)}`));
      } else if (c.axis === 0 && v >= yd[0] && v <= yd[1]) {
        cl.append(sv("line", { class: "constraint-line", "data-testid": "constraint-line", x1: f.m.l,
          x2: f.W - f.m.r, y1: f.y(v), y2: f.y(v) }));
      }
    }
    svg.append(cl);

    const pts = sv("g", { class: "points" });
    for (const r of st.ok) {
      const cls = ["arch-point"];
      if (r.feasible === false) cls.push("infeasible");
      if (st.highlight !== null && r.iteration !== st.highlight) cls.push("dim");
      if (st.current === r.id) cls.push("current");
      const c = sv("circle", {
        class: cls.join(" "), "data-testid": "arch-point", "data-id": r.id, "data-iteration": r.iteration,
        cx: clampX(r.objectives[1]), cy: clampY(r.objectives[0]), r: 4, fill: color(r.iteration),
      }, sv("title", {}, `arch ${r.id} · iteration ${r.iteration}\n${objs[0]} ${fmt(r.objectives[0])}\n`
        + `${objs[1]} ${fmt(r.objectives[1])}${r.feasible === false ? "\ninfeasible" : ""}`));
      c.addEventListener("click", () => showDetail(st, ui, r.id));
      pts.append(c);
    }
    svg.append(pts);

    const front = st.ok.filter((r) => st.front.has(r.id))
      .sort((a, b) => a.objectives[1] - b.objectives[1] || a.objectives[0] - b.objectives[0]);
    if (front.length) {
      let d = `M${clampX(front[0].objectives[1])},${clampY(front[0].objectives[0])}`;
      for (const r of front.slice(1)) d += `H${clampX(r.objectives[1])}V${clampY(r.objectives[0])}`;
      const g = sv("g", { class: "front" }, sv("path", { class: "front-line", "data-testid": "front-line", d }));
      for (const r of front) {
        g.append(sv("circle", { class: "front-point", "data-testid": "front-point", "data-id": r.id,
          cx: clampX(r.objectives[1]), cy: clampY(r.objectives[0]), r: 6.5 }));
      }
      svg.append(g);
    }
    const sel = sv("g", { class: "selection" });
    for (const r of st.ok) {
      if (!st.selected.has(r.id)) continue;
      sel.append(sv("circle", { class: "selected-point", "data-testid": "selected-point", "data-id": r.id,
        cx: clampX(r.objectives[1]), cy: clampY(r.objectives[0]), r: 9.5 }));
    }
    svg.append(sel);

    // legend: one swatch per iteration (click: highlight it), then the marks
    const its = st.iterations || [];
    const show = its.length <= 24 ? its : its.filter((_, i) => i % Math.ceil(its.length / 24) === 0);
    for (const k of show) {
      const sw = h("span", { class: `sw${st.highlight === k ? " active" : ""}`, "data-testid": "legend-iteration",
        "data-iteration": k, title: "highlight this iteration's candidates" }, h("i"), k === 0 ? "0 (initial)" : String(k));
      sw.firstChild.style.background = color(k);
      sw.addEventListener("click", () => toggleHighlight(st, ui, k));
      ui.legend.append(sw);
    }
    ui.legend.append(h("span", { class: "sw key-front" }, h("i"), `Pareto front (${front.length})`));
    if (st.selected.size) ui.legend.append(h("span", { class: "sw key-sel" }, h("i"), `selected (${st.selected.size})`));
    if (cl.childElementCount) ui.legend.append(h("span", { class: "sw key-line" }, h("i"), "constraint"));
    const nInf = st.ok.filter((r) => r.feasible === false).length;
    if (nInf) ui.legend.append(h("span", { class: "muted" }, `${nInf} infeasible (faded${st.sum.constraint_mode === "penalty" ? "; penalised values drawn at the edge" : ""})`));
  }

  function toggleHighlight(st, ui, k) {
    st.highlight = st.highlight === k ? null : k;
    renderScatter(st, ui);
    renderHV(st, ui);
  }

  function renderHV(st, ui) {
    const svg = ui.hv;
    const hist = (st.sum.hv_history || []).filter((p) => typeof p.hv === "number");
    if (!hist.length) {
      emptyPlot(svg, "no iteration stored yet", 480, 240);
      return;
    }
    const xs = hist.map((p) => p.iteration);
    const xd = [Math.min(...xs) - (xs.length > 1 ? 0.3 : 0.5), Math.max(...xs) + (xs.length > 1 ? 0.3 : 0.5)];
    const f = frame(svg, { W: 480, H: 240, xd, yd: domain(hist.map((p) => p.hv), 0.1), xlabel: "iteration",
      ylabel: "hypervolume", xint: true });
    svg.append(sv("path", { class: "hv-line", d: hist.map((p, i) => `${i ? "L" : "M"}${f.x(p.iteration)},${f.y(p.hv)}`).join("") }));
    for (const p of hist) {
      const c = sv("circle", { class: `hv-point${st.highlight === p.iteration ? " active" : ""}`, "data-testid": "hv-point",
        "data-iteration": p.iteration, cx: f.x(p.iteration), cy: f.y(p.hv), r: 4 },
      sv("title", {}, `iteration ${p.iteration}: HV ${fmt(p.hv, 6)}, archive ${p.n_archive}`));
      c.addEventListener("click", () => toggleHighlight(st, ui, p.iteration));
      svg.append(c);
    }
  }

  function renderTau(st, ui) {
    const svg = ui.tau;
    const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
    const cv = st.iters.filter((it) => it.surrogate && num(it.surrogate.tau) !== null)
      .map((it) => ({ k: it.iteration, v: it.surrogate.tau, s: it.surrogate }));
    const cand = st.iters.filter((it) => it.surrogate && it.surrogate.candidates && num(it.surrogate.candidates.tau) !== null)
      .map((it) => ({ k: it.iteration, v: it.surrogate.candidates.tau }));
    if (!cv.length && !cand.length) {
      emptyPlot(svg, "no surrogate fitted yet (iteration 0 is the initial design)", 480, 240);
      return;
    }
    const all = [...cv, ...cand];
    const xs = st.iters.map((it) => it.iteration);
    const xd = [Math.min(...xs) - 0.3, Math.max(...xs) + 0.3];
    const yd = [Math.min(-0.1, ...all.map((p) => p.v)) - 0.05, 1.02];
    const f = frame(svg, { W: 480, H: 240, xd, yd, xlabel: "iteration", ylabel: "Kendall tau", xint: true });
    const series = (pts, lineCls, ptCls, label) => {
      if (!pts.length) return;
      svg.append(sv("path", { class: lineCls, d: pts.map((p, i) => `${i ? "L" : "M"}${f.x(p.k)},${f.y(p.v)}`).join("") }));
      for (const p of pts) {
        const extra = p.s ? ` (${p.s.winner || p.s.model || ""}, n=${p.s.n_train ?? "?"}, ${p.s.cv_folds ?? "?"} folds)` : "";
        svg.append(sv("circle", { class: ptCls, "data-testid": ptCls, "data-iteration": p.k, cx: f.x(p.k), cy: f.y(p.v),
          r: 3.5 }, sv("title", {}, `iteration ${p.k}: ${label} tau ${fmt(p.v, 3)}${extra}`)));
      }
    };
    series(cand, "tau-cand-line", "tau-cand-point", "candidates");
    series(cv, "tau-line", "tau-point", "cross-validated");
  }

  function columns(st) {
    const objs = st.sum.objectives || [];
    const cols = [
      { key: "sel", label: "★", get: (r) => (st.selected.has(r.id) ? 1 : 0), show: (r) => (st.selected.has(r.id) ? "★" : "") },
      { key: "id", label: "arch", get: (r) => r.id },
      { key: "iteration", label: "iteration", get: (r) => r.iteration },
      { key: "status", label: "status", get: (r) => r.status, left: true },
    ];
    objs.slice(0, 2).forEach((name, i) => cols.push({
      key: `f${i + 1}`, label: objLabel(name), get: (r) => (r.objectives ? r.objectives[i] : null),
    }));
    for (const k of st.metricKeys || []) {
      if (objs.includes(k)) continue;
      cols.push({ key: `m:${k}`, label: metricLabel(k), get: (r) => metricValue(r.metrics, k) });
    }
    cols.push({ key: "feasible", label: "feasible", get: (r) => (r.feasible === null || r.feasible === undefined ? "" : r.feasible ? "yes" : "no") });
    return cols;
  }

  function renderTableHead(st, ui) {
    const cols = columns(st);
    st.cols = cols;
    const tr = h("tr");
    for (const c of cols) {
      const sorted = st.sort.key === c.key ? (st.sort.dir > 0 ? " sorted-asc" : " sorted-desc") : "";
      const th = h("th", { class: `sortable${c.left ? " left" : ""}${sorted}`, "data-key": c.key,
        "data-testid": `col-${c.key.replace(":", "-")}` }, c.label);
      th.addEventListener("click", () => {
        st.sort = st.sort.key === c.key ? { key: c.key, dir: -st.sort.dir } : { key: c.key, dir: 1 };
        renderTableHead(st, ui);
        renderTable(st, ui);
      });
      tr.append(th);
    }
    ui.thead.replaceChildren(tr);
    // iteration filter options (kept when the user picked one)
    const cur = ui.filterIter.value;
    ui.filterIter.replaceChildren(h("option", { value: "" }, "any iteration"),
      ...(st.iterations || []).map((k) => h("option", { value: String(k) }, `iteration ${k}`)));
    ui.filterIter.value = cur;
    // metric names for "lowest of a metric"
    const names = ["f1", "f2", "top1_err", ...(st.metricKeys || [])];
    ui.metricList.replaceChildren(...[...new Set(names)].map((n) => h("option", { value: n })));
  }

  function renderTable(st, ui) {
    const cols = st.cols || columns(st);
    const text = ui.filterText.value.trim().toLowerCase();
    const status = ui.filterStatus.value;
    const iter = ui.filterIter.value;
    let rows = st.archive.filter((r) => {
      if (status && (status === "ok" ? r.status !== "ok" : r.status === "ok")) return false;
      if (iter !== "" && String(r.iteration) !== iter) return false;
      if (ui.frontOnly.checked && !st.front.has(r.id)) return false;
      if (ui.selOnly.checked && !st.selected.has(r.id)) return false;
      if (text) {
        const hay = `${r.id} ${r.iteration} ${r.status} ${r.error || ""} ${r.key}`.toLowerCase();
        if (!text.split(/\s+/).every((t) => hay.includes(t))) return false;
      }
      return true;
    });
    const col = cols.find((c) => c.key === st.sort.key) || cols[1];
    const dir = st.sort.dir;
    rows = rows.slice().sort((a, b) => {
      const va = col.get(a);
      const vb = col.get(b);
      if (va === vb) return a.id - b.id;
      if (va === null || va === undefined || va === "") return 1;
      if (vb === null || vb === undefined || vb === "") return -1;
      return (va < vb ? -1 : 1) * dir;
    });
    const shown = rows.slice(0, MAX_TABLE_ROWS);
    ui.count.textContent = `${rows.length} of ${st.archive.length} rows${rows.length > shown.length ? ` (first ${shown.length} shown)` : ""}`;
    ui.tbody.replaceChildren(...shown.map((r) => {
      const cls = [st.front.has(r.id) ? "front" : "", st.selected.has(r.id) ? "selected" : "",
        st.current === r.id ? "current" : ""].filter(Boolean).join(" ");
      const tr = h("tr", { class: cls || null, "data-testid": "archive-row", "data-id": r.id },
        cols.map((c) => h("td", { class: c.left ? "left" : null, title: c.key === "status" && r.error ? r.error : null },
          c.show ? c.show(r) : fmt(c.get(r)))));
      tr.addEventListener("click", () => showDetail(st, ui, r.id));
      return tr;
    }));
  }

  function renderPicked(st, ui) {
    const objs = st.sum.objectives || [];
    ui.picked.replaceChildren(...st.picked.map((r) => {
      const a = h("a", { href: "#", "data-id": r.id }, `arch ${r.id}`);
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        showDetail(st, ui, r.id);
      });
      const o = r.objectives || [];
      return h("li", { "data-testid": "picked-item", "data-id": r.id }, a,
        `: ${objs[0] || "f1"} ${fmt(o[0])}, ${objs[1] || "f2"} ${fmt(o[1])} (iteration ${r.iteration})`);
    }));
  }

  async function showDetail(st, ui, archId) {
    st.current = archId;
    renderScatter(st, ui);
    renderTable(st, ui);
    ui.detail.replaceChildren(h("p", { class: "muted" }, `loading arch ${archId}…`));
    const g = gen;
    let r;
    try {
      r = await api(`jobs/${st.id}/archs/${archId}`);
    } catch (e) {
      if (!(e instanceof AuthError)) ui.detail.replaceChildren(h("p", { class: "error" }, e.message));
      return;
    }
    if (g !== gen || st.current !== archId) return;
    const objs = st.sum.objectives || [];
    const dl = (pairs) => h("dl", {}, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    const metrics = Object.entries(r.metrics || {}).map(([k, v]) => [metricLabel(k),
      typeof v === "number" ? fmt(MILLION.has(k) ? v / 1e6 : v) : JSON.stringify(v)]);
    const blocks = r.block_strings
      ? r.block_strings.map((stage, i) => `${i === 0 ? "stem " : i === r.block_strings.length - 1 ? "head " : `s${i}   `} ${stage.join("  ")}`).join("\n")
      : "(not a MobileNetV3 config)";
    const status = h("span", { class: "muted", "data-testid": "export-status" });
    const exportBtn = (fmtName, label, ext) => {
      const b = h("button", { type: "button", "data-testid": `export-${fmtName}` }, label);
      b.addEventListener("click", () => exportArch(st.id, archId, fmtName, ext, status, b));
      return b;
    };
    ui.detail.replaceChildren(
      h("h3", { "data-testid": "arch-title" }, `arch ${r.id} · iteration ${r.iteration}${st.selected.has(r.id) ? " · selected" : ""}${st.front.has(r.id) ? " · on the front" : ""}`),
      dl([["status", r.status + (r.error ? `: ${r.error}` : "")], ["feasible", r.feasible === null ? "–" : r.feasible ? "yes" : "no"],
        ...objs.map((n, i) => [objLabel(n), fmt((r.objectives || [])[i])]), ["key", h("code", {}, r.key)]]),
      h("h4", {}, "metrics"), dl(metrics),
      h("h4", {}, "block strings"), h("pre", { "data-testid": "block-strings" }, blocks),
      h("h4", {}, "config"), h("pre", { "data-testid": "arch-config" }, JSON.stringify(r.config)),
      h("div", { class: "exports" }, "export:", exportBtn("onnx", "ONNX", "onnx"), exportBtn("torch", "PyTorch", "pt"), status),
      h("p", { class: "hint" }, "Weights are the job supernet's (inherited, not fine-tuned per candidate); fine-tune before deploying."),
      ...(NO_TOKEN ? [] : [trainingsBox(st.id, archId)]));
  }

  /** Training the architecture to convergence: POST .../train (a worker runs it), its trainings and their files. */
  function trainingsBox(jobId, archId) {
    const list = h("ul", { "data-testid": "trainings" });
    const status = h("span", { class: "muted", "data-testid": "train-status" });
    const epochs = h("input", { type: "number", min: "1", max: "10000", value: "30", "data-testid": "train-epochs" });
    const run = h("button", { type: "button", "data-testid": "train-run" }, "train to convergence");
    const refresh = h("button", { type: "button", "data-testid": "train-refresh" }, "refresh");
    async function load() {
      try {
        const r = await api(`jobs/${jobId}/trainings`);
        list.replaceChildren(...r.items.filter((t) => t.arch_id === archId).map((t) => trainingItem(jobId, t, status)));
      } catch (e) {
        if (!(e instanceof AuthError)) status.textContent = e.message;
      }
    }
    run.addEventListener("click", async () => {
      run.disabled = true;
      try {
        const t = await api(`jobs/${jobId}/archs/${archId}/train`, { method: "POST", body: { epochs: Number(epochs.value) } });
        status.textContent = `training ${t.id} ${t.state}: a worker trains it (${t.epochs} epochs, KD from the supernet); refresh to follow it`;
        await load();
      } catch (e) {
        if (!(e instanceof AuthError)) status.textContent = `not queued: ${e.message}`;
      } finally {
        run.disabled = false;
      }
    });
    refresh.addEventListener("click", load);
    load();
    return h("div", { class: "trainings" }, h("h4", {}, "train to convergence"),
      h("div", { class: "exports" }, "epochs", epochs, run, refresh, status), list);
  }

  function trainingItem(jobId, t, status) {
    const m = t.metrics || {};
    const figures = t.state !== "succeeded" ? (t.error ? `: ${t.error}` : "")
      : `: validation top-1 ${fmt(m.top1)} % (inherited ${fmt(m.top1_inherited)} %)` +
        (m.top1_int8 !== undefined ? `, int8 ${fmt(m.top1_int8)} %` : "") +
        (m.latency_ms_fp32 !== undefined ? `; ORT CPU ${fmt(m.latency_ms_fp32)} ms` : "");
    const files = (t.files || []).map((f) => {
      const b = h("button", { type: "button", "data-testid": `training-file-${f.name}` }, f.name);
      const name = `job${jobId}_training${t.id}_${f.name}`;
      b.addEventListener("click", () => saveFile(`jobs/${jobId}/trainings/${t.id}/files/${f.name}`, name, status, b));
      return b;
    });
    return h("li", { "data-testid": "training-item", "data-id": t.id, "data-state": t.state },
      `training ${t.id} · ${t.state} · epoch ${t.epoch}/${t.epochs}${figures} `, ...files);
  }

  /** Export with the bearer header (a plain link cannot carry it) and save the answer as a file. */
  function exportArch(jobId, archId, fmtName, ext, status, btn) {
    status.textContent = `exporting ${fmtName} (extracting the subnet; a few seconds)…`;
    return saveFile(`jobs/${jobId}/archs/${archId}/export?format=${fmtName}`, `job${jobId}_arch${archId}.${ext}`, status, btn);
  }

  /** GET ``path`` with the bearer header and save the answer as ``filename``. */
  async function saveFile(path, filename, status, btn) {
    btn.disabled = true;
    try {
      const r = await api(path, { raw: true });
      const blob = await r.blob();
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: filename });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      status.textContent = `saved ${filename} (${fmt(blob.size / 1e6, 3)} MB)`;
    } catch (e) {
      if (!(e instanceof AuthError)) status.textContent = `download failed: ${e.message}`;
    } finally {
      btn.disabled = false;
    }
  }

  // ------------------------------------------------------------------------------------------------ start
  function init() {
    $("#login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("#token-input").value.trim();
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      $("#token-input").value = "";
      route();
    });
    $("#forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("");
    });
    window.addEventListener("hashchange", route);
    route();
  }

  init();
})();
