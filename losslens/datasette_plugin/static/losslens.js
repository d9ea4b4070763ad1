// LossLens pages: embed each [data-spec] chart; a click selection in one chart re-targets another.
// Attributes on a chart element:
//   data-spec         URL of the Vega-Lite spec (JSON) to render; data-renderer: svg (default) or canvas
//   data-inline       id of a <script type="application/json"> holding that spec for the first render
//   data-signal       selection to listen to, data-field: the id field it is keyed on
//   data-target       id of the chart element to re-render with data-target-base + "&" + data-target-arg=<id>
//   data-url-param    query parameter that keeps the choice in the address bar
//   data-link, data-link-base  id of an <a> whose href becomes data-link-base + <id>
//   data-go           address prefix: choosing a subject opens data-go + <id> (the global page's modes chart)
//   data-label, data-names     id of an element whose text becomes the chosen subject's name, looked up in the
//                              id -> name JSON of the <script> element named by data-names
(function () {
  "use strict";
  var views = {};
  window.losslens = { views: views };

  function chosen(value, field) {
    if (!value) return null;
    var v = value[field];
    if (Array.isArray(v)) v = v[0];
    return typeof v === "string" ? v : null;
  }

  // The spec of the page's first render, inlined by the server (data-inline: the id of its script element).
  function spec(el) {
    var inline = document.getElementById(el.getAttribute("data-inline") || "");
    if (inline) {
      el.removeAttribute("data-inline");
      return Promise.resolve(JSON.parse(inline.textContent));
    }
    return fetch(el.getAttribute("data-spec")).then(function (r) {
      if (!r.ok) throw new Error("spec " + r.status);
      return r.json();
    });
  }

  function show(el) {
    el.setAttribute("data-rendered", "");
    return spec(el)
      .then(function (spec) {
        if (views[el.id]) views[el.id].finalize();
        return vegaEmbed(el, spec, { actions: false, renderer: el.getAttribute("data-renderer") || "svg" });
      })
      .then(function (result) {
        views[el.id] = result.view;
        el.setAttribute("data-rendered", "1");
        toolbar(el, result);
        performance.mark("losslens:rendered:" + el.id);
        follow(el, result.view);
        return result.view;
      });
  }

  function follow(el, view) {
    var signal = el.getAttribute("data-signal");
    if (!signal) return;
    var field = el.getAttribute("data-field");
    view.addSignalListener(signal, function (_, value) {
      var id = chosen(value, field);
      if (!id) return;
      var go = el.getAttribute("data-go");
      if (go) { window.location.href = go + encodeURIComponent(id); return; }
      var target = document.getElementById(el.getAttribute("data-target"));
      if (target) {
        var base = el.getAttribute("data-target-base");
        var spec = base + (base.indexOf("?") >= 0 ? "&" : "?") + encodeURIComponent(el.getAttribute("data-target-arg")) + "=" + encodeURIComponent(id);
        if (target.getAttribute("data-spec") !== spec) {
          target.setAttribute("data-spec", spec);
          show(target);
        }
      }
      var param = el.getAttribute("data-url-param");
      if (param) {
        var url = new URL(window.location.href);
        url.searchParams.set(param, id);
        history.replaceState(null, "", url.toString());
      }
      var link = document.getElementById(el.getAttribute("data-link") || "");
      if (link) {
        link.href = el.getAttribute("data-link-base") + encodeURIComponent(id);
        link.hidden = false;
      }
      var label = document.getElementById(el.getAttribute("data-label") || "");
      if (label) label.textContent = nameOf(el, id);
    });
  }

  // Under each chart: its help text (one click), PNG and SVG of the drawing, and the rows of each dataset it draws
  // (the data routes, as JSON and CSV).
  function viewOf(el) {
    var m = /\/spec\/([a-z-]+)\.json/.exec(el.getAttribute("data-spec") || "");
    return m ? m[1] : "chart";
  }
  function dataUrls(spec, out) {
    if (Array.isArray(spec)) spec.forEach(function (x) { dataUrls(x, out); });
    else if (spec && typeof spec === "object") {
      Object.keys(spec).forEach(function (k) {
        if (k === "url" && typeof spec[k] === "string" && out.indexOf(spec[k]) < 0) out.push(spec[k]);
        else dataUrls(spec[k], out);
      });
    }
    return out;
  }
  function button(text, title, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.title = title;
    b.addEventListener("click", onClick);
    return b;
  }
  function save(url, name) {
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }
  function toolbar(el, result) {
    var old = document.getElementById(el.id + "-tools");
    if (old) old.remove();
    var view = viewOf(el), bar = document.createElement("div");
    bar.className = "chart-tools";
    bar.id = el.id + "-tools";
    var helpBox = document.getElementById("losslens-help");
    var help = helpBox ? JSON.parse(helpBox.textContent)[view] : null;
    var note = document.createElement("p");
    note.className = "chart-help";
    note.hidden = true;
    if (help) {
      note.textContent = help;
      bar.appendChild(button("? What is this", "How to read this chart", function () { note.hidden = !note.hidden; }));
    }
    ["png", "svg"].forEach(function (fmt) {
      bar.appendChild(button(fmt.toUpperCase(), "Download the chart as " + fmt.toUpperCase(), function () {
        result.view.toImageURL(fmt, fmt === "png" ? 2 : 1).then(function (url) { save(url, view + "." + fmt); });
      }));
    });
    var seen = {};
    dataUrls(result.spec, []).forEach(function (url) {
      var name = (/\/data\/([a-z_]+)\.json/.exec(url) || [null, "data"])[1];
      // one dataset drawn for several subjects (the landscapes side by side): landscape, landscape-2, ...
      seen[name] = (seen[name] || 0) + 1;
      if (seen[name] > 1) name += "-" + seen[name];
      ["json", "csv"].forEach(function (fmt) {
        var a = document.createElement("a");
        a.href = url.replace(/\.json\?/, "." + fmt + "?");
        a.download = name + "." + fmt;
        a.textContent = name + "." + fmt;
        a.title = "Download the rows of " + name + " as " + fmt.toUpperCase();
        bar.appendChild(a);
      });
    });
    el.parentNode.insertBefore(bar, el.nextSibling);
    bar.parentNode.insertBefore(note, bar.nextSibling);
  }

  function nameOf(el, id) {
    var holder = document.getElementById(el.getAttribute("data-names") || "");
    var names = holder ? JSON.parse(holder.textContent) : {};
    return Object.prototype.hasOwnProperty.call(names, id) ? names[id] : id;
  }

  // The next chart starts after the browser has painted a frame, so a drawn chart shows at once.
  function painted() {
    return new Promise(function (resolve) {
      requestAnimationFrame(function () { setTimeout(resolve, 0); });
    });
  }

  // The 3-D surface (<details data-surface data-plotly>): plotly.js (4.8 MB, served from the installed
  // plotly package) and the figure are fetched only when the box is first opened.
  function surface(box) {
    var target = box.querySelector("#surface");
    box.addEventListener("toggle", function () {
      if (!box.open || box.getAttribute("data-rendered") !== null) return;
      box.setAttribute("data-rendered", "");
      var script = document.createElement("script");
      script.src = box.getAttribute("data-plotly");
      script.onload = function () {
        fetch(box.getAttribute("data-surface")).then(function (r) { return r.json(); }).then(function (fig) {
          if (!fig) { target.textContent = "No 2-D landscape yet: " + box.getAttribute("data-hint"); return; }
          return window.Plotly.newPlot(target, fig.data, fig.layout, { displaylogo: false, responsive: true });
        }).then(function () { box.setAttribute("data-rendered", "1"); }, function (err) {
          box.setAttribute("data-rendered", "error");
          target.textContent = "Could not draw the surface: " + err.message;
        });
      };
      document.head.appendChild(script);
    });
  }

  // Charts are drawn one after another, in page order, so the first one is not slowed by the rest.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("details[data-surface]").forEach(surface);
    var chain = Promise.resolve();
    document.querySelectorAll("[data-spec]").forEach(function (el) {
      chain = chain.then(function () {
        return show(el).catch(function (err) {
          el.setAttribute("data-rendered", "error");
          el.textContent = "Could not draw this view: " + err.message;
        });
      }).then(painted);
    });
  });
})();
