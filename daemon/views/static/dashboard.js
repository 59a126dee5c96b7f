/* The autoretrain dashboard: reads /api/status (exactly `autoretrainctl status --json`) and
 * /api/history?symbol=S (views.history) every REFRESH_SECONDS and draws everything as hand-made SVG.
 *
 * No library, no inline script or style, nothing from another origin. Every headline number is
 * rendered from /api/status and carries its raw value as JSON in `data-value` (JSON.stringify of
 * the status field: numbers as numbers, strings quoted, null as null), with `data-field` and
 * `data-symbol`, so a test compares the page with `status --json`. Every panel has `data-panel`.
 * A failed fetch keeps the last data on screen and shows the error banner; the first successful
 * render sets document.body.dataset.rendered = "1".
 */
(function () {
  "use strict";

  const body = document.body;
  const REFRESH_S = (function () {
    const value = parseFloat(body.dataset.refreshSeconds);
    return Number.isFinite(value) && value >= 1 ? value : 5;
  })();
  const FETCH_TIMEOUT_MS = Math.max(4000, REFRESH_S * 1000 * 2);
  // the SVG namespace as the HTML parser itself assigns it (no URL literal in this file)
  const SVG_NS = (function () {
    const template = document.createElement("template");
    template.innerHTML = "<svg></svg>";
    return template.content.firstChild.namespaceURI;
  })();
  const HOUR = 3600 * 1000;

  const state = {
    status: null,
    histories: {},        // symbol -> the newest history that arrived
    historyText: {},      // symbol -> its JSON text (charts are redrawn only when it changes)
    drawnText: {},        // symbol -> the text the charts were drawn from
    lastUpdated: null,    // Date of the newest successful status fetch
  };

  // -- page-level problems are shown, never swallowed ---------------------------------------------

  window.addEventListener("error", function (event) {
    body.dataset.scriptError = String(event.message || event.error || "script error");
    showBanner("dashboard script error: " + body.dataset.scriptError);
  });
  window.addEventListener("unhandledrejection", function (event) {
    body.dataset.scriptError = String((event.reason && event.reason.message) || event.reason);
    showBanner("dashboard script error: " + body.dataset.scriptError);
  });
  document.addEventListener("securitypolicyviolation", function (event) {
    body.dataset.cspViolation = event.violatedDirective + " " + (event.blockedURI || "inline");
  });

  // -- DOM helpers --------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    if (children === null || children === undefined) return;
    for (const child of Array.isArray(children) ? children : [children]) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }

  function title(text) {
    return svg("title", { text: text });
  }

  function showBanner(text) {
    const banner = document.getElementById("error-banner");
    banner.textContent = text;
    banner.hidden = false;
  }

  function hideBanner() {
    const banner = document.getElementById("error-banner");
    banner.textContent = "";
    banner.hidden = true;
  }

  // -- formatting ---------------------------------------------------------------------------------

  const DASH = "—";

  function isNum(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function fmtNumber(value, digits) {
    if (!isNum(value)) return DASH;
    return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function fmtInt(value) {
    return isNum(value) ? Math.round(value).toLocaleString("en-US") : DASH;
  }

  function fmtShare(value) {  // 0.567 -> "56.7%"
    return isNum(value) ? (100 * value).toFixed(1) + "%" : DASH;
  }

  function fmtSignedPct(value) {  // already in percent: -2.285 -> "−2.29%"
    if (!isNum(value)) return DASH;
    const text = Math.abs(value).toFixed(2) + "%";
    return value > 0 ? "+" + text : value < 0 ? "\u2212" + text : text;
  }

  function pad(number) {
    return String(number).padStart(2, "0");
  }

  function fmtTs(ms) {  // market time in ms -> "2024-02-14 09:00 UTC"
    if (!isNum(ms)) return DASH;
    const d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  function fmtIso(text) {  // "2024-02-14T09:00:00Z" -> "2024-02-14 09:00 UTC"
    if (!text) return DASH;
    const ms = Date.parse(text);
    return Number.isFinite(ms) ? fmtTs(ms) : String(text);
  }

  function fmtClock(date) {  // the browser's own clock, for "last updated"
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function fmtDuration(seconds) {
    if (!isNum(seconds)) return DASH;
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + "d " + pad(h) + "h";
    if (h > 0) return h + "h " + pad(m) + "m";
    if (m > 0) return m + "m " + pad(s % 60) + "s";
    return s + "s";
  }

  function raw(value) {  // the data-value of a number element: the status value as JSON
    return JSON.stringify(value === undefined ? null : value);
  }

  function slug(symbol) {
    return "symbol-" + String(symbol).replace(/[^A-Za-z0-9]+/g, "-");
  }

  // -- fetching -----------------------------------------------------------------------------------

  async function getJSON(url) {
    const controller = new AbortController();
    const timer = setTimeout(function () { controller.abort(); }, FETCH_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" },
        signal: controller.signal });
    } catch (error) {
      throw new Error(error && error.name === "AbortError" ? "no answer within " + FETCH_TIMEOUT_MS / 1000 + " s"
        : "the dashboard does not answer (" + (error && error.message || error) + ")");
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text();
    let value = null;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new Error("HTTP " + response.status + ": not JSON");
    }
    if (!response.ok) {
      throw new Error("HTTP " + response.status + ": " + ((value && value.error) || response.statusText));
    }
    return { value: value, text: text };
  }

  async function refresh() {
    try {
      const status = (await getJSON("/api/status")).value;
      const symbols = (status.symbols || []).map(function (s) { return s.symbol; });
      const results = await Promise.all(symbols.map(function (symbol) {
        return getJSON("/api/history?symbol=" + encodeURIComponent(symbol)).then(
          function (answer) { return { symbol: symbol, answer: answer }; },
          function (error) { return { symbol: symbol, error: error }; });
      }));
      const historyErrors = {};
      for (const result of results) {
        if (result.error) {
          historyErrors[result.symbol] = result.error.message;
        } else {
          state.histories[result.symbol] = result.answer.value;
          state.historyText[result.symbol] = result.answer.text;
        }
      }
      state.status = status;
      state.lastUpdated = new Date();
      render(status, historyErrors);
      const failed = Object.keys(historyErrors);
      if (failed.length) {
        showBanner("history unavailable for " + failed.map(function (s) { return s + " (" + historyErrors[s] + ")"; })
          .join(", ") + "; its charts show the last data that arrived");
      } else if (!body.dataset.scriptError) {
        hideBanner();
      }
      delete body.dataset.fetchError;
      body.dataset.rendered = "1";
    } catch (error) {
      body.dataset.fetchError = error.message;
      const since = state.lastUpdated ? "; showing the data of " + fmtClock(state.lastUpdated) : "";
      showBanner("cannot update at " + fmtClock(new Date()) + ": " + error.message +
        " (is the daemon stopped?)" + since);
    } finally {
      setTimeout(refresh, REFRESH_S * 1000);
    }
  }

  // -- rendering: the page ------------------------------------------------------------------------

  function render(status, historyErrors) {
    renderDaemon(status);
    renderProcesses(status.processes || []);
    const app = document.getElementById("app");
    const loading = app.querySelector(".loading");
    if (loading) loading.remove();
    const wanted = (status.symbols || []).map(function (s) { return s.symbol; });
    for (const section of Array.from(app.querySelectorAll("section.symbol"))) {
      if (wanted.indexOf(section.dataset.symbol) < 0) section.remove();
    }
    if (!wanted.length && !app.querySelector(".empty-page")) {
      app.appendChild(el("p", { class: "empty empty-page", text: "no symbols configured" }));
    }
    const nav = document.getElementById("symbol-nav");
    nav.replaceChildren.apply(nav, wanted.length > 1 ? wanted.map(function (symbol) {
      return el("a", { href: "#" + slug(symbol), text: symbol });
    }) : []);
    for (const symbolState of status.symbols || []) {
      const section = symbolSection(app, symbolState.symbol);
      renderSymbol(section, symbolState, historyErrors[symbolState.symbol]);
    }
  }

  function renderDaemon(status) {
    const daemon = status.daemon || {};
    const info = document.getElementById("daemon-info");
    const items = [
      ["source", daemon.source], ["timeframe", daemon.timeframe], ["market time", fmtIso(daemon.market_time)],
      ["supervisor pid", daemon.pid], ["uptime", fmtDuration(daemon.uptime_s)],
      ["ready", daemon.ready ? "yes" : "no"],
    ];
    info.replaceChildren();
    for (const [label, value] of items) {
      info.appendChild(el("div", { class: "info-item" }, [el("dt", { text: label }),
        el("dd", { "data-field": "daemon_" + label.replace(/ /g, "_"), text: value === undefined ? DASH : value })]));
    }
    const updated = document.getElementById("last-updated");
    updated.textContent = "last updated " + fmtClock(state.lastUpdated);
    updated.dataset.value = state.lastUpdated.toISOString();
    document.getElementById("refresh-interval").textContent = String(REFRESH_S);
    const store = document.getElementById("store-banner");
    const storeError = status.store && status.store.error;
    store.textContent = storeError ? "the store fails: " + storeError : "";
    store.hidden = !storeError;
  }

  function renderProcesses(processes) {
    const rows = document.getElementById("process-rows");
    rows.replaceChildren();
    if (!processes.length) {
      rows.appendChild(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "no processes" })));
    }
    for (const p of processes) {
      const ready = p.ready === undefined ? (p.name === "supervisor" ? true : null) : p.ready;
      const silent = isNum(p.last_report_s) && p.last_report_s > Math.max(5, 2 * REFRESH_S);  // no report lately
      const cells = [
        ["name", p.name, p.name],
        ["pid", p.pid, p.pid === null || p.pid === undefined ? DASH : String(p.pid)],
        ["state", p.state, (p.state || DASH) + (silent ? " · silent " + fmtDuration(p.last_report_s) : "")],
        ["ready", p.ready, ready === null ? DASH : ready ? "yes" : "no"],
        ["restarts", p.restarts, fmtInt(p.restarts)],
        ["rss_mb", p.rss_mb, fmtNumber(p.rss_mb, 1)],
        ["cpu_percent", p.cpu_percent, fmtNumber(p.cpu_percent, 1)],
        ["uptime_s", p.uptime_s, fmtDuration(p.uptime_s)],
      ];
      const troubled = silent || !p.state || /exit|restart|fail|hung|stop|gave|giving/i.test(p.state);
      const stateClass = troubled ? "bad" : p.state === "starting" ? "wait" : "ok";
      rows.appendChild(el("tr", { "data-process": p.name }, cells.map(function (cell) {
        const numeric = ["restarts", "rss_mb", "cpu_percent", "uptime_s"].indexOf(cell[0]) >= 0;
        const classes = [numeric ? "num" : "", cell[0] === "state" ? "state-" + stateClass : ""].join(" ").trim();
        return el("td", { "data-field": cell[0], "data-process": p.name, "data-value": raw(cell[1]),
          class: classes || null, text: cell[2] });
      })));
    }
  }

  function symbolSection(app, symbol) {
    let section = Array.from(app.querySelectorAll("section.symbol")).find(function (s) {
      return s.dataset.symbol === symbol;
    });
    if (section) return section;
    section = el("section", { class: "symbol", id: slug(symbol), "data-symbol": symbol }, [
      el("h2", { class: "symbol-title" }, [el("span", { class: "symbol-name", text: symbol }),
        el("span", { class: "symbol-timeframe muted" })]),
      el("div", { class: "banner banner-error symbol-error", "data-field": "error", "data-symbol": symbol,
        hidden: true }),
      el("div", { class: "panel headline", "data-panel": "headline", "data-symbol": symbol }),
      el("div", { class: "panel training", "data-panel": "training", "data-symbol": symbol }),
      chartPanel(symbol, "price", "Price", "close of every candle, with the combined signal's BUY and SELL"),
      chartPanel(symbol, "win-rate", "Rolling win rate of the combined signal",
        "direction right / settled trades, newest N (rolling_window) trades of the combined signal"),
      chartPanel(symbol, "pnl", "Cumulative PnL", "sum of trade returns net of fees, %"),
      chartPanel(symbol, "timeline", "Model timeline",
        "which version served when; every retrain (trigger, result), promotion, rejection and rollback"),
    ]);
    app.appendChild(section);
    return section;
  }

  function chartPanel(symbol, name, heading, caption) {
    return el("div", { class: "panel chart chart-" + name, "data-panel": name, "data-symbol": symbol }, [
      el("div", { class: "panel-head" }, [el("h3", { text: heading }),
        el("span", { class: "caption", "data-caption": name, text: caption })]),
      el("div", { class: "legend", "data-legend": name }),
      el("div", { class: "chart-body" }),
      el("div", { class: "chart-note muted" }),
    ]);
  }

  function renderSymbol(section, s, historyError) {
    const symbol = s.symbol;
    section.querySelector(".symbol-timeframe").textContent = s.timeframe ? " · " + s.timeframe : "";
    section.dataset.timeframe = s.timeframe || "";
    const error = section.querySelector(".symbol-error");
    error.dataset.value = raw(s.error);
    error.textContent = s.error ? "state unreadable: " + s.error : "";
    error.hidden = !s.error;
    section.classList.toggle("unreadable", Boolean(s.error));
    renderHeadline(section.querySelector('[data-panel="headline"]'), s);
    renderTraining(section.querySelector('[data-panel="training"]'), s);
    const history = state.histories[symbol];
    const text = state.historyText[symbol];
    const notes = section.querySelectorAll(".chart-note");
    for (const note of notes) {
      note.textContent = historyError ? "history unavailable (" + historyError + ")" +
        (history ? "; showing the last one that arrived" : "") : "";
    }
    if (!history) {
      for (const bodyNode of section.querySelectorAll(".chart-body")) {
        bodyNode.replaceChildren(el("p", { class: "empty", text: historyError ? "no history" : "loading…" }));
      }
      return;
    }
    if (state.drawnText[symbol] === text) return;  // unchanged: keep the drawn charts (and any hover)
    state.drawnText[symbol] = text;
    const charts = {
      price: section.querySelector('[data-panel="price"]'),
      winRate: section.querySelector('[data-panel="win-rate"]'),
      pnl: section.querySelector('[data-panel="pnl"]'),
      timeline: section.querySelector('[data-panel="timeline"]'),
    };
    const ts = (history.candles && history.candles.ts) || [];
    if (!ts.length) {
      for (const panel of Object.values(charts)) {
        panel.querySelector(".chart-body").replaceChildren(el("p", { class: "empty", "data-empty": "1",
          text: "no candles yet" }));
        panel.querySelector(".legend").replaceChildren();
      }
      return;
    }
    // from the first candle (or an earlier event of the window) to the newest closed candle
    const eventTimes = (history.events || []).map(function (e) { return e.ts; }).filter(isNum);
    const x = timeScale(Math.min.apply(null, [ts[0]].concat(eventTimes)), ts[ts.length - 1]);
    drawPrice(charts.price, history, x);
    drawWinRate(charts.winRate, history, x);
    drawPnl(charts.pnl, history, x);
    drawTimeline(charts.timeline, history, x);
  }

  // -- headline numbers (from /api/status only) ---------------------------------------------------

  function value(symbol, field, rawValue, text, extraClass) {
    return el("span", { class: "value" + (extraClass ? " " + extraClass : ""), "data-field": field,
      "data-symbol": symbol, "data-value": raw(rawValue), text: text });
  }

  function card(label, main, subs, extraClass) {
    return el("div", { class: "card" + (extraClass ? " " + extraClass : "") }, [
      el("div", { class: "card-label", text: label }), el("div", { class: "card-main" }, main),
      el("div", { class: "card-sub" }, subs || []),
    ]);
  }

  function quoteCurrency(symbol) {
    const parts = String(symbol).split("/");
    return parts.length === 2 ? parts[1] : "";
  }

  function renderHeadline(panel, s) {
    const sym = s.symbol;
    const record = s.model_record;
    const last = s.last_retrain;
    const quote = quoteCurrency(sym);
    const mismatch = s.promoted_version && s.model_version && s.promoted_version !== s.model_version;
    const cards = [
      card("Price", [value(sym, "price", s.price, fmtNumber(s.price, 2), "big"),
        el("span", { class: "unit", text: quote ? " " + quote : "" })],
      ["last candle ", value(sym, "last_candle", s.last_candle, fmtIso(s.last_candle))]),
      card("Candles", [value(sym, "candles", s.candles, fmtInt(s.candles), "big")],
        ["stored, timeframe ", value(sym, "timeframe", s.timeframe, s.timeframe || DASH)]),
      card("Signals", [value(sym, "signals", s.signals, fmtInt(s.signals), "big")],
        ["settled trades of the combined signal, since start"]),
      card("Win rate", [value(sym, "win_rate", s.win_rate, fmtShare(s.win_rate), "big")],
        [value(sym, "win_rate_scope", s.win_rate_scope, s.win_rate_scope || DASH, "text")]),
      card("PnL", [value(sym, "pnl_pct", s.pnl_pct, fmtSignedPct(s.pnl_pct),
        "big " + (isNum(s.pnl_pct) ? (s.pnl_pct >= 0 ? "pos" : "neg") : ""))],
      ["combined signal, net of fees, since start"]),
      card("Promoted version", [value(sym, "promoted_version", s.promoted_version, s.promoted_version || "none", "big")],
        ["the registry's pointer"]),
      card("Serving version", [value(sym, "model_version", s.model_version,
        s.model_version || (s.promoted_version ? "unknown" : "algorithms only"), "big")],
      [mismatch ? el("span", { class: "warn", text: "differs from the promoted version" }) : "what inference serves"],
      mismatch ? "card-warn" : ""),
      card("Model's own record", record ? [
        value(sym, "model_direction_accuracy", record.direction_accuracy, fmtShare(record.direction_accuracy), "big"),
        el("span", { class: "unit", text: " direction" })] :
        [value(sym, "model_direction_accuracy", null, "no model", "big")],
      record ? [value(sym, "model_predictions", record.predictions, fmtInt(record.predictions)),
        " predictions of " + (record.version || "?") + (record.benched ? " (benched)" : "") +
        (isNum(record.evaluation_accuracy) ? "; evaluation " + fmtShare(record.evaluation_accuracy) : "")]
        : [value(sym, "model_predictions", null, DASH), " predictions"]),
      card("Needs retrain", [value(sym, "needs_retrain", s.needs_retrain, s.needs_retrain ? "yes" : "no",
        "big " + (s.needs_retrain ? "neg" : ""))],
      [value(sym, "retrain_reason", s.retrain_reason, s.retrain_reason || DASH, "text"),
        s.retrain_trigger ? el("span", { class: "muted" }, [" (trigger ",
          value(sym, "retrain_trigger", s.retrain_trigger, s.retrain_trigger, "text"), ")"]) : null],
      "card-wide"),
      card("Last retrain", [value(sym, "last_retrain_status", last ? last.status : null,
        last ? last.status : "never", "big status-" + (last ? last.status : "none"))],
      last ? ["trigger ", value(sym, "last_retrain_trigger", last.trigger, last.trigger || DASH, "text"),
        " · at ", value(sym, "last_retrain_market_time", last.market_time, fmtIso(last.market_time), "text"),
        last.version ? " · " + last.version : ""]
        : [value(sym, "last_retrain_trigger", null, DASH, "text"), " ",
          value(sym, "last_retrain_market_time", null, "", "text")], "card-wide"),
    ];
    const grid = el("div", { class: "cards" }, cards);
    if (s.error) {  // unreadable: the status's placeholders (0, null) are not facts to show
      for (const node of grid.querySelectorAll(".value")) {
        if (node.dataset.field !== "retrain_reason") node.textContent = DASH;
      }
    }
    panel.replaceChildren(grid);
  }

  function renderTraining(panel, s) {
    const sym = s.symbol;
    const training = s.training || {};
    const children = [el("h3", { text: "Training" })];
    if (training.in_progress) {
      const epochs = isNum(training.epochs) ? training.epochs : null;
      const epoch = isNum(training.epoch) ? training.epoch : 0;
      children.push(el("span", { class: "training-state active", "data-field": "training", "data-symbol": sym,
        "data-value": raw(training) }, [
        "epoch ", value(sym, "training_epoch", training.epoch, String(epoch)), "/",
        value(sym, "training_epochs", training.epochs, epochs === null ? "?" : String(epochs)),
        training.run_id ? " (run " + training.run_id + ")" : ""]));
      const bar = el("progress", { class: "training-bar", max: epochs || 1, value: epochs ? epoch : 0 });
      children.push(bar);
    } else {
      children.push(el("span", { class: "training-state idle", "data-field": "training", "data-symbol": sym,
        "data-value": raw(training), text: training.queued_or_running ? "not training (a retrain is queued)"
          : "not training" }));
    }
    panel.replaceChildren.apply(panel, children);
  }

  // -- charts ---------------------------------------------------------------------------------------

  const W = 1200;
  const M = { left: 72, right: 20, top: 14, bottom: 30 };

  function timeScale(start, end) {
    const span = Math.max(end - start, HOUR);
    const scale = function (ts) { return M.left + (ts - start) / span * (W - M.left - M.right); };
    scale.start = start;
    scale.end = start + span;
    return scale;
  }

  function linearScale(lo, hi, height) {
    if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
    const scale = function (v) { return M.top + (hi - v) / (hi - lo) * (height - M.top - M.bottom); };
    scale.lo = lo;
    scale.hi = hi;
    return scale;
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(function (f) { return f * mag; }).find(function (s) { return s >= raw; });
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
    return ticks;
  }

  function padded(lo, hi, share) {
    const span = hi - lo || Math.abs(hi) || 1;
    return [lo - span * share, hi + span * share];
  }

  function timeTicks(x) {
    const span = x.end - x.start;
    const steps = [1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 720].map(function (h) { return h * HOUR; });
    const step = steps.find(function (s) { return span / s <= 9; }) || steps[steps.length - 1];
    const ticks = [];
    for (let t = Math.ceil(x.start / step) * step; t <= x.end; t += step) ticks.push(t);
    return { ticks: ticks, daily: step >= 24 * HOUR };
  }

  function tickLabel(ts, daily) {
    const d = new Date(ts);
    const date = pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return daily ? date : date + " " + pad(d.getUTCHours()) + ":00";
  }

  function frame(height, x, y, yFormat, yTicks) {
    const nodes = [];
    for (const tick of yTicks) {
      nodes.push(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(tick), y2: y(tick) }));
      nodes.push(svg("text", { class: "axis-label", x: M.left - 8, y: y(tick) + 4, "text-anchor": "end",
        text: yFormat(tick) }));
    }
    const times = timeTicks(x);
    for (const tick of times.ticks) {
      nodes.push(svg("line", { class: "grid grid-x", x1: x(tick), x2: x(tick), y1: M.top, y2: height - M.bottom }));
      nodes.push(svg("text", { class: "axis-label", x: x(tick), y: height - M.bottom + 18, "text-anchor": "middle",
        text: tickLabel(tick, times.daily) }));
    }
    nodes.push(svg("line", { class: "axis", x1: M.left, x2: W - M.right, y1: height - M.bottom,
      y2: height - M.bottom }));
    nodes.push(svg("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: height - M.bottom }));
    return nodes;
  }

  function linePath(xs, ys, x, y) {  // null values break the line
    let d = "";
    let pen = false;
    for (let i = 0; i < xs.length; i++) {
      const v = ys[i];
      if (!isNum(v)) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(xs[i]).toFixed(1) + "," + y(v).toFixed(1);
      pen = true;
    }
    return d;
  }

  function chartSvg(name, height, nodes) {
    return svg("svg", { class: "chart-svg", "data-chart": name, viewBox: "0 0 " + W + " " + height,
      role: "img", "aria-label": name }, nodes);
  }

  function legendItem(cls, label, count) {
    return el("span", { class: "legend-item" }, [el("span", { class: "swatch " + cls }), label,
      count === undefined ? null : el("span", { class: "muted", text: " (" + count + ")" })]);
  }

  function drawPrice(panel, history, x) {
    const H = 300;
    const ts = history.candles.ts, close = history.candles.close;
    const markers = (history.markers || []).filter(function (m) { return m.ts >= x.start && m.ts <= x.end; });
    const values = close.concat(markers.map(function (m) { return m.price; })).filter(isNum);
    const range = padded(Math.min.apply(null, values), Math.max.apply(null, values), 0.05);
    const y = linearScale(range[0], range[1], H);
    const nodes = frame(H, x, y, function (v) { return fmtNumber(v, v >= 1000 ? 0 : 2); },
      niceTicks(range[0], range[1], 5));
    nodes.push(svg("path", { class: "line close-line", "data-series": "close", d: linePath(ts, close, x, y) }));
    const group = svg("g", { class: "markers" });
    let buys = 0, sells = 0;
    for (const m of markers) {
      if (!isNum(m.price)) continue;
      const cx = x(m.ts), cy = y(m.price), buy = m.action === "BUY";
      if (buy) buys++; else sells++;
      const d = buy ? "M" + cx + "," + (cy + 3) + "l-5,9h10z" : "M" + cx + "," + (cy - 3) + "l-5,-9h10z";
      group.appendChild(svg("path", { class: "marker " + (buy ? "buy" : "sell"), "data-marker": m.action, d: d },
        title(m.action + " at " + fmtTs(m.ts) + ", price " + fmtNumber(m.price, 2) + ", model " +
          (m.model_version || "none (algorithms only)"))));
    }
    nodes.push(group);
    panel.querySelector(".chart-body").replaceChildren(chartSvg("price", H, nodes));
    panel.querySelector(".legend").replaceChildren(legendItem("swatch-close", "close"),
      legendItem("swatch-buy", "BUY", buys), legendItem("swatch-sell", "SELL", sells),
      el("span", { class: "muted range", text: fmtIso(history.from) + " → " + fmtIso(history.to) }));
  }

  function drawWinRate(panel, history, x) {
    const H = 220;
    const combined = (history.trades && history.trades.combined) || { ts: [], win_rate: [] };
    const threshold = history.threshold;
    const window = history.rolling_window;
    const y = linearScale(0, 1, H);
    const nodes = frame(H, x, y, function (v) { return Math.round(v * 100) + "%"; }, [0, 0.25, 0.5, 0.75, 1]);
    if (isNum(threshold)) {
      nodes.push(svg("line", { class: "threshold-line", "data-series": "threshold", x1: M.left, x2: W - M.right,
        y1: y(threshold), y2: y(threshold) }, title("retrain threshold " + fmtShare(threshold) +
        " (auto_training.min_win_rate_threshold)")));
      nodes.push(svg("text", { class: "threshold-label", x: M.left + 6, y: y(threshold) - 5, "text-anchor": "start",
        text: "retrain threshold " + fmtShare(threshold) }));
    }
    const d = linePath(combined.ts, combined.win_rate, x, y);
    if (d) nodes.push(svg("path", { class: "line win-rate-line", "data-series": "win-rate", d: d }));
    else nodes.push(noData(H, "no settled trades in this window yet"));
    panel.querySelector(".chart-body").replaceChildren(chartSvg("win-rate", H, nodes));
    panel.querySelector('[data-caption="win-rate"]').textContent = "direction right / settled trades, newest " +
      (isNum(window) ? window : "N") + " (rolling_window) trades of the combined signal; each trade at its exit candle, drawn from the window's 5th trade on";
    panel.querySelector(".legend").replaceChildren(
      legendItem("swatch-win-rate", "combined signal", combined.ts.length + " settled trades"),
      legendItem("swatch-threshold", "retrain threshold " + fmtShare(threshold)));
  }

  function drawPnl(panel, history, x) {
    const H = 240;
    const trades = history.trades || {};
    const combined = trades.combined || { ts: [], pnl_pct: [] };
    const model = trades.model || { ts: [], pnl_pct: [] };
    const values = [0].concat(combined.pnl_pct, model.pnl_pct).filter(isNum);
    const range = padded(Math.min.apply(null, values), Math.max.apply(null, values), 0.08);
    const y = linearScale(range[0], range[1], H);
    const nodes = frame(H, x, y, function (v) { return fmtSignedPct(v); }, niceTicks(range[0], range[1], 5));
    nodes.push(svg("line", { class: "zero-line", x1: M.left, x2: W - M.right, y1: y(0), y2: y(0) }));
    const series = [["combined", combined, "pnl-combined"], ["model", model, "pnl-model"]];
    for (const [name, data, key] of series) {
      const d = linePath(data.ts, data.pnl_pct, x, y);
      if (d) {
        nodes.push(svg("path", { class: "line " + key + "-line", "data-series": key, d: d },
          title(name + ": " + fmtSignedPct(data.pnl_pct[data.pnl_pct.length - 1]) + " over " + data.ts.length +
            " trades")));
      }
    }
    if (!combined.ts.length && !model.ts.length) nodes.push(noData(H, "no settled trades in this window yet"));
    panel.querySelector(".chart-body").replaceChildren(chartSvg("pnl", H, nodes));
    const last = function (data) { return data.pnl_pct.length ? data.pnl_pct[data.pnl_pct.length - 1] : null; };
    panel.querySelector('[data-caption="pnl"]').textContent = "sum of trade returns net of fees, % (fee " +
      (isNum(history.fee_bps) ? history.fee_bps : "?") + " bps per side), from the chart's start, each trade at its exit candle";
    panel.querySelector(".legend").replaceChildren(
      legendItem("swatch-pnl-combined", "combined signal " + fmtSignedPct(last(combined)), combined.ts.length + " trades"),
      legendItem("swatch-pnl-model", "model's own trades " + (model.ts.length ? fmtSignedPct(last(model)) :
        "(no model trades yet)"), model.ts.length + " trades"));
  }

  function noData(height, text) {
    return svg("text", { class: "no-data", x: W / 2, y: height / 2, "text-anchor": "middle", text: text });
  }

  const EVENT_LABEL = {
    retrain: "retrain", promotion: "promotion", rollback: "rollback", benched: "benched",
    unbenched: "back in the vote", reactivated: "same version again", algorithms_only: "algorithms only",
  };

  function retrainTitle(e) {
    const lines = ["retrain" + (e.run_id ? " #" + e.run_id : "") + " at " + fmtTs(e.ts),
      "trigger: " + (e.trigger || DASH), "reason: " + (e.reason || DASH),
      "result: " + (e.status || DASH) + (e.version ? " (" + e.version + ")" : "") + (e.result ? ": " + e.result : "")];
    if (e.status === "rejected") lines.push("rejected because: " + (e.result || DASH));
    return lines.join("\n");
  }

  function changeTitle(e) {
    return (EVENT_LABEL[e.kind] || e.kind) + " at " + fmtTs(e.ts) + ": " + (e.previous || "none") + " → " +
      (e.version || "algorithms only") + (e.reason ? "\n" + e.reason : "");
  }

  function drawTimeline(panel, history, x) {
    const H = 170;
    const lanes = { versions: 30, retrains: 80, changes: 118 };
    const nodes = [];
    const times = timeTicks(x);
    for (const tick of times.ticks) {
      nodes.push(svg("line", { class: "grid grid-x", x1: x(tick), x2: x(tick), y1: 12, y2: H - M.bottom }));
      nodes.push(svg("text", { class: "axis-label", x: x(tick), y: H - M.bottom + 18, "text-anchor": "middle",
        text: tickLabel(tick, times.daily) }));
    }
    nodes.push(svg("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
    for (const [name, yLane] of Object.entries(lanes)) {
      nodes.push(svg("text", { class: "lane-label", x: M.left - 8, y: yLane + 4, "text-anchor": "end", text: name }));
      nodes.push(svg("line", { class: "lane-line", x1: M.left, x2: W - M.right, y1: yLane, y2: yLane }));
    }
    const clip = function (ts) { return Math.min(Math.max(ts, x.start), x.end); };
    const versions = history.versions || [];
    versions.forEach(function (segment) {
      const x1 = x(clip(segment.from_ts)), x2 = Math.max(x(clip(segment.to_ts)), x1 + 2);
      const kind = segment.version ? (segment.benched ? "benched" : "serving") : "algorithms";
      const group = svg("g", { class: "segment segment-" + kind, "data-segment": segment.version || "algorithms" });
      group.appendChild(svg("rect", { class: "segment-rect palette-" + (versionIndex(segment.version) % 6),
        x: x1.toFixed(1), y: lanes.versions - 12, width: (x2 - x1).toFixed(1), height: 24, rx: 3 },
      title((segment.version || "algorithms only") + (segment.benched ? " (benched: out of the vote)" : "") +
        "\n" + fmtTs(segment.from_ts) + " → " + fmtTs(segment.to_ts))));
      if (x2 - x1 > 46) {
        group.appendChild(svg("text", { class: "segment-label", x: (x1 + 6).toFixed(1), y: lanes.versions + 4,
          text: (segment.version || "algorithms") + (segment.benched ? " benched" : "") }));
      }
      nodes.push(group);
    });
    if (!versions.length) {
      nodes.push(svg("text", { class: "no-data", x: W / 2, y: lanes.versions + 4, "text-anchor": "middle",
        text: "no model has served yet: the algorithms alone" }));
    }
    const events = (history.events || []).filter(function (e) { return isNum(e.ts); });
    for (const e of events) {
      const cx = x(clip(e.ts));
      if (e.kind === "retrain") {
        nodes.push(svg("circle", { class: "event event-retrain status-" + (e.status || "unknown"), "data-event": "retrain",
          "data-status": e.status, "data-trigger": e.trigger, "data-run-id": e.run_id, cx: cx.toFixed(1), cy: lanes.retrains, r: 7 },
        title(retrainTitle(e))));
      } else {
        const cy = lanes.changes;
        const shape = e.kind === "promotion" ? "M" + cx + "," + (cy - 8) + "l7,12h-14z"
          : e.kind === "rollback" ? "M" + cx + "," + (cy + 8) + "l7,-12h-14z"
            : "M" + (cx - 6) + "," + (cy - 6) + "h12v12h-12z";
        nodes.push(svg("path", { class: "event event-" + e.kind, "data-event": e.kind, d: shape }, title(changeTitle(e))));
      }
    }
    panel.querySelector(".chart-body").replaceChildren(chartSvg("timeline", H, nodes), eventTable(events));
    const count = function (test) { return events.filter(test).length; };
    panel.querySelector(".legend").replaceChildren(
      legendItem("swatch-status-promoted", "retrain promoted", count(function (e) { return e.kind === "retrain" && e.status === "promoted"; })),
      legendItem("swatch-status-rejected", "retrain rejected", count(function (e) { return e.kind === "retrain" && e.status === "rejected"; })),
      legendItem("swatch-status-failed", "retrain failed", count(function (e) { return e.kind === "retrain" && e.status === "failed"; })),
      legendItem("swatch-status-running", "queued / running", count(function (e) {
        return e.kind === "retrain" && (e.status === "queued" || e.status === "running");
      })),
      legendItem("swatch-promotion", "promotion", count(function (e) { return e.kind === "promotion"; })),
      legendItem("swatch-rollback", "rollback", count(function (e) { return e.kind === "rollback"; })),
      legendItem("swatch-benched", "benched / other", count(function (e) {
        return e.kind !== "retrain" && e.kind !== "promotion" && e.kind !== "rollback";
      })));
  }

  function versionIndex(version) {
    const match = /(\d+)/.exec(version || "");
    return match ? parseInt(match[1], 10) : 0;
  }

  function eventTable(events) {
    const newest = events.slice().reverse();
    const rows = newest.map(function (e) {
      const retrain = e.kind === "retrain";
      const what = retrain ? "retrain → " + (e.status || "?") : (EVENT_LABEL[e.kind] || e.kind);
      const detail = retrain ? (e.status === "rejected" ? "rejected: " : "") + (e.result || e.reason || "")
        : (e.previous || "none") + " → " + (e.version || "algorithms only") + (e.reason ? ": " + e.reason : "");
      return el("tr", { "data-event": e.kind, "data-status": retrain ? e.status : null,
        "data-run-id": retrain ? e.run_id : null,
        title: retrain ? retrainTitle(e) : changeTitle(e) }, [
        el("td", { class: "nowrap", text: fmtTs(e.ts) }),
        el("td", { class: "nowrap event-kind kind-" + e.kind + (retrain ? " status-text-" + e.status : ""), text: what }),
        el("td", { class: "nowrap", text: e.version || DASH }),
        el("td", { class: "nowrap", text: retrain ? (e.trigger || DASH) : DASH }),
        el("td", { class: "detail", text: detail }),
      ]);
    });
    const table = el("table", { class: "event-table" }, [
      el("thead", {}, el("tr", {}, ["market time", "event", "version", "trigger", "result / reason"].map(function (h) {
        return el("th", { text: h });
      }))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "muted",
        text: "no retrain, promotion or rollback in this window" }))),
    ]);
    return el("div", { class: "event-list" }, table);
  }

  refresh();
})();
