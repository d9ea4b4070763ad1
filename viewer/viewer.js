// LossLens static viewer: explorer, editor tabs, metric panel, quick open, over window.LOSSLENS (data.js).
// Everything a user named reaches the page through textContent, never as HTML.
(function () {
  "use strict";
  var D = window.LOSSLENS;
  var state = { tabs: [], active: -1 };
  var views = {};          // element id -> vega View, finalized before re-embedding
  var tableCache = {};
  var panel = { which: "metrics", sort: null, desc: false };
  var firstRender = false;
  var quiet = true;        // while starting or restoring from history, the address is replaced, not pushed

  // ---------------------------------------------------------------- small DOM helpers
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svgIcon(d, cls) {
    var ns = "http://www.w3.org/2000/svg";
    var s = document.createElementNS(ns, "svg");
    s.setAttribute("viewBox", "0 0 16 16");
    s.setAttribute("aria-hidden", "true");
    if (cls) s.setAttribute("class", cls);
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", d);
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", "1.6");
    p.setAttribute("stroke-linecap", "round");
    p.setAttribute("stroke-linejoin", "round");
    s.appendChild(p);
    return s;
  }
  var CHEVRON = "M6 3l5 5-5 5";
  var CROSS = "M4 4l8 8M12 4l-8 8";
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      var a = Math.abs(v);
      return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
    }
    return String(v);
  }

  // Greek letters as their ASCII names, so "lambda" finds "λ" (names and metric quantities use them).
  var GREEK = { "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "η": "eta", "θ": "theta",
    "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ρ": "rho", "σ": "sigma", "τ": "tau", "φ": "phi", "ω": "omega",
    "∞": "inf", "−": "-", "↔": "<->" };
  function ascii(text) {
    return String(text).toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^\x00-\x7f]/g, function (c) { return GREEK[c] || c; });
  }

  // ---------------------------------------------------------------- data: compact columns -> rows (see codec.py)
  var blobCache = {};
  function blob(ref, kind) {
    var key = kind + ref;
    if (!blobCache[key]) {
      var bin = atob(D.blobs[ref]);
      var bytes = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      var T = { i32: Int32Array, f32: Float32Array, f64: Float64Array, u8: Uint8Array }[kind];
      blobCache[key] = new T(bytes.buffer);
    }
    return blobCache[key];
  }
  function column(spec) {
    if (spec.json) return spec.json;
    if (spec.dict) {
      var lookup = column(spec.dict), idx = column(spec.idx), out = new Array(idx.length);
      for (var i = 0; i < idx.length; i++) out[i] = lookup[idx[i]];
      return out;
    }
    var kind = ["i32", "f32", "f64", "u8"].filter(function (k) { return k in spec; })[0];
    var arr = blob(spec[kind], kind), res = new Array(arr.length);
    for (var j = 0; j < arr.length; j++) res[j] = (kind === "f32" || kind === "f64") && isNaN(arr[j]) ? null : arr[j];
    return res;
  }
  function rows(key) {
    if (tableCache[key]) return tableCache[key];
    var t = D.tables[key], names = Object.keys(t.cols), cols = {}, has = {};
    names.forEach(function (n) {
      cols[n] = column(t.cols[n]);
      if (t.cols[n].has) has[n] = column(t.cols[n].has);
    });
    var out = new Array(t.n);
    for (var i = 0; i < t.n; i++) {
      var r = {};
      for (var k = 0; k < names.length; k++) {
        var n = names[k];
        if (!has[n] || has[n][i]) r[n] = cols[n][i];
      }
      out[i] = r;
    }
    return (tableCache[key] = out);
  }
  // The decoder on a namespaced global, so that a test (or the console) can read a table back as rows.
  window.LossLensViewer = { rows: rows };
  // A view's spec: its template with every {"url": "ll:<name>"} replaced by the rows of its table.
  function specOf(viewKey) {
    var v = D.views[viewKey];
    if (!v) return null;
    function fill(x) {
      if (Array.isArray(x)) return x.map(fill);
      if (x && typeof x === "object") {
        var keys = Object.keys(x);
        if (keys.length === 1 && keys[0] === "url" && v.data[x.url]) return { values: rows(v.data[x.url]) };
        var o = {};
        keys.forEach(function (k) { o[k] = fill(x[k]); });
        return o;
      }
      return x;
    }
    return fill(D.templates[v.t]);
  }
  function preselect(spec, param, field, id) {
    (spec.params || []).forEach(function (p) {
      if (p.name === param && id) { var v = {}; v[field] = id; p.value = [v]; }
    });
    return spec;
  }

  // ---------------------------------------------------------------- names
  function settingOf(id) { return D.settings[id]; }
  function modeName(sha) { return D.checkpoints[sha] ? D.checkpoints[sha].name : sha.slice(0, 12); }
  function pairKey(a, b) {
    if (D.pairs[a + "~" + b]) return a + "~" + b;
    if (D.pairs[b + "~" + a]) return b + "~" + a;
    return null;
  }
  function pairName(key) { var p = D.pairs[key]; return modeName(p.a) + " ↔ " + modeName(p.b); }
  function experimentOf(id) { return D.experiments.filter(function (e) { return e.id === id; })[0]; }
  function tabTitle(t) {
    if (t.kind === "taxonomy") return "Taxonomy: " + experimentOf(t.id).name;
    if (t.kind === "setting") return settingOf(t.id).label;
    if (t.kind === "mode") return modeName(t.id);
    return pairName(t.id);
  }
  var KIND_ICON = { taxonomy: "T", setting: "S", mode: "M", pair: "P" };
  function valid(t) {
    if (t.kind === "taxonomy") return !!experimentOf(t.id);
    if (t.kind === "setting") return !!D.settings[t.id];
    if (t.kind === "mode") return !!D.checkpoints[t.id];
    if (t.kind === "pair") return !!D.pairs[t.id];
    return false;
  }

  // ---------------------------------------------------------------- charts
  function embed(container, viewKey, opts) {
    opts = opts || {};
    var spec = specOf(viewKey);
    var box = el("div", "chart");
    box.id = "chart-" + (opts.slot || viewKey.split(":")[0]);
    container.appendChild(box);
    if (!spec) {
      box.className = "chart missing";
      box.setAttribute("data-rendered", "missing");
      var hint = computeHint(viewKey);
      box.textContent = "Not computed for this subject" + (hint ? ": run `" + hint + "` and export again." : ".");
      return box;
    }
    if (opts.select) preselect(spec, opts.select[0], opts.select[1], opts.select[2]);
    if (views[box.id]) { views[box.id].finalize(); delete views[box.id]; }
    box.setAttribute("data-rendered", "");
    vegaEmbed(box, spec, { actions: false, renderer: "svg" }).then(function (result) {
      views[box.id] = result.view;
      box.setAttribute("data-rendered", "1");
      tools(box, viewKey, result.view);
      if (!firstRender) {
        firstRender = true;
        document.documentElement.setAttribute("data-first-render", String(Math.round(performance.now())));
      }
      if (opts.onView) opts.onView(result.view);
    }).catch(function (err) {
      box.setAttribute("data-rendered", "error");
      box.textContent = "Could not draw this view: " + err.message;
      console.error(err);
    });
    return box;
  }
  // Under each chart: its help text (one click), PNG and SVG of the drawing, and each dataset's rows as JSON
  // and CSV, made in the page (nothing is fetched).
  function csvOf(data) {
    var names = [];
    data.forEach(function (r) { Object.keys(r).forEach(function (k) { if (names.indexOf(k) < 0) names.push(k); }); });
    function cell(v) {
      if (v === null || v === undefined) return "";
      var t = String(v);
      return /[",\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
    }
    return [names.join(",")].concat(data.map(function (r) { return names.map(function (k) { return cell(r[k]); }).join(","); })).join("\n") + "\n";
  }
  function download(url, name) {
    var a = el("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }
  function tools(box, viewKey, view) {
    var name = viewKey.split(":")[0], bar = el("div", "chart-tools"), reg = D.registry[name] || {};
    bar.id = box.id + "-tools";
    var note = el("p", "chart-help", reg.help || "");
    note.hidden = true;
    if (reg.help) {
      var h = el("button", "linkish", "? What is this");
      h.title = "How to read this chart";
      h.addEventListener("click", function () { note.hidden = !note.hidden; });
      bar.appendChild(h);
    }
    ["png", "svg"].forEach(function (fmt) {
      var b = el("button", "linkish", fmt.toUpperCase());
      b.title = "Download the chart as " + fmt.toUpperCase();
      b.addEventListener("click", function () {
        view.toImageURL(fmt, fmt === "png" ? 2 : 1).then(function (url) { download(url, name + "." + fmt); });
      });
      bar.appendChild(b);
    });
    var used = (D.views[viewKey] || { data: {} }).data;
    Object.keys(used).forEach(function (placeholder) {
      var dataset = placeholder.replace(/^ll:/, ""), data = rows(used[placeholder]);
      [["json", "application/json", function () { return JSON.stringify(data); }], ["csv", "text/csv", function () { return csvOf(data); }]]
        .forEach(function (f) {
          var b = el("button", "linkish", dataset + "." + f[0]);
          b.title = "Download the rows of " + dataset + " as " + f[0].toUpperCase();
          b.addEventListener("click", function () { download(URL.createObjectURL(new Blob([f[2]()], { type: f[1] })), dataset + "." + f[0]); });
          bar.appendChild(b);
        });
    });
    box.parentNode.insertBefore(bar, box.nextSibling);
    bar.parentNode.insertBefore(note, bar.nextSibling);
  }
  function chosen(value, field) {
    if (!value) return null;
    var v = value[field];
    if (Array.isArray(v)) v = v[0];
    return typeof v === "string" ? v : null;
  }

  // ---------------------------------------------------------------- editors
  // The view registry (losslens/views/registry.py), shipped in data.js: each view's subject, title and metrics.
  // The command that computes a view for its subject's experiment: data.js carries it per experiment and view
  // (losslens/views/hints.py writes every such hint), so the viewer says what the pages say.
  function computeHint(viewKey) {
    var p = viewKey.split(":"), v = D.registry[p[0]], id = p[1];
    var subject = v ? v.subject : null;
    var setting = subject === "setting" ? id : subject === "checkpoint" || subject === "pair" ? (D.checkpoints[id] || {}).setting : null;
    var e = experimentOf(subject === "experiment" ? id : setting && settingOf(setting) ? settingOf(setting).experiment : null);
    return e && e.compute[p[0]] ? e.compute[p[0]] : "";
  }
  function pageViews(subject) {
    return Object.keys(D.registry).filter(function (v) { return D.registry[v].subject === subject && D.registry[v].page; });
  }

  function header(body, title, meta) {
    var h = el("div", "view-head");
    h.appendChild(el("h1", null, title));
    if (meta) h.appendChild(el("span", "meta", meta));
    body.appendChild(h);
  }
  function subhead(body, text, action, onAction) {
    var s = el("div", "subhead");
    s.appendChild(el("span", null, text));
    if (action) {
      var b = el("button", "linkish", action);
      b.addEventListener("click", onAction);
      s.appendChild(b);
    }
    body.appendChild(s);
    return s;
  }

  function renderTaxonomy(tab, body) {
    var e = experimentOf(tab.id);
    header(body, "Taxonomy", e.name + " · " + e.settings.length + " setting(s) · click a setting to see its modes");
    if (!tab.pick) tab.pick = e.settings[0];
    embed(body, "taxonomy:" + e.id, { select: ["setting", "setting_id", tab.pick], onView: function (view) {
      view.addSignalListener("setting", function (_, value) {
        var id = chosen(value, "setting_id");
        if (id && id !== tab.pick && D.settings[id]) { tab.pick = id; semi(); changed(); }
      });
    } });
    var holder = el("div");
    body.appendChild(holder);
    function semi() {
      holder.textContent = "";
      if (!tab.pick) return;
      subhead(holder, "Setting " + settingOf(tab.pick).label, "Open setting", function () { open({ kind: "setting", id: tab.pick }); });
      embed(holder, "modes:" + tab.pick, { slot: "semi", onView: function (view) {
        pairClicks(view);
        // A glyph opens its mode, as on the Datasette global page.
        view.addSignalListener("mode", function (_, value) {
          var id = chosen(value, "checkpoint");
          if (id && D.checkpoints[id]) open({ kind: "mode", id: id });
        });
      } });
    }
    semi();
  }

  function pairClicks(view) {
    view.addEventListener("click", function (_, item) {
      var d = item && item.datum;
      if (d && d.checkpoint_a && d.checkpoint_b) {
        var key = pairKey(d.checkpoint_a, d.checkpoint_b);
        if (key) open({ kind: "pair", id: key });
      }
    });
  }

  // A click on a mark whose row names a checkpoint (a landscape of the small multiples) opens that mode.
  function modeClicks(view) {
    view.addEventListener("click", function (_, item) {
      var sha = item && item.datum && item.datum.checkpoint;
      if (typeof sha === "string" && D.checkpoints[sha]) open({ kind: "mode", id: sha });
    });
  }

  function renderSetting(tab, body) {
    var s = settingOf(tab.id);
    header(body, s.label, experimentOf(s.experiment).name + " · " + s.modes.length + " mode(s) · phase " + (s.phase || "unknown") +
      " · click a mode for its local views, a link for the pair");
    if (!tab.pick) tab.pick = s.modes[0];
    embed(body, "modes:" + s.id, { select: ["mode", "checkpoint", tab.pick], onView: function (view) {
      pairClicks(view);
      view.addSignalListener("mode", function (_, value) {
        var id = chosen(value, "checkpoint");
        if (id && id !== tab.pick && D.checkpoints[id]) { tab.pick = id; local(); changed(); }
      });
    } });
    if (s.pairs.length) {
      var chips = el("div", "chips");
      s.pairs.forEach(function (key) {
        var c = el("button", "chip", pairName(key));
        c.addEventListener("click", function () { open({ kind: "pair", id: key }); });
        chips.appendChild(c);
      });
      body.appendChild(chips);
    }
    // Every mode's landscape side by side (one colour scale while its box is ticked); a click opens the mode.
    embed(body, "mode-landscapes:" + s.id, { slot: "landscapes", onView: modeClicks });
    var nd = s.modes.filter(function (sha) { return D.views["nd:" + sha]; });
    if (nd.length) {
      var ndChips = el("div", "chips");
      ndChips.appendChild(el("span", "meta", "3-D/4-D landscapes, sliced on the mode's tab:"));
      nd.forEach(function (sha) {
        var c = el("button", "chip", modeName(sha));
        c.addEventListener("click", function () { open({ kind: "mode", id: sha }); });
        ndChips.appendChild(c);
      });
      body.appendChild(ndChips);
    }
    var holder = el("div");
    body.appendChild(holder);
    function local() {
      holder.textContent = "";
      if (!tab.pick) return;
      subhead(holder, "Mode " + modeName(tab.pick), "Open mode", function () { open({ kind: "mode", id: tab.pick }); });
      embed(holder, "local:" + tab.pick, { slot: "local" });
    }
    local();
  }

  function renderMode(tab, body) {
    var c = D.checkpoints[tab.id];
    header(body, c.name, settingOf(c.setting).label + " · seed " + fmt(c.seed) + " · " + fmt(c.n_params) + " parameters · " + c.model);
    embed(body, "local:" + tab.id);
    // A 3-D or 4-D landscape, when the mode has one: its slices through θ, merge tree and persistence.
    if (D.views["nd:" + tab.id]) {
      subhead(body, D.registry.nd.title + ": choose the slice plane and the fixed indices under the chart (centre = θ)");
      embed(body, "nd:" + tab.id);
    }
  }

  function renderPair(tab, body) {
    var p = D.pairs[tab.id];
    header(body, pairName(tab.id), settingOf(p.setting).label + " · mode a = " + modeName(p.a) + ", mode b = " + modeName(p.b));
    pageViews("pair").forEach(function (v) {
      embed(body, v + ":" + p.a + ":" + p.b, { slot: v, onView: v === "landscapes" ? modeClicks : null });
    });
  }

  var RENDER = { taxonomy: renderTaxonomy, setting: renderSetting, mode: renderMode, pair: renderPair };

  // ---------------------------------------------------------------- tabs and state
  function same(a, b) { return a.kind === b.kind && a.id === b.id; }
  function open(t) {
    var i = state.tabs.findIndex(function (x) { return same(x, t); });
    if (i < 0) { state.tabs.push(t); i = state.tabs.length - 1; }
    activate(i);
  }
  function close(i) {
    state.tabs.splice(i, 1);
    if (state.active >= state.tabs.length || state.active > i) state.active = Math.max(0, state.active - 1);
    if (!state.tabs.length) state.active = -1;
    activate(state.active);
  }
  function activate(i) {
    state.active = i;
    Object.keys(views).forEach(function (k) { views[k].finalize(); delete views[k]; });
    var body = document.getElementById("editor-body");
    body.textContent = "";
    var tab = state.tabs[i];
    if (tab) { RENDER[tab.kind](tab, body); reveal(tab); }
    else body.appendChild(el("div", "empty-editor", "Open a view from the explorer, or press Ctrl+P."));
    changed();
  }
  // Selection: the most specific subject the active tab shows.
  function selection() {
    var t = state.tabs[state.active];
    if (!t) return null;
    if (t.kind === "taxonomy") return t.pick ? { kind: "setting", id: t.pick } : null;
    if (t.kind === "setting") return t.pick ? { kind: "mode", id: t.pick } : { kind: "setting", id: t.id };
    return t;
  }
  function changed() {
    renderTabs();
    renderCrumbs();
    markTree();
    renderPanel();
    writeHash();
    var sel = selection();
    document.getElementById("status-selection").textContent = sel ? "Selection: " + tabTitle(sel) : "";
  }

  function renderTabs() {
    var bar = document.getElementById("tabs");
    bar.textContent = "";
    state.tabs.forEach(function (t, i) {
      var tab = el("div", "tab" + (i === state.active ? " active" : ""));
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(i === state.active));
      tab.setAttribute("data-kind", t.kind);
      tab.title = tabTitle(t);
      tab.appendChild(el("span", "node-icon " + (t.kind === "taxonomy" ? "experiment" : t.kind), KIND_ICON[t.kind]));
      tab.appendChild(el("span", "label", tabTitle(t)));
      var x = el("button", "tab-close");
      x.setAttribute("aria-label", "Close");
      x.appendChild(svgIcon(CROSS));
      x.addEventListener("click", function (ev) { ev.stopPropagation(); close(i); });
      tab.appendChild(x);
      tab.addEventListener("click", function () { if (i !== state.active) activate(i); });
      tab.addEventListener("auxclick", function (ev) { if (ev.button === 1) close(i); });
      bar.appendChild(tab);
    });
  }

  function renderCrumbs() {
    var c = document.getElementById("breadcrumbs");
    c.textContent = "";
    var t = state.tabs[state.active];
    if (!t) return;
    var parts = [D.catalog];
    var setting = t.kind === "setting" ? t.id : t.kind === "mode" ? D.checkpoints[t.id].setting : t.kind === "pair" ? D.pairs[t.id].setting : null;
    var exp = t.kind === "taxonomy" ? t.id : settingOf(setting).experiment;
    parts.push(experimentOf(exp).name);
    if (setting) parts.push(settingOf(setting).label);
    if (t.kind === "mode" || t.kind === "pair") parts.push(tabTitle(t));
    if (t.kind === "taxonomy") parts.push("taxonomy");
    parts.forEach(function (p, i) {
      if (i) c.appendChild(el("span", "sep", "›"));
      c.appendChild(el("span", null, p));
    });
  }

  // URL hash: t=<kind>.<id>[.<pick>],... & a=<active index>. Ids are hex, so "." and "," are safe.
  function writeHash() {
    var t = state.tabs.map(function (x) { return [x.kind, x.id].concat(x.pick ? [x.pick] : []).join("."); }).join(",");
    var h = "#t=" + encodeURIComponent(t) + "&a=" + state.active;
    if (location.hash === h) return;
    if (quiet) history.replaceState(null, "", h);
    else history.pushState(null, "", h);  // Back steps through the views opened
  }
  function readHash() {
    var params = new URLSearchParams(location.hash.slice(1));
    var tabs = (params.get("t") || "").split(",").filter(Boolean).map(function (s) {
      var p = s.split(".");
      return { kind: p[0], id: p[1], pick: p[2] || null };
    }).filter(valid);
    tabs.forEach(function (t) {
      var ok = t.kind === "taxonomy" ? !!D.settings[t.pick] : t.kind === "setting" ? !!D.checkpoints[t.pick] : false;
      if (!ok) t.pick = null;
    });
    var active = parseInt(params.get("a"), 10);
    return { tabs: tabs, active: isNaN(active) || active < 0 || active >= tabs.length ? tabs.length - 1 : active };
  }

  // ---------------------------------------------------------------- explorer
  var expanded = {};
  function treeRow(depth, kind, label, opts) {
    var r = el("div", "row");
    r.setAttribute("role", "treeitem");
    r.tabIndex = 0;
    r.style.paddingLeft = (8 + depth * 12) + "px";
    r.setAttribute("data-kind", kind);
    if (opts.id) r.setAttribute("data-id", opts.id);
    var tw = el("span", "twisty" + (opts.children ? (opts.open ? " open" : "") : " leaf"));
    tw.appendChild(svgIcon(CHEVRON));
    r.appendChild(tw);
    r.appendChild(el("span", "node-icon " + kind, opts.icon));
    r.appendChild(el("span", "label", label));
    r.title = label + (opts.hint ? " · " + opts.hint : "");
    if (opts.hint) r.appendChild(el("span", "hint", opts.hint));
    if (opts.badge) r.appendChild(el("span", "badge phase-" + opts.badge.replace(/[^A-Za-z-]/g, ""), opts.badge));
    if (opts.children) r.setAttribute("aria-expanded", String(!!opts.open));
    function act(ev) {
      if (opts.children && (ev.target.closest(".twisty") || !opts.onOpen)) { expanded[opts.key] = !opts.open; renderTree(); return; }
      if (opts.children && !opts.open) expanded[opts.key] = true;
      if (opts.onOpen) opts.onOpen();
      renderTree();
    }
    r.addEventListener("click", act);
    r.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); act(ev); } });
    return r;
  }
  function hintText(h) { return h && h.name ? h.name.replace(/ \(.*\)$/, "") + " " + fmt(h.value) : ""; }
  function renderTree() {
    var tree = document.getElementById("tree");
    tree.textContent = "";
    D.experiments.forEach(function (e) {
      var ek = "e" + e.id;
      if (!(ek in expanded)) expanded[ek] = true;
      tree.appendChild(treeRow(0, "experiment", e.name, { id: e.id, key: ek, icon: "E", children: true, open: expanded[ek],
        hint: e.settings.length + " settings", onOpen: function () { open({ kind: "taxonomy", id: e.id }); } }));
      if (!expanded[ek]) return;
      e.settings.forEach(function (sid) {
        var s = settingOf(sid), sk = "s" + sid;
        tree.appendChild(treeRow(1, "setting", s.label, { id: sid, key: sk, icon: "S", children: true, open: !!expanded[sk],
          hint: hintText(s.hint), badge: s.phase || "unknown", onOpen: function () { open({ kind: "setting", id: sid }); } }));
        if (!expanded[sk]) return;
        s.modes.forEach(function (sha) {
          var c = D.checkpoints[sha];
          tree.appendChild(treeRow(2, "mode", c.name, { id: sha, icon: "M", hint: hintText(c.hint),
            onOpen: function () { open({ kind: "mode", id: sha }); } }));
        });
        if (!s.pairs.length) return;
        var pk = "p" + sid;
        tree.appendChild(treeRow(2, "folder", "pairs", { key: pk, icon: "⋯", children: true, open: !!expanded[pk], hint: String(s.pairs.length) }));
        if (!expanded[pk]) return;
        s.pairs.forEach(function (key) {
          tree.appendChild(treeRow(3, "pair", pairName(key), { id: key, icon: "P", hint: hintText(D.pairs[key].hint),
            onOpen: function () { open({ kind: "pair", id: key }); } }));
        });
      });
    });
    markTree();
    fitExplorer();
  }
  // The explorer opens wide enough for the names it shows (270 px up to 40 % of the window), growing as
  // folders open, until the user drags the sash; a name that still does not fit ends in "…" and shows
  // whole in its tooltip.
  var sizedByUser = false;
  function fitExplorer() {
    var wb = document.querySelector(".workbench");
    if (sizedByUser || wb.classList.contains("no-sidebar")) return;
    var need = 0;
    document.querySelectorAll("#tree .row").forEach(function (r) {
      var label = r.querySelector(".label"), badge = r.querySelector(".badge");
      var before = label.getBoundingClientRect().left - r.getBoundingClientRect().left;
      need = Math.max(need, before + label.scrollWidth + (badge ? badge.offsetWidth + 6 : 0) + 8);
    });
    var sidebar = document.getElementById("sidebar");
    var chrome = sidebar.offsetWidth - sidebar.clientWidth + 2;  // border and scroll bar
    var now = parseFloat(getComputedStyle(wb).getPropertyValue("--sidebar-w")) || 270;
    var width = Math.round(Math.min(window.innerWidth * 0.4, Math.max(270, need + chrome)));
    if (width > now) wb.style.setProperty("--sidebar-w", width + "px");
  }
  // Expand the explorer down to the active tab's subject, as VS Code reveals the active file.
  function reveal(t) {
    var sid = t.kind === "setting" ? t.id : t.kind === "mode" ? D.checkpoints[t.id].setting : t.kind === "pair" ? D.pairs[t.id].setting : null;
    if (!sid) return;
    var before = JSON.stringify(expanded);
    expanded["e" + settingOf(sid).experiment] = true;
    if (t.kind !== "setting") expanded["s" + sid] = true;
    if (t.kind === "pair") expanded["p" + sid] = true;
    if (JSON.stringify(expanded) !== before) renderTree();
  }
  function markTree() {
    var t = state.tabs[state.active];
    document.querySelectorAll("#tree .row").forEach(function (r) {
      var on = !!t && r.getAttribute("data-id") === t.id &&
        r.getAttribute("data-kind") === (t.kind === "taxonomy" ? "experiment" : t.kind);
      r.classList.toggle("current", on);
    });
  }

  // ---------------------------------------------------------------- bottom panel
  function metricRows(sel) {
    var out = [];
    function add(subject, list) { list.forEach(function (m) { out.push([subject, m[0], m[1], m[2], m[3]]); }); }
    if (!sel) return out;
    if (sel.kind === "setting") {
      var s = settingOf(sel.id);
      add(s.label, s.metrics);
      s.modes.forEach(function (sha) { add(modeName(sha), D.checkpoints[sha].metrics); });
      s.pairs.forEach(function (key) { add(pairName(key), D.pairs[key].metrics); });
    } else if (sel.kind === "mode") {
      add(modeName(sel.id), D.checkpoints[sel.id].metrics);
    } else if (sel.kind === "pair") {
      var p = D.pairs[sel.id];
      add(pairName(sel.id), p.metrics);
      add(modeName(p.a), D.checkpoints[p.a].metrics);
      add(modeName(p.b), D.checkpoints[p.b].metrics);
    } else if (sel.kind === "taxonomy") {
      experimentOf(sel.id).settings.forEach(function (sid) { add(settingOf(sid).label, settingOf(sid).metrics); });
    }
    return out;
  }
  // Side by side: the modes of a setting (or of the selected mode's or pair's setting), or the settings of an
  // experiment; one row per metric and quantity, one column per subject.
  function compareTable(sel) {
    if (!sel) return { headers: [], rows: [] };
    var subjects;
    if (sel.kind === "taxonomy") {
      subjects = experimentOf(sel.id).settings.map(function (id) { return { name: settingOf(id).label, metrics: settingOf(id).metrics }; });
    } else {
      var sid = sel.kind === "setting" ? sel.id : sel.kind === "mode" ? D.checkpoints[sel.id].setting : D.pairs[sel.id].setting;
      subjects = settingOf(sid).modes.map(function (sha) { return { name: modeName(sha), metrics: D.checkpoints[sha].metrics }; });
    }
    var keys = [], table = {};
    subjects.forEach(function (s, j) {
      s.metrics.forEach(function (m) {
        var k = m[0] + "\u0000" + m[1];
        if (!table[k]) { table[k] = [m[0], m[1]].concat(subjects.map(function () { return null; })); keys.push(k); }
        table[k][2 + j] = m[2];
      });
    });
    return { headers: ["metric", "quantity"].concat(subjects.map(function (s) { return s.name; })), rows: keys.map(function (k) { return table[k]; }) };
  }
  function runIds(sel) {
    if (!sel) return [];
    if (sel.kind === "setting") {
      var s = settingOf(sel.id), ids = s.runs.slice();
      s.modes.forEach(function (sha) { ids = ids.concat(D.checkpoints[sha].runs); });
      s.pairs.forEach(function (key) { ids = ids.concat(D.pairs[key].runs); });
      return ids.concat(experimentOf(s.experiment).runs);
    }
    if (sel.kind === "mode") return D.checkpoints[sel.id].runs;
    if (sel.kind === "pair") return D.pairs[sel.id].runs;
    return experimentOf(sel.id).runs;
  }
  function table(headers, data, numeric) {
    var filter = ascii(document.getElementById("panel-filter").value.trim());
    if (filter) data = data.filter(function (r) { return r.some(function (c) { return ascii(fmt(c)).indexOf(filter) >= 0; }); });
    if (panel.sort !== null && panel.sort < headers.length) {
      var k = panel.sort, sign = panel.desc ? -1 : 1;
      data = data.slice().sort(function (a, b) {
        var x = a[k], y = b[k];
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sign;
      });
    }
    var t = el("table", "grid"), thead = el("thead"), tr = el("tr");
    headers.forEach(function (h, i) {
      var th = el("th", null, h);
      if (panel.sort === i) th.setAttribute("aria-sort", panel.desc ? "descending" : "ascending");
      th.addEventListener("click", function () {
        panel.desc = panel.sort === i ? !panel.desc : false;
        panel.sort = i;
        renderPanel();
      });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    t.appendChild(thead);
    var tbody = el("tbody");
    data.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c, i) {
        var td = el("td", numeric[i] ? "num" : null);
        if (numeric[i] === "code") { td.className = ""; td.appendChild(el("code", null, fmt(c))); }
        else if (numeric[i] === "params") { td.className = "params"; td.textContent = c; }
        else td.textContent = fmt(c);
        if (typeof c === "number") td.title = String(c);
        row.appendChild(td);
      });
      tbody.appendChild(row);
    });
    t.appendChild(tbody);
    return { table: t, n: data.length };
  }
  function renderPanel() {
    var body = document.getElementById("panel-body");
    body.textContent = "";
    document.querySelectorAll(".panel-tab").forEach(function (b) { b.classList.toggle("active", b.getAttribute("data-panel") === panel.which); });
    var sel = selection() || (state.tabs[state.active] || null);
    if (!sel) { body.appendChild(el("div", "panel-note", "Nothing selected.")); return; }
    var made;
    if (panel.which === "metrics") {
      made = table(["subject", "metric", "quantity", "value", "run"], metricRows(sel), [false, false, false, true, "code"]);
    } else if (panel.which === "compare") {
      var cmp = compareTable(state.tabs[state.active] && state.tabs[state.active].kind === "taxonomy" ? state.tabs[state.active] : sel);
      made = table(cmp.headers, cmp.rows, cmp.headers.map(function (_, i) { return i >= 2; }));
    } else {
      var seen = {}, data = [];
      runIds(sel).forEach(function (id) {
        if (seen[id] || !D.runs[id]) return;
        seen[id] = true;
        var r = D.runs[id];
        data.push([r.metric, id, r.code_version, r.wall_seconds, r.device, r.finished_at, JSON.stringify(r.params)]);
      });
      made = table(["metric", "run", "code version", "wall s", "device", "finished", "parameters"], data,
        [false, "code", false, true, false, false, "params"]);
    }
    body.appendChild(made.table);
    if (!made.n) body.appendChild(el("div", "panel-note", "No rows for " + tabTitle(sel) + "."));
  }

  // ---------------------------------------------------------------- quick open
  var quick = { items: [], shown: [], index: 0 };
  function quickItems() {
    var items = [];
    D.experiments.forEach(function (e) { items.push({ kind: "taxonomy", id: e.id, label: e.name, detail: "experiment taxonomy" }); });
    Object.keys(D.settings).forEach(function (id) {
      var s = D.settings[id];
      items.push({ kind: "setting", id: id, label: s.label, detail: "setting · " + experimentOf(s.experiment).name });
    });
    Object.keys(D.checkpoints).forEach(function (sha) {
      var c = D.checkpoints[sha];
      items.push({ kind: "mode", id: sha, label: c.name, detail: settingOf(c.setting).label + " · " + sha.slice(0, 12) });
    });
    Object.keys(D.pairs).forEach(function (key) {
      items.push({ kind: "pair", id: key, label: pairName(key), detail: "pair · " + settingOf(D.pairs[key].setting).label });
    });
    return items;
  }
  function showQuick() {
    var box = document.getElementById("quickopen"), input = document.getElementById("quickopen-input");
    box.hidden = false;
    input.value = "";
    quick.items = quickItems();
    filterQuick();
    input.focus();
  }
  function hideQuick() { document.getElementById("quickopen").hidden = true; }
  // Tokens of a name: runs of letters and of digits ("beta30_seed2" -> beta, 30, seed, 2) plus the words between
  // separators ("beta30", "seed2"), all ASCII-folded.
  function tokens(text) {
    var t = ascii(text), out = t.split(/[^a-z0-9.]+/).filter(Boolean);
    return out.concat(t.match(/[a-z]+|[0-9]+(?:\.[0-9]+)?/g) || []);
  }
  // How well one typed word matches an item: a whole token of its name beats a token's start, beats a part of
  // the name, beats its detail line; a sha256 only matches from its start. 0: no match.
  function wordScore(w, it) {
    var label = ascii(it.label), lt = it.tokens || (it.tokens = tokens(it.label)), dt = it.dtokens || (it.dtokens = tokens(it.detail));
    if (lt.indexOf(w) >= 0) return 10;
    if (lt.some(function (t) { return t.indexOf(w) === 0; })) return 7;
    if (label.indexOf(w) >= 0) return 5;
    if (dt.indexOf(w) >= 0) return 4;
    if (ascii(it.detail).indexOf(w) >= 0) return 2;
    if (w.length >= 4 && it.id.indexOf(w) === 0) return 1;
    return 0;
  }
  var KIND_RANK = { mode: 0, setting: 1, taxonomy: 2, pair: 3 };
  function filterQuick() {
    var typed = ascii(document.getElementById("quickopen-input").value).split(/\s+/).filter(Boolean);
    quick.shown = quick.items.map(function (it) {
      var score = 0;
      for (var i = 0; i < typed.length; i++) {
        // a typed word counts as its best reading: whole ("seed2") or split into its tokens ("seed", "2")
        var whole = wordScore(typed[i], it), parts = tokens(typed[i]), split = 0;
        for (var k = 0; k < parts.length; k++) { var p = wordScore(parts[k], it); if (!p) { split = 0; break; } split += p / parts.length; }
        var best = Math.max(whole, split);
        if (!best) return null;
        score += best;
      }
      return { it: it, score: score };
    }).filter(Boolean).sort(function (x, y) {
      return y.score - x.score || KIND_RANK[x.it.kind] - KIND_RANK[y.it.kind] || x.it.label.length - y.it.label.length ||
        x.it.label.localeCompare(y.it.label);
    }).slice(0, 200).map(function (x) { return x.it; });
    quick.index = 0;
    drawQuick();
  }
  function drawQuick() {
    var list = document.getElementById("quickopen-list");
    list.textContent = "";
    quick.shown.forEach(function (it, i) {
      var li = el("li", i === quick.index ? "active" : null);
      li.setAttribute("role", "option");
      li.setAttribute("data-kind", it.kind);
      li.appendChild(el("span", "node-icon " + (it.kind === "taxonomy" ? "experiment" : it.kind), KIND_ICON[it.kind]));
      li.appendChild(el("span", "label", it.label));
      li.title = it.label + " · " + it.detail;
      li.appendChild(el("span", "hint", it.detail));
      li.addEventListener("mousedown", function (ev) { ev.preventDefault(); pickQuick(i); });
      list.appendChild(li);
    });
    var active = list.children[quick.index];
    if (active) active.scrollIntoView({ block: "nearest" });
  }
  function pickQuick(i) {
    var it = quick.shown[i];
    hideQuick();
    if (it) {
      if (it.kind !== "taxonomy") {
        var sid = it.kind === "setting" ? it.id : it.kind === "mode" ? D.checkpoints[it.id].setting : D.pairs[it.id].setting;
        expanded["e" + settingOf(sid).experiment] = true;
        expanded["s" + sid] = true;
        if (it.kind === "pair") expanded["p" + sid] = true;
        renderTree();
      }
      open({ kind: it.kind, id: it.id });
    }
  }

  // ---------------------------------------------------------------- theme, wiring, start
  function setTheme(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    try { localStorage.setItem("losslens-theme", theme); } catch (e) { /* storage may be off for file:// */ }
  }
  function start() {
    var saved = null;
    try { saved = localStorage.getItem("losslens-theme"); } catch (e) { saved = null; }
    setTheme(saved || (window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
    document.title = "LossLens: " + D.catalog;
    document.getElementById("catalog-title").textContent = D.catalog;
    document.getElementById("status-catalog").textContent = "LossLens · " + D.catalog;
    var n = D.counts;
    document.getElementById("status-counts").textContent = n.experiments + " experiment(s) · " + n.settings + " settings · " +
      n.checkpoints + " checkpoints · " + n.pairs + " pairs · " + n.runs + " metric runs";
    document.getElementById("status-exported").textContent = "exported " + D.exported_at.replace("T", " ") + " · v" + D.version;

    document.getElementById("act-theme").addEventListener("click", function () {
      setTheme(document.documentElement.getAttribute("data-theme") === "dark" ? "light" : "dark");
    });
    document.getElementById("act-search").addEventListener("click", showQuick);
    document.getElementById("act-explorer").addEventListener("click", function () {
      var wb = document.querySelector(".workbench"), hidden = wb.classList.toggle("no-sidebar");
      document.getElementById("sidebar").classList.toggle("hidden", hidden);
      this.classList.toggle("active", !hidden);
    });
    document.querySelectorAll(".panel-tab").forEach(function (b) {
      b.addEventListener("click", function () { panel.which = b.getAttribute("data-panel"); panel.sort = null; renderPanel(); });
    });
    document.getElementById("panel-filter").addEventListener("input", renderPanel);
    document.getElementById("panel-toggle").addEventListener("click", function () {
      var collapsed = document.getElementById("panel").classList.toggle("collapsed");
      this.setAttribute("aria-expanded", String(!collapsed));
      this.setAttribute("aria-label", collapsed ? "Expand panel" : "Collapse panel");
    });
    // The explorer's width follows the sash, between 160 px and 60 % of the window.
    var sash = document.getElementById("sash");
    sash.addEventListener("pointerdown", function (ev) {
      ev.preventDefault();
      sizedByUser = true;
      sash.setPointerCapture(ev.pointerId);
      sash.classList.add("dragging");
      function move(e) {
        var w = Math.max(160, Math.min(window.innerWidth * 0.6, e.clientX - 48));
        document.querySelector(".workbench").style.setProperty("--sidebar-w", Math.round(w) + "px");
      }
      function up() { sash.classList.remove("dragging"); sash.removeEventListener("pointermove", move); sash.removeEventListener("pointerup", up); }
      sash.addEventListener("pointermove", move);
      sash.addEventListener("pointerup", up);
    });
    var input = document.getElementById("quickopen-input");
    input.addEventListener("input", filterQuick);
    input.addEventListener("blur", hideQuick);
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown") { quick.index = Math.min(quick.index + 1, quick.shown.length - 1); drawQuick(); ev.preventDefault(); }
      else if (ev.key === "ArrowUp") { quick.index = Math.max(quick.index - 1, 0); drawQuick(); ev.preventDefault(); }
      else if (ev.key === "Enter") { pickQuick(quick.index); ev.preventDefault(); }
      else if (ev.key === "Escape") { hideQuick(); ev.preventDefault(); }
    });
    document.addEventListener("keydown", function (ev) {
      if ((ev.ctrlKey || ev.metaKey) && (ev.key === "p" || ev.key === "P")) { ev.preventDefault(); showQuick(); }
    });
    function restore() {
      var h = readHash();
      if (!h.tabs.length) return;
      quiet = true;
      state.tabs = h.tabs;
      activate(h.active);
      quiet = false;
    }
    window.addEventListener("hashchange", restore);
    window.addEventListener("popstate", restore);

    renderTree();
    var restored = readHash();
    if (restored.tabs.length) {
      state.tabs = restored.tabs;
      activate(restored.active);
    } else if (D.experiments.length) {
      open({ kind: "taxonomy", id: D.experiments[0].id });
    } else {
      activate(-1);
    }
    quiet = false;
  }
  start();
})();
