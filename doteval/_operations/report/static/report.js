/* doteval report: the sample table, drawn from the page's JSON data islands.
 *
 * Every value from the store is put on the page with textContent (or as a
 * text node), never parsed as markup. Only the rows in view are in the
 * document (a virtual table), so a hundred thousand rows scroll and filter
 * without freezing. Nothing is fetched: large row data arrives gzip-compressed
 * in the page itself and is unpacked with DecompressionStream.
 */
(function () {
  "use strict";

  var ROW = 30; // px, the height of a table row (--row in the stylesheet)
  var OVERSCAN = 8;
  var PRINT_ROWS = 300;
  var CELL_TOKENS = 160; // words compared in a table cell; the drawer compares all

  var summary = JSON.parse(document.getElementById("report-data").textContent);

  // -- small helpers ---------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      var a = Math.abs(v);
      return a >= 1e-3 || v === 0 ? String(Number(v.toPrecision(4))) : v.toExponential(2);
    }
    if (typeof v === "string") return v;
    return JSON.stringify(v);
  }

  function longText(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "string") return v;
    return JSON.stringify(v, null, 2);
  }

  function oneLine(v) {
    return longText(v).replace(/\s+/g, " ");
  }

  function duration(s) {
    if (s === null || s === undefined) return "-";
    if (s < 0.001) return "under 1 ms";
    if (s < 1) return Math.round(s * 1000) + " ms";
    return fmt(s) + " s";
  }

  function count(n) {
    return n.toLocaleString("en-US");
  }

  function valueCell(div, v) {
    div.textContent = fmt(v);
    if (v === true) div.className = "v-true";
    else if (v === false) div.className = "v-false";
  }

  function sortKey(v) {
    if (v === null || v === undefined) return -Infinity;
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "number") return v;
    return oneLine(v).toLowerCase();
  }

  function compareKeys(a, b) {
    var ta = typeof a, tb = typeof b;
    if (ta !== tb) return ta === "number" ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function section(body, title) {
    body.appendChild(el("h4", null, title));
  }

  function pre(body, text, cls) {
    var p = el("pre", cls || null);
    p.textContent = text;
    body.appendChild(p);
    return p;
  }

  function kvTable(body, pairs) {
    var t = el("table", "grid");
    var tb = el("tbody");
    pairs.forEach(function (kv) {
      var tr = el("tr");
      tr.appendChild(el("td", null, kv[0]));
      var td = el("td", "wrap");
      if (kv[2]) kv[2](td, kv[1]);
      else td.textContent = kv[1];
      tr.appendChild(td);
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    body.appendChild(t);
  }

  function itemPairs(columns, values) {
    return columns.map(function (c, k) {
      return [c, longText(values ? values[k] : null)];
    });
  }

  function itemLine(values) {
    return (values || []).map(oneLine).join(" · ");
  }

  // -- word-level diff --------------------------------------------------------

  var TOKEN = /\s+|[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;

  function tokens(s) {
    return s.match(TOKEN) || [];
  }

  // Returns [partsA, partsB]: lists of [text, changed].
  function wordDiff(a, b, cap) {
    var A = tokens(a), B = tokens(b);
    if (cap) {
      A = A.slice(0, cap);
      B = B.slice(0, cap);
    }
    var p = 0;
    while (p < A.length && p < B.length && A[p] === B[p]) p++;
    var s = 0;
    while (s < A.length - p && s < B.length - p && A[A.length - 1 - s] === B[B.length - 1 - s]) s++;
    var am = A.slice(p, A.length - s), bm = B.slice(p, B.length - s);
    var keepA = new Uint8Array(am.length), keepB = new Uint8Array(bm.length);
    var n = am.length, m = bm.length;
    if (n && m && n * m <= 2000000) {
      var w = m + 1;
      var L = new Uint16Array((n + 1) * w);
      for (var i = n - 1; i >= 0; i--) {
        for (var j = m - 1; j >= 0; j--) {
          L[i * w + j] = am[i] === bm[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
        }
      }
      var x = 0, y = 0;
      while (x < n && y < m) {
        if (am[x] === bm[y]) {
          keepA[x++] = 1;
          keepB[y++] = 1;
        } else if (L[(x + 1) * w + y] >= L[x * w + y + 1]) x++;
        else y++;
      }
    }
    function parts(all, middle, keep) {
      var out = [];
      function push(t, changed) {
        var last = out[out.length - 1];
        if (last && last[1] === changed) last[0] += t;
        else out.push([t, changed]);
      }
      for (var k = 0; k < p; k++) push(all[k], false);
      for (k = 0; k < middle.length; k++) {
        var changed = !keep[k];
        // Spaces are marked only between two marked words, so a changed phrase reads as one.
        if (changed && /^\s+$/.test(middle[k])) changed = k > 0 && !keep[k - 1] && k + 1 < middle.length && !keep[k + 1];
        push(middle[k], changed);
      }
      for (k = all.length - s; k < all.length; k++) push(all[k], false);
      return out;
    }
    return [parts(A, am, keepA), parts(B, bm, keepB)];
  }

  function renderParts(target, parts, cls) {
    target.textContent = "";
    parts.forEach(function (part) {
      if (part[1]) target.appendChild(el("span", cls, part[0]));
      else target.appendChild(document.createTextNode(part[0]));
    });
  }

  // -- reading the rows island ------------------------------------------------

  function readRows() {
    var doc = JSON.parse($("report-rows").textContent);
    if (doc.encoding === "json") return Promise.resolve(doc.data);
    if (doc.encoding !== "gzip+base64") return Promise.reject(new Error("unknown row encoding " + doc.encoding));
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser cannot unpack the rows (no DecompressionStream); use a current browser"));
    }
    var bin = atob(doc.data);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }

  // -- the experiment's rows --------------------------------------------------

  function experimentView(R) {
    var evs = summary.evaluations;
    var label = summary.header.label;
    var STATUS = ["ok", "failed", "error"];
    var several = evs.length > 1;
    var anyError = R.status.some(function (s) { return s === 2; });
    var cols = [];
    cols.push({ title: "Key", width: "8.5em", key: function (i) { return R.key[i]; },
      cell: function (d, i) { d.className = "mono"; d.textContent = R.key[i].slice(0, 10); } });
    if (several) {
      cols.push({ title: "Evaluation", width: "minmax(6em, 1fr)", key: function (i) { return R.ev[i]; },
        cell: function (d, i) { d.textContent = evs[R.ev[i]].name; } });
    }
    cols.push({ title: "Status", width: "5.5em", key: function (i) { return R.status[i]; },
      cell: function (d, i) { d.appendChild(el("span", "chip " + STATUS[R.status[i]], STATUS[R.status[i]])); } });
    cols.push({ title: "Item", width: "minmax(0, 2fr)", key: function (i) { return itemLine(R.item[i]).toLowerCase(); },
      cell: function (d, i) { d.textContent = itemLine(R.item[i]); } });
    cols.push({ title: "Response", width: "minmax(0, 2fr)", key: function (i) { return sortKey(R.response[i]); },
      cell: function (d, i) { d.textContent = oneLine(R.response[i]); } });
    R.score_names.slice(0, 3).forEach(function (name, k) {
      cols.push({ title: name, width: "minmax(5.5em, 0.6fr)", numeric: true,
        key: function (i) { return sortKey(R.scores[k][i]); },
        cell: function (d, i) { valueCell(d, R.scores[k][i]); } });
    });
    if (anyError) {
      cols.push({ title: "Error", width: "minmax(0, 1.5fr)", key: function (i) { return errorText(i).toLowerCase(); },
        cell: function (d, i) { d.textContent = errorText(i); if (R.status[i] === 2) d.className = "bad"; } });
    }

    function errorText(i) {
      var t = R.error_type[i];
      return t === null || t === undefined ? "" : R.error_types[t] + ": " + oneLine(R.error_message[i]);
    }

    return {
      n: R.n,
      columns: cols,
      evaluationNames: evs.map(function (e) { return e.name; }),
      haystack: function (i) {
        return [R.key[i], itemLine(R.item[i]), oneLine(R.prompt[i]).slice(0, 20000), oneLine(R.response[i]).slice(0, 20000),
          errorText(i).slice(0, 2000), several ? evs[R.ev[i]].name : ""].join("\n").toLowerCase();
      },
      accept: function (i, f) {
        if (f.ev !== null && R.ev[i] !== f.ev) return false;
        var wantErr = f.checks["f-errors"], wantFail = f.checks["f-failed"];
        if (wantErr || wantFail) {
          var s = R.status[i];
          if (!((wantErr && s === 2) || (wantFail && s === 1))) return false;
        }
        return true;
      },
      title: function (i) { return "Sample " + R.key[i] + " · " + STATUS[R.status[i]]; },
      detail: function (body, i) {
        var ev = evs[R.ev[i]];
        kvTable(body, [
          ["Evaluation", ev.node_id],
          ["Status", STATUS[R.status[i]], function (td, v) { td.appendChild(el("span", "chip " + v, v)); }],
          ["Duration", duration(R.duration[i])]
        ]);
        section(body, "Item");
        kvTable(body, itemPairs(ev.columns, R.item[i]));
        section(body, "Prompt");
        pre(body, longText(R.prompt[i]) || "(none)");
        section(body, "Response");
        pre(body, longText(R.response[i]) || "(none)");
        var scorePairs = [];
        R.score_names.forEach(function (name, k) {
          var v = R.scores[k][i];
          if (v !== null && v !== undefined) scorePairs.push([name, v, valueCell]);
        });
        section(body, "Scores");
        if (scorePairs.length) kvTable(body, scorePairs);
        else body.appendChild(el("p", "note", R.status[i] === 2 ? "An errored sample has no scores." : "No scores."));
        if (R.status[i] === 2) {
          section(body, "Error");
          pre(body, errorText(i), "error");
          if (R.traceback[i]) {
            section(body, "Traceback");
            pre(body, R.traceback[i]);
          }
        }
        if (R.metadata[i]) {
          section(body, "Metadata");
          pre(body, longText(R.metadata[i]));
        }
        section(body, "In a terminal");
        body.appendChild(el("div", "cmd", "doteval show " + label + " --sample " + R.key[i]));
      }
    };
  }

  // -- the diff's changed samples -----------------------------------------------

  function diffView(R) {
    var names = summary.evaluation_names;
    var columns = summary.evaluation_columns;
    var several = names.length > 1;
    var DIR = { "-1": "regressed", "0": "changed", "1": "improved" };
    var cache = new Map();

    function sideText(side, i) {
      var err = R[side + "_error"][i];
      return err ? "Error: " + err : longText(R[side + "_response"][i]);
    }

    function cellDiff(i) {
      var hit = cache.get(i);
      if (hit) return hit;
      hit = wordDiff(oneLine(sideText("a", i)), oneLine(sideText("b", i)), CELL_TOKENS);
      if (cache.size > 2000) cache.clear();
      cache.set(i, hit);
      return hit;
    }

    var cols = [];
    cols.push({ title: "Change", width: "7.5em", key: function (i) { return R.direction[i]; },
      cell: function (d, i) { var t = DIR[R.direction[i]]; d.appendChild(el("span", "chip " + t, t)); } });
    if (several) {
      cols.push({ title: "Evaluation", width: "minmax(6em, 1fr)", key: function (i) { return R.ev[i]; },
        cell: function (d, i) { d.textContent = names[R.ev[i]]; } });
    }
    cols.push({ title: "Item", width: "minmax(0, 1.5fr)", key: function (i) { return itemLine(R.item[i]).toLowerCase(); },
      cell: function (d, i) { d.textContent = itemLine(R.item[i]); } });
    cols.push({ title: "A response", width: "minmax(0, 2fr)", key: function (i) { return sideText("a", i).toLowerCase(); },
      cell: function (d, i) { renderParts(d, cellDiff(i)[0], "d-del"); if (R.a_error[i]) d.classList.add("bad"); } });
    cols.push({ title: "B response", width: "minmax(0, 2fr)", key: function (i) { return sideText("b", i).toLowerCase(); },
      cell: function (d, i) { renderParts(d, cellDiff(i)[1], "d-ins"); if (R.b_error[i]) d.classList.add("bad"); } });
    R.score_names.slice(0, 2).forEach(function (name, k) {
      cols.push({ title: name + " A → B", width: "minmax(8em, 0.8fr)",
        key: function (i) { return sortKey(R.b_scores[k][i]); },
        cell: function (d, i) {
          var a = el("span"), b = el("span");
          valueCell(a, R.a_scores[k][i]);
          valueCell(b, R.b_scores[k][i]);
          d.append(a, el("span", "arrow", "→"), b);
        } });
    });

    return {
      n: R.n,
      columns: cols,
      evaluationNames: names,
      haystack: function (i) {
        return [R.a_key[i], R.b_key[i], itemLine(R.item[i]), sideText("a", i).slice(0, 20000), sideText("b", i).slice(0, 20000),
          DIR[R.direction[i]], several ? names[R.ev[i]] : ""].join("\n").toLowerCase();
      },
      accept: function (i, f) {
        if (f.ev !== null && R.ev[i] !== f.ev) return false;
        if (f.checks["f-regressed"] && R.direction[i] !== -1) return false;
        return true;
      },
      title: function (i) { return DIR[R.direction[i]] + " · " + itemLine(R.item[i]); },
      detail: function (body, i) {
        kvTable(body, [
          ["Evaluation", summary.diff.evaluations[R.ev[i]].evaluation],
          ["Change", DIR[R.direction[i]], function (td, v) { td.appendChild(el("span", "chip " + v, v)); }]
        ]);
        section(body, "Item");
        kvTable(body, itemPairs(columns[R.ev[i]], R.item[i]));
        var parts = wordDiff(sideText("a", i), sideText("b", i), 0);
        var grid = el("div", "pair");
        [["a", "A", summary.a, parts[0], "d-del"], ["b", "B", summary.b, parts[1], "d-ins"]].forEach(function (s) {
          var col = el("div");
          var h = el("h4");
          h.appendChild(el("span", "badge side-" + s[0], s[1]));
          h.appendChild(document.createTextNode(" " + s[2].label + " response"));
          col.appendChild(h);
          var p = el("pre", R[s[0] + "_error"][i] ? "error" : null);
          renderParts(p, s[3], s[4]);
          col.appendChild(p);
          var pairs = [];
          R.score_names.forEach(function (name, k) {
            var v = R[s[0] + "_scores"][k][i];
            if (v !== null && v !== undefined) pairs.push([name, v, valueCell]);
          });
          if (pairs.length) kvTable(col, pairs);
          col.appendChild(el("div", "cmd", "doteval show " + s[2].label + " --sample " + R[s[0] + "_key"][i]));
          grid.appendChild(col);
        });
        body.appendChild(grid);
      }
    };
  }

  // -- the virtual table --------------------------------------------------------

  function Table(container, view, onOpen) {
    var self = this;
    this.view = view;
    this.order = new Int32Array(0);
    this.selected = -1;
    container.textContent = "";
    container.removeAttribute("data-loading");
    var inner = el("div", "vt-inner");
    inner.setAttribute("role", "table");
    var head = el("div", "vt-head");
    head.setAttribute("role", "row");
    var body = el("div", "vt-body");
    body.tabIndex = 0;
    body.setAttribute("role", "rowgroup");
    body.setAttribute("aria-label", "rows; arrow keys move, Enter opens");
    var spacer = el("div", "vt-spacer");
    var rows = el("div", "vt-rows");
    body.append(spacer, rows);
    inner.append(head, body);
    container.appendChild(inner);
    var template = view.columns.map(function (c) { return c.width; }).join(" ");
    head.style.gridTemplateColumns = template;
    this.headButtons = view.columns.map(function (c, k) {
      var b = el("button", null, c.title);
      b.type = "button";
      b.setAttribute("role", "columnheader");
      b.title = "Sort by " + c.title;
      b.addEventListener("click", function () { self.onSort(k); });
      head.appendChild(b);
      return b;
    });
    this.body = body;
    this.spacer = spacer;
    this.rows = rows;
    this.template = template;
    var pending = false;
    body.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; self.draw(); });
    });
    window.addEventListener("resize", function () { self.draw(); });
    rows.addEventListener("click", function (e) {
      var r = e.target.closest(".vt-row");
      if (r) onOpen(Number(r.dataset.pos));
    });
    body.addEventListener("keydown", function (e) {
      var n = self.order.length;
      if (!n) return;
      var page = Math.max(1, Math.floor(body.clientHeight / ROW) - 1);
      var pos = self.selected;
      if (e.key === "ArrowDown") pos = Math.min(n - 1, pos + 1);
      else if (e.key === "ArrowUp") pos = Math.max(0, pos - 1);
      else if (e.key === "PageDown") pos = Math.min(n - 1, pos + page);
      else if (e.key === "PageUp") pos = Math.max(0, pos - page);
      else if (e.key === "Home") pos = 0;
      else if (e.key === "End") pos = n - 1;
      else if (e.key === "Enter" && pos >= 0) { onOpen(pos); e.preventDefault(); return; }
      else return;
      e.preventDefault();
      self.select(pos);
    });
  }

  Table.prototype.setOrder = function (order) {
    this.order = order;
    this.selected = -1;
    this.spacer.style.height = order.length * ROW + "px";
    this.body.style.height = Math.max(order.length, 3) * ROW + "px"; // at most max-height (stylesheet)
    this.body.scrollTop = 0;
    this.draw();
  };

  Table.prototype.select = function (pos) {
    this.selected = pos;
    var top = pos * ROW, b = this.body;
    if (top < b.scrollTop) b.scrollTop = top;
    else if (top + ROW > b.scrollTop + b.clientHeight) b.scrollTop = top + ROW - b.clientHeight;
    this.draw();
  };

  Table.prototype.draw = function () {
    var order = this.order, view = this.view, b = this.body;
    var height = b.clientHeight || 600;
    var first = Math.max(0, Math.floor(b.scrollTop / ROW) - OVERSCAN);
    var last = Math.min(order.length, Math.ceil((b.scrollTop + height) / ROW) + OVERSCAN);
    var frag = document.createDocumentFragment();
    if (!order.length) frag.appendChild(el("div", "vt-empty", "No sample matches."));
    for (var pos = first; pos < last; pos++) {
      var i = order[pos];
      var row = el("div", "vt-row" + (pos === this.selected ? " selected" : ""));
      row.setAttribute("role", "row");
      row.dataset.pos = String(pos);
      row.style.gridTemplateColumns = this.template;
      for (var k = 0; k < view.columns.length; k++) {
        var cell = el("div");
        cell.setAttribute("role", "cell");
        view.columns[k].cell(cell, i);
        if (!cell.title) cell.title = cell.textContent.slice(0, 500);
        row.appendChild(cell);
      }
      frag.appendChild(row);
    }
    this.rows.style.transform = "translateY(" + first * ROW + "px)";
    this.rows.textContent = "";
    this.rows.appendChild(frag);
  };

  // -- the page ---------------------------------------------------------------------

  function setup(view) {
    var q = $("q"), evSelect = $("ev-filter"), countOut = $("row-count");
    var checks = Array.prototype.slice.call(document.querySelectorAll(".controls input[type=checkbox]"));
    var drawer = $("detail"), drawerBody = $("detail-body"), drawerTitle = $("detail-title");
    var hay = null;
    var sort = { col: -1, dir: 1 };
    var table = new Table($("table"), view, open);
    table.onSort = function (k) {
      if (sort.col === k) {
        if (sort.dir === 1) sort.dir = -1;
        else sort = { col: -1, dir: 1 };
      } else sort = { col: k, dir: 1 };
      table.headButtons.forEach(function (b, j) {
        if (j === sort.col) b.setAttribute("aria-sort", sort.dir === 1 ? "ascending" : "descending");
        else b.removeAttribute("aria-sort");
      });
      apply();
    };

    if (view.evaluationNames.length > 1) {
      view.evaluationNames.forEach(function (name, k) {
        var o = el("option", null, name);
        o.value = String(k);
        evSelect.appendChild(o);
      });
    } else {
      evSelect.parentElement.hidden = true;
    }

    function apply() {
      var terms = q.value.toLowerCase().split(/\s+/).filter(Boolean);
      if (terms.length && !hay) {
        hay = new Array(view.n);
        for (var h = 0; h < view.n; h++) hay[h] = view.haystack(h);
      }
      var f = { ev: evSelect.value === "" ? null : Number(evSelect.value), checks: {} };
      checks.forEach(function (c) { f.checks[c.id] = c.checked; });
      var out = new Int32Array(view.n), m = 0;
      outer: for (var i = 0; i < view.n; i++) {
        if (!view.accept(i, f)) continue;
        for (var t = 0; t < terms.length; t++) if (hay[i].indexOf(terms[t]) < 0) continue outer;
        out[m++] = i;
      }
      var order = out.subarray(0, m);
      if (sort.col >= 0) {
        var key = view.columns[sort.col].key, keys = new Array(view.n), dir = sort.dir;
        for (var j = 0; j < m; j++) keys[order[j]] = key(order[j]);
        order = Int32Array.from(order).sort(function (a, b) { return dir * compareKeys(keys[a], keys[b]) || a - b; });
      }
      table.setOrder(order);
      countOut.textContent = m === view.n ? count(view.n) + " rows" : count(m) + " of " + count(view.n) + " rows";
      countOut.dataset.shown = String(m);
      drawer.hidden = true; // its row may be filtered out; the focus stays where the person is typing
    }

    var timer = 0;
    q.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(apply, view.n > 20000 ? 200 : 60);
    });
    q.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { clearTimeout(timer); apply(); }
    });
    evSelect.addEventListener("change", apply);
    checks.forEach(function (c) { c.addEventListener("change", apply); });

    function open(pos) {
      var i = table.order[pos];
      if (i === undefined) return;
      table.select(pos);
      drawerTitle.textContent = view.title(i);
      drawerBody.textContent = "";
      view.detail(drawerBody, i);
      drawer.hidden = false;
      drawer.dataset.index = String(i);
      drawerBody.scrollTop = 0;
      drawer.focus();
    }

    function close() {
      drawer.hidden = true;
      table.body.focus();
    }

    $("detail-close").addEventListener("click", close);
    $("detail-prev").addEventListener("click", function () { if (table.selected > 0) open(table.selected - 1); });
    $("detail-next").addEventListener("click", function () {
      if (table.selected < table.order.length - 1) open(table.selected + 1);
    });
    drawer.addEventListener("keydown", function (e) {
      if (e.key === "j" || e.key === "ArrowDown" && e.altKey) $("detail-next").click();
      else if (e.key === "k" || e.key === "ArrowUp" && e.altKey) $("detail-prev").click();
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !drawer.hidden) close();
      if (e.key === "/" && document.activeElement !== q && drawer.hidden) { e.preventDefault(); q.focus(); }
    });

    Array.prototype.forEach.call(document.querySelectorAll("button[data-error-type]"), function (b) {
      b.addEventListener("click", function () {
        q.value = b.dataset.errorType;
        var box = $("f-errors");
        if (box) box.checked = true;
        apply();
        $("samples").scrollIntoView();
      });
    });

    // Printing: the virtual table shows only what is in view, so print a plain table of the first rows;
    // folded sections are printed open.
    var folded = [];
    window.addEventListener("beforeprint", function () {
      folded = Array.prototype.filter.call(document.querySelectorAll("details"), function (d) { return !d.open; });
      folded.forEach(function (d) { d.open = true; });
      var old = $("print-rows");
      if (old) old.remove();
      var t = el("table", "grid print-rows");
      t.id = "print-rows";
      var caption = el("caption", "note",
        table.order.length > PRINT_ROWS
          ? "The first " + count(PRINT_ROWS) + " of " + count(table.order.length) + " rows shown (filter the page to print others)."
          : count(table.order.length) + " rows.");
      t.appendChild(caption);
      var thead = el("thead"), tr = el("tr");
      view.columns.forEach(function (c) { tr.appendChild(el("th", null, c.title)); });
      thead.appendChild(tr);
      t.appendChild(thead);
      var tbody = el("tbody");
      for (var pos = 0; pos < Math.min(PRINT_ROWS, table.order.length); pos++) {
        var row = el("tr");
        view.columns.forEach(function (c) {
          var d = el("td");
          c.cell(d, table.order[pos]);
          row.appendChild(d);
        });
        tbody.appendChild(row);
      }
      t.appendChild(tbody);
      $("table").after(t);
    });
    window.addEventListener("afterprint", function () {
      folded.forEach(function (d) { d.open = false; });
      folded = [];
      var old = $("print-rows");
      if (old) old.remove();
    });

    apply();
    document.body.dataset.ready = "1";
  }

  function fail(err) {
    var box = $("table");
    box.textContent = "";
    box.appendChild(el("p", "note bad", "The rows could not be read: " + (err && err.message ? err.message : String(err))));
    document.body.dataset.ready = "error";
  }

  readRows()
    .then(function (rows) {
      setup(summary.kind === "diff" ? diffView(rows) : experimentView(rows));
    })
    .catch(fail);
})();
