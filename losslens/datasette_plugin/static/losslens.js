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

  // Charts are drawn one after another, in page order, so the first one is not slowed by the rest.
  document.addEventListener("DOMContentLoaded", function () {
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
