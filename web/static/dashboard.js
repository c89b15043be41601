// zapjobs-sse live dashboard client: ONE EventSource per page, a connection indicator,
// reconnect with Last-Event-ID, resync from the JSON API, and a polling fallback.
// Everything from the database goes into the page with textContent, never as HTML.
(function () {
  "use strict";

  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var pageName = body.getAttribute("data-page") || "";
  var pollInterval = Math.max(500, Number(body.getAttribute("data-poll-interval")) || 5000);
  var MAX_FAILURES = 3; // stream errors in a row before falling back to polling
  var STABLE_MS = 10000; // a stream that stayed open this long resets the failure count
  var FETCH_TIMEOUT_MS = 10000;
  var CHART_HEIGHT = 120;
  var CHART_BAR = 10;
  var LEVELS = ["Trace", "Debug", "Info", "Warning", "Error", "Critical"];

  // -- small helpers -------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function formatTime(iso) {
    return iso ? iso.slice(0, 10) + " " + iso.slice(11, 19) : "";
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) {
      var tenths = Math.floor(ms / 100);
      return Math.floor(tenths / 10) + "." + (tenths % 10) + " s";
    }
    var seconds = Math.floor(ms / 1000);
    return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  }

  function formatElapsed(ms) {
    var seconds = Math.max(0, Math.floor(ms / 1000));
    return seconds < 60 ? seconds + " s" : Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  }

  function formatCount(value) {
    if (value === null || value === undefined) return "";
    return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
  }

  function slug(text) {
    return String(text || "").toLowerCase().replace(/[^a-z0-9-]/g, "");
  }

  function setClassPrefix(node, prefix, value) {
    var keep = [];
    node.classList.forEach(function (name) {
      if (name.indexOf(prefix) !== 0) keep.push(name);
    });
    keep.push(prefix + slug(value));
    node.className = keep.join(" ");
  }

  function api(path) {
    var controller = new AbortController();
    var timer = setTimeout(function () {
      controller.abort();
    }, FETCH_TIMEOUT_MS);
    return fetch(base + "/api/" + path, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      signal: controller.signal,
    })
      .then(function (response) {
        if (response.status === 401) signedOut();
        if (!response.ok) throw new Error(path + ": HTTP " + response.status);
        return response.json();
      })
      .finally(function () {
        clearTimeout(timer);
      });
  }

  function debounce(fn, wait) {
    var timer = null;
    return function () {
      if (timer !== null) return;
      timer = setTimeout(function () {
        timer = null;
        fn();
      }, wait);
    };
  }

  // -- connection indicator --------------------------------------------------------------

  var indicator = document.getElementById("connection-status");
  var WORDS = {
    connecting: "Connecting…",
    connected: "Live",
    reconnecting: "Connection lost, reconnecting…",
    polling: "Live stream unavailable: refreshing every " + Math.round(pollInterval / 1000) + " s",
    disconnected: "Offline: retrying",
  };

  function setState(state) {
    if (!indicator) return;
    indicator.setAttribute("data-state", state);
    var text = indicator.querySelector(".connection-text") || indicator;
    text.textContent = WORDS[state];
    indicator.title = WORDS[state];
  }

  // The session expired or its token was revoked: stop, and offer to sign in again.
  var isSignedOut = false;
  function signedOut() {
    if (isSignedOut) return;
    isSignedOut = true;
    document.dispatchEvent(new Event("zapjobs:signed-out"));
    setState("disconnected");
    if (!indicator) return;
    var text = indicator.querySelector(".connection-text") || indicator;
    text.textContent = "Signed out: ";
    var link = el("a", "sign-in", "sign in again");
    link.href = base + "/login?next=" + encodeURIComponent(location.pathname + location.search);
    text.appendChild(link);
  }

  // -- shared renderers (mirror web/templates/macros.html) --------------------------------

  function fillRunRow(row, run) {
    row.setAttribute("data-created", run.createdAt || "");
    var status = row.querySelector(".status");
    status.textContent = run.status;
    setClassPrefix(status, "status-", run.status);
    var progress = row.querySelector("progress");
    var total = run.total && run.total > 0 ? run.total : 100;
    progress.max = total;
    progress.value = run.progress || 0;
    row.querySelector(".progress-text").textContent =
      run.total && run.total > 0 ? run.progress + "/" + run.total : (run.progress || 0) + "%";
    row.querySelector(".duration").textContent = formatDuration(run.durationMs);
    row.querySelector(".worker").textContent = run.workerId || "";
    row.querySelector(".error").textContent = run.errorMessage || "";
    row.querySelector(".job-type").textContent = run.jobTypeId;
  }

  function newRunRow(run) {
    var row = el("tr");
    row.setAttribute("data-run-id", run.id);
    var idCell = el("td", "run-id");
    var link = el("a", null, run.id.slice(0, 8));
    link.href = base + "/runs/" + encodeURIComponent(run.id);
    link.title = run.id;
    idCell.appendChild(link);
    row.appendChild(idCell);
    row.appendChild(el("td", "job-type"));
    var statusCell = el("td");
    statusCell.appendChild(el("span", "status"));
    row.appendChild(statusCell);
    var progressCell = el("td", "progress-cell");
    progressCell.appendChild(el("progress", "progress"));
    progressCell.appendChild(document.createTextNode(" "));
    progressCell.appendChild(el("span", "progress-text"));
    row.appendChild(progressCell);
    row.appendChild(el("td", "duration"));
    var created = el("td", "created");
    var time = el("time", null, formatTime(run.createdAt));
    time.setAttribute("datetime", run.createdAt || "");
    created.appendChild(time);
    row.appendChild(created);
    row.appendChild(el("td", "worker"));
    row.appendChild(el("td", "error"));
    fillRunRow(row, run);
    return row;
  }

  function findRow(tbody, attribute, id) {
    var rows = tbody.children;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute(attribute) === id) return rows[i];
    }
    return null;
  }

  function showEmpty(id, empty) {
    var node = document.getElementById(id);
    if (node) node.hidden = !empty;
  }

  function upsertRun(run, options) {
    var tbody = document.getElementById("runs-body");
    if (!tbody) return;
    var row = findRow(tbody, "data-run-id", run.id);
    if (row) {
      fillRunRow(row, run);
      return;
    }
    if (!options.insert || !options.insert(run)) return;
    row = newRunRow(run);
    row.classList.add("new");
    tbody.insertBefore(row, tbody.firstElementChild);
    while (options.limit && tbody.children.length > options.limit) {
      tbody.removeChild(tbody.lastElementChild);
    }
    showEmpty("runs-empty", false);
  }

  function replaceRuns(runs) {
    var tbody = document.getElementById("runs-body");
    if (!tbody) return;
    var fresh = document.createDocumentFragment();
    runs.forEach(function (run) {
      fresh.appendChild(newRunRow(run));
    });
    tbody.replaceChildren(fresh);
    showEmpty("runs-empty", runs.length === 0);
  }

  function fillWorkerRow(row, worker) {
    row.className = "worker-" + slug(worker.state);
    var state = row.querySelector(".state");
    state.textContent = worker.state;
    setClassPrefix(state, "state-", worker.state);
    row.querySelector(".hostname").textContent = worker.hostname;
    row.querySelector(".current-job").textContent = worker.currentJobType || "";
    row.querySelector(".jobs-processed").textContent = worker.jobsProcessed;
    row.querySelector(".jobs-failed").textContent =
      worker.jobsFailed === undefined ? "" : worker.jobsFailed;
    if (worker.queues) row.querySelector(".queues").textContent = worker.queues.join(", ");
    var time = row.querySelector(".heartbeat time");
    time.textContent = formatTime(worker.timestamp);
    time.setAttribute("datetime", worker.timestamp || "");
  }

  function newWorkerRow(worker) {
    var row = el("tr");
    row.setAttribute("data-worker-id", worker.workerId);
    row.appendChild(el("td", "worker-id", worker.workerId));
    row.appendChild(el("td", "hostname"));
    var stateCell = el("td");
    stateCell.appendChild(el("span", "state"));
    row.appendChild(stateCell);
    row.appendChild(el("td", "current-job"));
    row.appendChild(el("td", "jobs-processed"));
    row.appendChild(el("td", "jobs-failed"));
    row.appendChild(el("td", "queues"));
    var beat = el("td", "heartbeat");
    beat.appendChild(el("time"));
    row.appendChild(beat);
    fillWorkerRow(row, worker);
    return row;
  }

  function upsertWorker(worker) {
    var tbody = document.getElementById("workers-body");
    if (!tbody) return;
    var row = findRow(tbody, "data-worker-id", worker.workerId);
    if (row) {
      fillWorkerRow(row, worker);
      return;
    }
    row = newWorkerRow(worker);
    var next = null;
    for (var i = 0; i < tbody.children.length; i++) {
      if (tbody.children[i].getAttribute("data-worker-id") > worker.workerId) {
        next = tbody.children[i];
        break;
      }
    }
    tbody.insertBefore(row, next);
    showEmpty("workers-empty", false);
  }

  function replaceWorkers(workers) {
    var tbody = document.getElementById("workers-body");
    if (!tbody) return;
    var fresh = document.createDocumentFragment();
    workers.forEach(function (worker) {
      fresh.appendChild(newWorkerRow(worker));
    });
    tbody.replaceChildren(fresh);
    showEmpty("workers-empty", workers.length === 0);
  }

  function showStats(stats) {
    var estimated = stats.estimated || [];
    document.querySelectorAll("[data-stat]").forEach(function (node) {
      var field = node.getAttribute("data-stat");
      if (!(field in stats)) return;
      var text = (estimated.indexOf(field) >= 0 ? "≈" : "") + formatCount(stats[field]);
      if (node.textContent !== text) {
        node.textContent = text;
        node.classList.remove("changed");
        void node.offsetWidth; // restart the highlight animation
        node.classList.add("changed");
      }
    });
  }

  var SVG = "http://www.w3.org/2000/svg";

  function drawChart(minutes) {
    var svg = document.getElementById("runs-chart");
    if (!svg) return;
    var top = 1;
    var completed = 0;
    var failed = 0;
    minutes.forEach(function (m) {
      top = Math.max(top, m.completed + m.failed);
      completed += m.completed;
      failed += m.failed;
    });
    var fresh = document.createDocumentFragment();
    minutes.forEach(function (m, index) {
      var completedH = Math.round((m.completed * CHART_HEIGHT) / top);
      var failedH = Math.round((m.failed * CHART_HEIGHT) / top);
      var group = document.createElementNS(SVG, "g");
      var title = document.createElementNS(SVG, "title");
      title.textContent =
        formatTime(m.minute).slice(11, 16) + ": " + m.completed + " completed, " + m.failed + " failed";
      group.appendChild(title);
      [
        ["bar-completed", CHART_HEIGHT - completedH, completedH],
        ["bar-failed", CHART_HEIGHT - completedH - failedH, failedH],
      ].forEach(function (spec) {
        var rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("class", spec[0]);
        rect.setAttribute("x", String(index * CHART_BAR + 1));
        rect.setAttribute("y", String(spec[1]));
        rect.setAttribute("width", "8");
        rect.setAttribute("height", String(spec[2]));
        group.appendChild(rect);
      });
      fresh.appendChild(group);
    });
    svg.replaceChildren(fresh);
    svg.setAttribute("viewBox", "0 0 " + minutes.length * CHART_BAR + " " + CHART_HEIGHT);
    document.getElementById("chart-completed").textContent = completed;
    document.getElementById("chart-failed").textContent = failed;
    document.getElementById("chart-top").textContent = top;
  }

  // -- pages -----------------------------------------------------------------------------
  // Each page says what to subscribe to, how to apply each event, and how to reload its
  // data from the JSON API (after a resync, and on every tick of the polling fallback).

  function overviewPage() {
    var limit = Number(body.getAttribute("data-page-size")) || 15;
    function refreshChart() {
      return api("runs-per-minute").then(function (data) {
        drawChart(data.minutes);
      });
    }
    var chartSoon = debounce(function () {
      refreshChart().catch(function () {});
    }, 1000);
    setInterval(chartSoon, 60000); // the window moves even when nothing happens
    return {
      params: function () {
        return [];
      },
      events: {
        StatsUpdated: showStats,
        JobRunUpdated: function (run) {
          upsertRun(run, {
            insert: function () {
              return true;
            },
            limit: limit,
          });
          if (run.status === "Completed" || run.status === "Failed") chartSoon();
        },
        WorkerUpdated: upsertWorker,
      },
      refresh: function () {
        return Promise.all([
          api("stats").then(showStats),
          api("runs?limit=" + limit).then(function (data) {
            replaceRuns(data.runs);
          }),
          api("workers").then(function (data) {
            replaceWorkers(data.workers);
          }),
          refreshChart(),
        ]);
      },
    };
  }

  function runsPage() {
    var status = body.getAttribute("data-status-filter") || "";
    var jobType = body.getAttribute("data-job-type-filter") || "";
    var firstPage = body.getAttribute("data-first-page") === "1";
    var limit = Number(body.getAttribute("data-page-size")) || 50;
    return {
      params: function () {
        return [["topics", "runs"]];
      },
      events: {
        JobRunUpdated: function (run) {
          upsertRun(run, {
            insert: function (candidate) {
              return (
                firstPage &&
                (!status || candidate.status === status) &&
                (!jobType || candidate.jobTypeId === jobType)
              );
            },
            limit: limit,
          });
        },
      },
      refresh: function () {
        return api("runs" + window.location.search).then(function (data) {
          replaceRuns(data.runs);
        });
      },
    };
  }

  function parseCursor(cursor) {
    var dot = cursor.indexOf(".");
    return [Number(cursor.slice(0, dot)), cursor.slice(dot + 1)];
  }

  function compareCursors(a, b) {
    var x = parseCursor(a);
    var y = parseCursor(b);
    if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
    if (x[1] === y[1]) return 0;
    return x[1] < y[1] ? -1 : 1;
  }

  function runPage() {
    var runId = body.getAttribute("data-run-id");
    var container = document.getElementById("logs-container");
    var follow = document.getElementById("log-follow");
    var levelSelect = document.getElementById("log-level");
    var count = document.getElementById("log-count");
    var lastCursor = container.getAttribute("data-logs-after");
    var seen = new Set();
    var programmaticScroll = false;
    container.querySelectorAll("[data-log-id]").forEach(function (line) {
      seen.add(line.getAttribute("data-log-id"));
    });
    if (window.location.hash.indexOf("#log-") === 0) follow.checked = false;

    // "running for ..." ticks here, on the server's clock (pages.running_for renders it).
    var elapsed = document.getElementById("run-elapsed");
    var elapsedTime = document.getElementById("run-elapsed-time");
    var clockOffset = Date.parse(elapsed.getAttribute("data-server-now")) - Date.now();
    var shown = {
      status: elapsed.getAttribute("data-status"),
      startedAt: elapsed.getAttribute("data-started-at") || null,
      durationMs: elapsed.getAttribute("data-duration-ms") === "" ? null : 0,
    };
    function showElapsed() {
      var running = shown.status === "Running" && shown.durationMs == null && !!shown.startedAt;
      elapsed.hidden = !running;
      if (running) {
        elapsedTime.textContent = formatElapsed(
          Date.now() + (clockOffset || 0) - Date.parse(shown.startedAt)
        );
      }
    }
    setInterval(showElapsed, 1000);

    function minLevel() {
      return Number(levelSelect.value) || 0;
    }

    function applyLevel(line) {
      line.hidden = LEVELS.indexOf(line.getAttribute("data-level")) < minLevel();
    }

    function scrollToEnd() {
      if (!follow.checked) return;
      programmaticScroll = true;
      container.scrollTop = container.scrollHeight;
    }

    container.addEventListener("scroll", function () {
      if (programmaticScroll) {
        programmaticScroll = false;
        return;
      }
      var atEnd = container.scrollHeight - container.scrollTop - container.clientHeight < 24;
      follow.checked = atEnd; // scrolling up pauses follow; back at the end resumes it
    });
    follow.addEventListener("change", scrollToEnd);
    levelSelect.addEventListener("change", function () {
      container.querySelectorAll("[data-log-id]").forEach(applyLevel);
      scrollToEnd();
    });

    function newLine(line) {
      var node = el("div", "log-line level-" + slug(line.level));
      node.id = "log-" + line.id;
      node.setAttribute("data-log-id", line.id);
      node.setAttribute("data-cursor", line.cursor);
      node.setAttribute("data-level", line.level);
      var link = el("a", "log-time", (line.timestamp || "").slice(11, 23));
      link.href = "#log-" + line.id;
      link.title = "Link to this line";
      node.appendChild(link);
      node.appendChild(document.createTextNode(" "));
      node.appendChild(el("span", "log-level", line.level));
      node.appendChild(document.createTextNode(" "));
      node.appendChild(el("span", "log-category", line.category || ""));
      node.appendChild(document.createTextNode(" "));
      node.appendChild(el("span", "log-message", line.message));
      if (line.exception) node.appendChild(el("pre", "log-exception", line.exception));
      applyLevel(node);
      return node;
    }

    // Lines go in cursor order, each once, whether they come from the stream or the API.
    function addLine(line) {
      if (seen.has(line.id)) return;
      seen.add(line.id);
      var node = newLine(line);
      var after = container.lastElementChild;
      while (after && compareCursors(after.getAttribute("data-cursor"), line.cursor) > 0) {
        after = after.previousElementSibling;
      }
      container.insertBefore(node, after ? after.nextElementSibling : container.firstChild);
      if (!lastCursor || compareCursors(line.cursor, lastCursor) > 0) lastCursor = line.cursor;
      count.textContent = seen.size;
      showEmpty("logs-empty", false);
    }

    function addLines(lines) {
      lines.forEach(addLine);
      if (lines.length) scrollToEnd();
    }

    // Lines from the stream are inserted once per frame, so that a run writing hundreds of
    // lines a second costs one layout per frame, not one per line.
    var queued = [];
    var flushScheduled = false;
    function flushQueued() {
      flushScheduled = false;
      var lines = queued;
      queued = [];
      addLines(lines);
    }
    function queueLine(line) {
      queued.push(line);
      if (flushScheduled) return;
      flushScheduled = true;
      if (document.hidden) setTimeout(flushQueued, 250);
      else window.requestAnimationFrame(flushQueued);
    }

    function showRun(run) {
      shown = run;
      showElapsed();
      Object.keys(run).forEach(function (key) {
        var value = run[key];
        document.querySelectorAll('[data-field="' + key + '"]').forEach(function (node) {
          var text = value === null || value === undefined ? "" : String(value);
          if (node.getAttribute("data-format") === "duration") text = formatDuration(value);
          node.textContent = text;
          if (key === "status" && node.classList.contains("status")) {
            setClassPrefix(node, "status-", value);
          }
        });
      });
      var bar = document.getElementById("run-progress");
      bar.max = run.total && run.total > 0 ? run.total : 100;
      bar.value = run.progress || 0;
      document.getElementById("run-progress-text").textContent =
        run.total && run.total > 0 ? run.progress + "/" + run.total : (run.progress || 0) + "%";
      document.getElementById("run-error").hidden = !(run.errorMessage || run.stackTrace);
    }

    function fetchLogs() {
      var query = "limit=1000" + (lastCursor ? "&after=" + encodeURIComponent(lastCursor) : "");
      return api("runs/" + encodeURIComponent(runId) + "/logs?" + query).then(function (data) {
        addLines(data.logs);
        if (!data.complete && data.logs.length) return fetchLogs();
        return undefined;
      });
    }

    scrollToEnd();
    return {
      params: function () {
        return [
          ["run", runId],
          ["topics", ""],
          ["logs_after", lastCursor],
        ];
      },
      events: {
        RunDetailUpdated: showRun,
        LogAdded: queueLine,
      },
      // After a resync the stream is reopened from the last line this page holds.
      reopenOnResync: true,
      refresh: function () {
        return Promise.all([
          api("runs/" + encodeURIComponent(runId)).then(showRun),
          fetchLogs(),
        ]);
      },
    };
  }

  function reloadingPage(topics, refresh) {
    var soon = debounce(function () {
      refresh().catch(function () {});
    }, 1000);
    var events = {};
    return {
      params: function () {
        return [["topics", topics]];
      },
      events: events,
      soon: soon,
      refresh: refresh,
    };
  }

  function jobsPage() {
    function refresh() {
      return api("jobs").then(function (data) {
        var tbody = document.getElementById("jobs-body");
        data.jobs.forEach(function (job) {
          var row = findRow(tbody, "data-job-type-id", job.jobTypeId);
          if (!row) return;
          var cells = row.children;
          var last = cells[7].querySelector("time");
          last.textContent = formatTime(job.lastRunAt);
          last.setAttribute("datetime", job.lastRunAt || "");
          cells[8].replaceChildren();
          if (job.lastRunStatus) {
            cells[8].appendChild(
              el("span", "status status-" + slug(job.lastRunStatus), job.lastRunStatus)
            );
          }
          var next = cells[9].querySelector("time");
          next.textContent = formatTime(job.nextRunAt);
          next.setAttribute("datetime", job.nextRunAt || "");
        });
      });
    }
    var page = reloadingPage("runs", refresh);
    page.events.JobRunUpdated = page.soon;
    return page;
  }

  function workersPage() {
    var page = reloadingPage("workers", function () {
      return api("workers").then(function (data) {
        replaceWorkers(data.workers);
      });
    });
    page.events.WorkerUpdated = upsertWorker;
    return page;
  }

  function deadLetterPage() {
    var lastCount = null;
    var page = reloadingPage("stats", function () {
      // New entries appear on the first page; paging keeps the rows it rendered.
      return api("stats").then(function (stats) {
        lastCount = stats.deadLetterCount;
      });
    });
    page.events.StatsUpdated = function (stats) {
      if (lastCount !== null && stats.deadLetterCount !== lastCount) {
        var notice = document.getElementById("dead-letter-changed");
        if (notice) notice.hidden = false;
      }
      lastCount = stats.deadLetterCount;
    };
    return page;
  }

  var PAGES = {
    overview: overviewPage,
    runs: runsPage,
    run: runPage,
    jobs: jobsPage,
    workers: workersPage,
    "dead-letter": deadLetterPage,
  };

  // -- the stream, its reconnects and the polling fallback -------------------------------

  function LiveConnection(page) {
    this.page = page;
    this.source = null;
    this.failures = 0;
    this.openedAt = 0;
    this.polling = false;
    this.pollTimer = null;
    this.everOpened = false;
    this.stale = false; // something may have been missed: reload from the API once open
  }

  LiveConnection.prototype.url = function () {
    var query = new URLSearchParams();
    this.page.params().forEach(function (pair) {
      if (pair[1] !== null && pair[1] !== undefined) query.append(pair[0], pair[1]);
    });
    var text = query.toString();
    return base + "/events" + (text ? "?" + text : "");
  };

  LiveConnection.prototype.close = function () {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  };

  LiveConnection.prototype.open = function () {
    var self = this;
    this.close();
    var source = new EventSource(this.url());
    this.source = source;
    if (!this.polling) setState(this.everOpened ? "reconnecting" : "connecting");

    source.onopen = function () {
      if (self.source !== source) return;
      self.openedAt = Date.now();
      self.stopPolling();
      setState("connected");
      if (self.everOpened || self.stale) self.catchUp();
      self.everOpened = true;
    };
    source.onerror = function () {
      if (self.source !== source) return;
      if (self.polling) {
        self.close(); // a probe that failed: keep polling
        return;
      }
      if (self.openedAt && Date.now() - self.openedAt > STABLE_MS) self.failures = 0;
      self.openedAt = 0;
      self.failures += 1;
      self.stale = true;
      if (source.readyState === EventSource.CLOSED || self.failures >= MAX_FAILURES) {
        // Refused (an HTTP error such as 502/503/404) or failing again and again.
        self.close();
        self.startPolling();
      } else {
        setState("reconnecting"); // the browser retries, sending Last-Event-ID
      }
    };
    Object.keys(this.page.events).forEach(function (name) {
      source.addEventListener(name, function (event) {
        if (self.source !== source) return;
        self.page.events[name](JSON.parse(event.data));
      });
    });
    source.addEventListener("auth_expired", function () {
      if (self.source === source) signedOut();
    });
    source.addEventListener("resync", function () {
      if (self.source !== source) return;
      if (self.page.reopenOnResync) {
        // A fresh subscription from the last line held: nothing lost, nothing twice.
        self.stale = true;
        self.open();
      } else {
        self.catchUp();
      }
    });
  };

  LiveConnection.prototype.catchUp = function () {
    var self = this;
    this.stale = false;
    this.page.refresh().catch(function () {
      self.stale = true;
    });
  };

  LiveConnection.prototype.startPolling = function () {
    if (this.polling) return;
    this.polling = true;
    setState("polling");
    this.tick(0);
  };

  LiveConnection.prototype.tick = function (delay) {
    var self = this;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(function () {
      if (!self.polling) return;
      self.page
        .refresh()
        .then(
          function () {
            if (self.polling) setState("polling");
          },
          function () {
            if (self.polling) setState("disconnected");
          }
        )
        .then(function () {
          if (!self.polling) return;
          self.open(); // probe: back to the stream as soon as it answers
          self.tick(pollInterval);
        });
    }, delay);
  };

  LiveConnection.prototype.stopPolling = function () {
    if (!this.polling) return;
    this.polling = false;
    this.failures = 0;
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  };

  // -- controls that need JavaScript -----------------------------------------------------

  function setupTheme() {
    var select = document.getElementById("theme-select");
    if (!select) return;
    select.value = document.documentElement.getAttribute("data-theme") || "auto";
    select.parentElement.hidden = false;
    select.addEventListener("change", function () {
      document.documentElement.setAttribute("data-theme", select.value);
      try {
        if (select.value === "auto") window.localStorage.removeItem("zapjobs-theme");
        else window.localStorage.setItem("zapjobs-theme", select.value);
      } catch (error) {
        // Storage disabled: the choice lasts for this page.
      }
    });
  }

  function start() {
    setupTheme();
    document.querySelectorAll(".js-only").forEach(function (node) {
      node.hidden = false;
    });
    var factory = PAGES[pageName];
    if (!factory || typeof EventSource === "undefined") return;
    var connection = new LiveConnection(factory());
    window.zapjobsLive = connection; // for people debugging in the console
    connection.open();
    document.addEventListener("zapjobs:signed-out", function () {
      connection.stopPolling();
      connection.close();
    });
    window.addEventListener("pagehide", function () {
      connection.stopPolling();
      connection.close();
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) {
        connection.stale = true;
        connection.open();
      }
    });
  }

  start();
})();
