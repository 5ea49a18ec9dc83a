// The xengage dashboard: plain JS, no build step. It reads only this API's public routes, by relative URL (so it
// works behind any base path: API Gateway's /v1/, a local signing proxy), and writes every value into the DOM as
// text (textContent), never as markup. window.xengageDashboard exposes what the charts draw (tests compare it with
// the API's JSON).
"use strict";

(function () {
  const MAX_PAGES = 50; // cursor pages followed per listing: bounds what one view can ask of the API
  const RANGES = { "24h": 1, "7d": 7, "28d": 28, "365d": 365 }; // days
  const $ = (id) => document.getElementById(id);
  const metricsByEndpoint = JSON.parse(document.body.dataset.metrics);
  const allMetrics = [...new Set([...metricsByEndpoint.totals, ...metricsByEndpoint.historical])];

  const state = {
    ready: false, // true when the last view asked for has drawn (or failed)
    generation: 0, // how many post views have drawn
    charts: { totals: null, hourly: null },
    plotted: { totals: null, hourly: null },
    accountPosts: [],
    errors: [],
  };
  // Views asked for in quick succession (three pickers changed) run at once: only the latest of each kind draws.
  const latest = { post: 0, top: 0, posts: 0 };
  let pending = 0;
  const isLatest = (kind) => {
    const token = ++latest[kind];
    return () => token === latest[kind];
  };
  window.xengageDashboard = state;

  // --- small DOM helpers: text only ------------------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function option(value, label) {
    const node = el("option", { value: value }, label);
    return node;
  }

  function report(message) {
    state.errors.push(message);
    $("status").textContent = message;
  }

  // --- the API ---------------------------------------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, body, path) {
      const detail = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${status}`;
      super(`${path.split("?")[0]}: ${detail}`);
      this.status = status;
    }
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    let body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      body = null;
    }
    if (!response.ok) throw new ApiFailure(response.status, body, path);
    return body;
  }

  function query(path, params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") search.set(name, value);
    }
    const text = search.toString();
    return text ? `${path}?${text}` : path;
  }

  async function allPages(path, params, key) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page++) {
      const body = await api(query(path, { ...params, cursor: cursor }));
      items.push(...body[key]);
      cursor = body.next_cursor;
      if (!cursor) return { items: items, complete: true };
    }
    return { items: items, complete: false };
  }

  // --- collection health -----------------------------------------------------------------------------------------

  async function loadHealth() {
    const health = await api("collection/health");
    fill(
      document.querySelector("#health-statuses tbody"),
      health.statuses
        .filter((entry) => entry.count > 0 || entry.status === "ok")
        .map((entry) =>
          el(
            "tr",
            { className: entry.status === "ok" ? "" : "problem" },
            el("td", {}, entry.status),
            el("td", { className: "num" }, (entry.at_least ? "≥ " : "") + entry.count.toLocaleString("en")),
          ),
        ),
    );
    const reauth = health.accounts_needing_reauth;
    const reauthCount = $("health-reauth-count");
    reauthCount.textContent = (reauth.at_least ? "≥ " : "") + reauth.accounts.length;
    reauthCount.classList.toggle("bad", reauth.accounts.length > 0);
    $("health-reauth").replaceChildren(
      ...reauth.accounts.map((account) =>
        el("li", {}, `@${account.screen_name || "?"} (${account.user_id})`, account.last_error ? `: ${account.last_error}` : ""),
      ),
    );
    fill(
      document.querySelector("#health-overdue tbody"),
      health.oldest_overdue.map((entry) =>
        el(
          "tr",
          {},
          el("td", {}, `/${entry.endpoint}`),
          el("td", { className: "mono" }, entry.tweet_id),
          el("td", {}, `${entry.next_due_at} (${duration(entry.overdue_seconds)})`),
        ),
      ),
    );
    $("health-overdue-none").hidden = health.oldest_overdue.length > 0;
  }

  function duration(seconds) {
    if (seconds < 120) return `${seconds} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} days`;
  }

  async function loadUsage() {
    const figure = $("health-handles");
    const note = $("health-handles-note");
    let usage;
    try {
      usage = await api("usage");
    } catch (failure) {
      if (failure.status === 404) {
        // This deployment does not count @handles (no /usage route): say so rather than guess.
        figure.textContent = "n/a";
        note.textContent = "this API does not count @handles";
        return;
      }
      throw failure;
    }
    const cap = usage.cap === null || usage.cap === undefined ? null : usage.cap;
    figure.textContent = cap === null ? String(usage.unique_handles) : `${usage.unique_handles} / ${cap}`;
    figure.classList.toggle("bad", Boolean(usage.capped));
    note.textContent = `${usage.month}: ${cap === null ? "no cap set" : usage.capped ? "capped: new @handles wait" : "under the cap"}`;
  }

  // --- accounts, their top and tracked Posts ---------------------------------------------------------------------

  async function loadAccounts() {
    const { items } = await allPages("accounts", { limit: 100 }, "accounts");
    const select = $("account-select");
    select.replaceChildren(
      ...items.map((account) => option(account.user_id, `@${account.screen_name || "?"} (${account.user_id})${account.status === "needs_reauth" ? " needs re-auth" : ""}`)),
      option("", "Posts of the app token only"),
    );
  }

  async function loadTop() {
    const accountId = $("account-select").value;
    const tbody = document.querySelector("#top-table tbody");
    if (!accountId) {
      fill(tbody, []);
      $("top-note").textContent = "Posts tracked without an account have no ranking.";
      return [];
    }
    const current = isLatest("top");
    const top = await api(query(`accounts/${encodeURIComponent(accountId)}/top`, { metric: $("top-metric").value, limit: 10 }));
    if (!current()) return top.posts;
    fill(
      tbody,
      top.posts.map((entry, index) =>
        el(
          "tr",
          {},
          el("td", {}, index + 1),
          el("td", {}, postButton(entry.tweet_id)),
          el("td", { className: "num" }, entry.value.toLocaleString("en")),
          el("td", {}, entry.at || ""),
        ),
      ),
    );
    $("top-note").textContent = top.source === "latest_totals" ? "by each Post's latest /totals" : "by the sum of stored hours";
    return top.posts;
  }

  async function loadPosts() {
    const accountId = $("account-select").value;
    const current = isLatest("posts");
    const { items, complete } = await allPages("tweets", { account_id: accountId, limit: 250, order: "newest" }, "posts");
    if (!current()) return items;
    state.accountPosts = items;
    $("posts-count").textContent = `${items.length}${complete ? "" : "+"} tracked`;
    showPosts();
    return items;
  }

  function showPosts() {
    const needle = $("post-search").value.trim();
    const shown = state.accountPosts.filter((post) => post.tweet_id.includes(needle)).slice(0, 200);
    $("post-list").replaceChildren(...shown.map((post) => el("li", {}, postButton(post.tweet_id), " ", el("span", { className: "muted small" }, post.created_at.slice(0, 10)))));
  }

  function postButton(tweetId) {
    const button = el("button", { type: "button", className: "link", "data-tweet-id": tweetId }, tweetId);
    button.addEventListener("click", () => {
      $("post-id").value = tweetId;
      run(showPost);
    });
    return button;
  }

  // --- a Post's metrics over time --------------------------------------------------------------------------------

  function rangeParams() {
    const days = RANGES[$("range").value];
    if (!days) return { from: null, to: null };
    // Up to the end of the current minute: a snapshot taken seconds ago (a tick's scheduled time) is in range.
    const to = new Date();
    to.setUTCMinutes(to.getUTCMinutes() + 1, 0, 0);
    const from = new Date(to.getTime() - days * 86400000);
    const iso = (moment) => moment.toISOString().replace(/\.\d{3}Z$/, "Z");
    return { from: iso(from), to: iso(to) };
  }

  async function series(tweetId, endpoint, metric, range) {
    const params = { endpoint: endpoint, from: range.from, to: range.to, limit: 1000 };
    const { items, complete } = await allPages(`tweets/${encodeURIComponent(tweetId)}/metrics`, params, "points");
    const x = items.map((point) => Date.parse(point.at) / 1000);
    const y = items.map((point) => (metric in point.metrics ? point.metrics[metric] : null));
    const names = [...new Set(items.flatMap((point) => Object.keys(point.metrics)))];
    return { tweet_id: tweetId, endpoint: endpoint, metric: metric, from: range.from, to: range.to, complete: complete, x: x, y: y, names: names };
  }

  // Names the stored points hold that the catalog does not (written by another version, or added since) join the
  // picker, so what is stored stays chartable.
  function offerStoredNames(...plotted) {
    const picker = $("metric");
    const offered = new Set([...picker.options].map((node) => node.value));
    const found = plotted.flatMap((one) => one.names).filter((name) => !offered.has(name));
    for (const name of [...new Set(found)].sort()) picker.append(option(name, name));
  }

  function draw(name, plotted, target) {
    if (state.charts[name]) state.charts[name].destroy();
    const width = Math.max(320, target.clientWidth || 800);
    const x = { time: true };
    if (plotted.x.length === 1) {
      // One snapshot alone: uPlot would widen its zero-width range by 1000 days (it takes seconds for ms).
      x.auto = false;
      x.range = [plotted.x[0] - 3600, plotted.x[0] + 3600];
    }
    const options = {
      width: width,
      height: 260,
      scales: { x: x },
      series: [{}, { label: `${plotted.metric} (/${plotted.endpoint})`, stroke: "#1d9bf0", width: 2, points: { show: true, size: 5 } }],
    };
    state.charts[name] = new uPlot(options, [plotted.x, plotted.y], target);
    state.plotted[name] = plotted;
  }

  async function showPost() {
    const tweetId = $("post-id").value.trim();
    if (!/^[1-9][0-9]{0,18}$/.test(tweetId)) {
      report("Post id: digits only, no leading zero");
      return;
    }
    const current = isLatest("post");
    const metric = $("metric").value;
    const range = rangeParams();
    const [totals, hourly] = await Promise.all([
      series(tweetId, "totals", metric, range),
      series(tweetId, $("series-endpoint").value, metric, range),
    ]);
    if (!current()) return;
    offerStoredNames(totals, hourly);
    $("post-label").textContent = tweetId;
    draw("totals", totals, $("chart-totals"));
    draw("hourly", hourly, $("chart-hourly"));
    $("totals-count").textContent = `${totals.x.length} snapshots${totals.complete ? "" : " (first pages only)"}`;
    $("hourly-count").textContent = `${hourly.x.length} hours of /${hourly.endpoint}${hourly.complete ? "" : " (first pages only)"}`;
    state.generation += 1;
  }

  async function showAccount() {
    const [top, posts] = await Promise.all([loadTop(), loadPosts()]);
    const first = top.length ? top[0].tweet_id : posts.length ? posts[0].tweet_id : "";
    if (first) {
      $("post-id").value = first;
      await showPost();
    }
  }

  // --- wiring ----------------------------------------------------------------------------------------------------

  async function run(view) {
    pending += 1;
    state.ready = false;
    $("status").textContent = "";
    try {
      await view();
    } catch (failure) {
      report(failure.message);
    } finally {
      pending -= 1;
      state.ready = pending === 0;
    }
  }

  function settle(promise) {
    return promise.catch((failure) => report(failure.message));
  }

  function init() {
    $("top-metric").replaceChildren(...metricsByEndpoint.totals.map((name) => option(name, name)));
    $("metric").replaceChildren(...allMetrics.map((name) => option(name, name)));
    $("account-select").addEventListener("change", () => run(showAccount));
    $("top-metric").addEventListener("change", () => run(loadTop));
    $("post-search").addEventListener("input", showPosts);
    for (const id of ["metric", "range", "series-endpoint"]) $(id).addEventListener("change", () => run(showPost));
    $("post-form").addEventListener("submit", (event) => {
      event.preventDefault();
      run(showPost);
    });
    run(async () => {
      await Promise.all([settle(loadHealth()), settle(loadUsage()), loadAccounts()]);
      await showAccount();
    });
  }

  init();
})();
