// precdiff HTML report: hover values, table sort / filter / pages. No network, no library.
// Charts are SVG written by Python; this script only reads their data-* attributes.
(function () {
  "use strict";
  var body = document.body;
  window.addEventListener("error", function (e) { body.setAttribute("data-jserror", String(e.message)); });
  var tip = document.getElementById("tip");
  var parsed = new WeakMap();

  function data(el, name) {
    // JSON in a data-* attribute, parsed on first use (big heatmaps are not parsed until hovered).
    var cache = parsed.get(el) || {};
    if (!(name in cache)) { cache[name] = JSON.parse(el.getAttribute(name) || "null"); parsed.set(el, cache); }
    return cache[name];
  }
  function show(html, ev) {
    tip.innerHTML = html;
    tip.style.display = "block";
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 4) x = ev.clientX - w - 14;
    if (y + h > window.innerHeight - 4) y = ev.clientY - h - 14;
    tip.style.left = Math.max(0, x) + "px";
    tip.style.top = Math.max(0, y) + "px";
  }
  function hide() { tip.style.display = "none"; }
  function text(s) { var d = document.createElement("span"); d.textContent = String(s); return d.innerHTML; }
  function value(v) { return v === null || v === undefined ? "–" : text(v); }
  function svgPoint(svg, ev) {
    var p = svg.createSVGPoint(); p.x = ev.clientX; p.y = ev.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }

  // Line charts: the nearest x position, every series' exact value there, and a cursor line.
  document.querySelectorAll("svg.chart.line").forEach(function (svg) {
    var n = +svg.dataset.n, x0 = +svg.dataset.x0, dx = +svg.dataset.dx;
    var labels = data(svg.parentNode, "data-labels") || [];
    var cursor = document.createElementNS("http://www.w3.org/2000/svg", "line");
    cursor.setAttribute("class", "cursor");
    cursor.setAttribute("y1", svg.dataset.top); cursor.setAttribute("y2", svg.dataset.bottom);
    svg.appendChild(cursor);
    svg.addEventListener("mousemove", function (ev) {
      var p = svgPoint(svg, ev);
      var i = n > 1 ? Math.round((p.x - x0) / dx) : 0;
      if (i < 0 || i >= n) { hide(); cursor.style.display = "none"; return; }
      cursor.setAttribute("x1", x0 + dx * i); cursor.setAttribute("x2", x0 + dx * i);
      cursor.style.display = "inline";
      var rows = ["<b>" + text(labels[i] === undefined ? i : labels[i]) + "</b>"];
      svg.querySelectorAll("g.series").forEach(function (g) {
        rows.push('<span class="key ' + g.getAttribute("class").split(" ")[1] + '">' + text(g.dataset.name) +
          "</span> " + value((data(g, "data-values") || [])[i]));
      });
      show(rows.join("<br>"), ev);
    });
    svg.addEventListener("mouseleave", function () { hide(); cursor.style.display = "none"; });
  });

  // Heatmaps: the cell under the pointer, its row, column and exact value.
  document.querySelectorAll("svg.chart.heatmap").forEach(function (svg) {
    var d = svg.dataset;
    svg.addEventListener("mousemove", function (ev) {
      var p = svgPoint(svg, ev);
      var c = Math.floor((p.x - d.x0) / d.cw), r = Math.floor((p.y - d.y0) / d.ch);
      var rows = data(svg, "data-rows"), cols = data(svg, "data-cols"), grid = data(svg, "data-values");
      if (r < 0 || c < 0 || r >= rows.length || c >= cols.length) { hide(); return; }
      show("<b>" + text(rows[r]) + "</b> · " + text(cols[c]) + "<br>" + text(d.title) + " " + value(grid[r][c]), ev);
    });
    svg.addEventListener("mouseleave", hide);
  });

  // Anything else with an exact value or a tip (table cells, bars, tokens).
  document.addEventListener("mouseover", function (ev) {
    var el = ev.target.closest ? ev.target.closest("[data-v],[data-tip]") : null;
    if (!el || el.closest("svg.chart.line,svg.chart.heatmap")) return;
    var parts = [];
    if (el.dataset.tip) parts.push(text(el.dataset.tip));
    if (el.dataset.v !== undefined) parts.push("exact: " + text(JSON.parse(el.dataset.v)));
    show(parts.join("<br>"), ev);
  });
  document.addEventListener("mouseout", function (ev) {
    if (ev.target.closest && ev.target.closest("[data-v],[data-tip]")) hide();
  });

  // Tables: click a header to sort, type to filter, pages of data-page rows (all rows print).
  function key(td) {
    if (!td) return "";
    if (td.dataset.v !== undefined) {
      var v = JSON.parse(td.dataset.v);
      if (typeof v === "number") return v;
      return v === "-inf" ? -Infinity : Infinity; // nan and inf: the worst values sort as largest
    }
    return td.textContent;
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    if (typeof a === "number") return -1;
    if (typeof b === "number") return 1;
    return String(a).localeCompare(String(b));
  }
  document.querySelectorAll("div.tbl").forEach(function (box) {
    var tbody = box.querySelector("tbody"), pager = box.querySelector(".pager");
    var count = box.querySelector(".count"), size = +box.dataset.page;
    var all = Array.prototype.slice.call(tbody.rows), shown = all, page = 0, sortCol = -1, dir = 1;
    function draw() {
      var pages = Math.max(1, Math.ceil(shown.length / size));
      page = Math.min(page, pages - 1);
      var start = page * size, end = start + size;
      shown.forEach(function (tr, i) { tr.classList.toggle("pg-off", i < start || i >= end); });
      count.textContent = shown.length === all.length ? all.length + " rows" : shown.length + " of " + all.length + " rows";
      pager.innerHTML = "";
      if (pages < 2) return;
      [["«", 0], ["‹", page - 1], [(page + 1) + " / " + pages, -1], ["›", page + 1], ["»", pages - 1]].forEach(function (b) {
        var el = document.createElement(b[1] < 0 ? "span" : "button");
        el.textContent = b[0];
        if (b[1] >= 0) {
          el.disabled = b[1] === page || b[1] < 0 || b[1] >= pages;
          el.addEventListener("click", function () { page = b[1]; draw(); });
        }
        pager.appendChild(el);
      });
    }
    box.querySelector(".filter").addEventListener("input", function (ev) {
      var q = ev.target.value, test;
      var m = /^\/(.*)\/$/.exec(q);
      if (m) {
        try { var re = new RegExp(m[1], "i"); test = function (s) { return re.test(s); }; }
        catch (e) { test = function () { return true; }; }
      } else {
        q = q.toLowerCase(); test = function (s) { return s.toLowerCase().indexOf(q) >= 0; };
      }
      shown = all.filter(function (tr) { var ok = test(tr.textContent); tr.classList.toggle("f-off", !ok); return ok; });
      page = 0; draw();
    });
    box.querySelectorAll("th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var numeric = all.some(function (tr) { return typeof key(tr.cells[col]) === "number"; });
        dir = sortCol === col ? -dir : (numeric ? -1 : 1);
        sortCol = col;
        box.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-sort"); });
        th.setAttribute("data-sort", dir > 0 ? "asc" : "desc");
        var order = all.map(function (tr, i) { return [key(tr.cells[col]), i, tr]; });
        order.sort(function (a, b) {
          // Cells without a number (–) go last in either direction.
          var an = typeof a[0] === "number", bn = typeof b[0] === "number";
          if (an !== bn && numeric) return an ? -1 : 1;
          return dir * compare(a[0], b[0]) || a[1] - b[1];
        });
        all = order.map(function (o) { return o[2]; });
        var frag = document.createDocumentFragment();
        all.forEach(function (tr) { frag.appendChild(tr); });
        tbody.appendChild(frag);
        shown = all.filter(function (tr) { return !tr.classList.contains("f-off"); });
        draw();
      });
    });
    draw();
  });
  // Printing shows every row (CSS) and every folded section.
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
  body.setAttribute("data-ready", "1");
})();
