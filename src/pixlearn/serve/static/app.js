/* pixlearn web page: plain JavaScript, no build step, no external resources. */
"use strict";

(() => {
  const KEY_STORAGE = "pixlearn.apiKey";
  const JOB_STORAGE = "pixlearn.trainingJob"; // the job the Job panel shows, restored after a reload (this tab only)
  const POLL_MS = 1000;
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  /** Create an element: el("div", {class: "x", text: "hi"}, child, ...). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k === "style") node.style.cssText = v;  // CSSOM: allowed by the CSP (style-src 'self'), unlike a style attribute
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v === true) node.setAttribute(k, "");
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fmt(v, digits = 4) {
    if (typeof v !== "number") return v === null || v === undefined ? "—" : String(v);
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(1);
    if (a >= 1) return v.toFixed(3);
    return v.toPrecision(digits).replace(/0+$/, "").replace(/\.$/, "");
  }
  const pct = (v) => `${(100 * v).toFixed(1)}%`;
  function fmtDate(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }
  function fmtBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  /** A readable sentence from any error body the service (or a proxy) may send. */
  function errorMessage(body, status, statusText) {
    let msg = "";
    if (body && typeof body === "object") {
      const e = body.error;
      if (typeof e === "string") msg = e;
      else if (e && typeof e === "object") msg = e.message || e.detail || JSON.stringify(e);
      else if (typeof body.detail === "string") msg = body.detail;
      else if (Array.isArray(body.detail)) {
        msg = body.detail
          .map((d) => `${(d.loc || []).filter((x) => x !== "body").join(".")}: ${d.msg}`)
          .join("; ");
      }
      if (Array.isArray(body.reasons) && body.reasons.length) {
        // The service's message usually lists its reasons already ("x.zip: the archive was refused: a; b"):
        // add only those it does not say, so that no reason is printed twice.
        const unsaid = body.reasons.filter((r) => !msg.includes(String(r)));
        if (unsaid.length) msg += (msg ? " " : "") + "Reasons: " + unsaid.join("; ");
      }
    } else if (typeof body === "string" && body.trim()) {
      msg = body.trim().slice(0, 500);
    }
    if (!msg) msg = `The server answered ${status} ${statusText || ""}`.trim() + ".";
    return msg;
  }

  function apiKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  /**
   * Call the service. Returns parsed JSON, a Blob for images, null for 204.
   * Throws ApiError with a readable message for every non-2xx answer.
   */
  async function api(path, { method = "GET", body, query } = {}) {
    let url = path;
    if (query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v === undefined || v === null || v === "") continue;
        if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
        else qs.append(k, v);
      }
      const s = qs.toString();
      if (s) url += (url.includes("?") ? "&" : "?") + s;
    }
    const headers = { Accept: "application/json, image/png;q=0.9, */*;q=0.5" };
    const key = apiKey();
    if (key) headers["X-API-Key"] = key;
    let payload = body;
    if (body && !(body instanceof FormData) && !(body instanceof Blob)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(url, { method, headers, body: payload });
    } catch (err) {
      throw new ApiError(0, `Cannot reach the pixlearn server (${err.message}). Is it still running?`);
    }
    const ct = resp.headers.get("content-type") || "";
    if (!resp.ok) {
      let errBody = null;
      try {
        errBody = ct.includes("json") ? await resp.json() : await resp.text();
      } catch {
        errBody = null;
      }
      const msg = errorMessage(errBody, resp.status, resp.statusText);
      if (resp.status === 401 || resp.status === 403) showAuthPrompt(msg);
      throw new ApiError(resp.status, msg, errBody);
    }
    // Only an answer to a request that carried the key shows that the key works: a public endpoint
    // (/v1/health) answering after a refused one must not hide the prompt the refusal showed.
    if (key) hideAuthPrompt();
    if (resp.status === 204) return null;
    if (ct.includes("json")) return resp.json();
    if (ct.startsWith("image/")) return resp.blob();
    return resp.text();
  }

  // --------------------------------------------------------- messages
  function showError(err, where) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return; // the auth prompt says it
    const msg = err instanceof Error ? err.message : String(err);
    $("#error-text").textContent = where ? `${where}: ${msg}` : msg;
    $("#error").hidden = false;
    if (!(err instanceof ApiError)) console.error(err);
  }
  function clearError() {
    $("#error").hidden = true;
    $("#error-text").textContent = "";
  }
  function showAuthPrompt(msg) {
    const box = $("#auth-prompt");
    const had = apiKey();
    $("#auth-prompt-text").textContent =
      (msg ? msg + " " : "") +
      (had
        ? "The saved key was refused: enter a valid key in the “API key” field at the top and press Save."
        : "Enter the key in the “API key” field at the top and press Save, then try again.");
    box.hidden = false;
    $("#api-key").classList.add("needs-attention");
  }
  function hideAuthPrompt() {
    $("#auth-prompt").hidden = true;
    $("#api-key").classList.remove("needs-attention");
  }

  function confirmDialog(text, okLabel = "Delete") {
    const dlg = $("#confirm-dialog");
    if (!dlg || typeof dlg.showModal !== "function") return Promise.resolve(window.confirm(text));
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = okLabel;
    dlg.returnValue = "cancel";
    return new Promise((resolve) => {
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
      dlg.showModal();
      $("#confirm-cancel").focus();
    });
  }

  // ------------------------------------------------------------ tabs
  const TABS = ["analyze", "models", "train", "faces", "search"];
  function activateTab(name, { focus = false, push = true } = {}) {
    if (!TABS.includes(name)) name = "analyze";
    for (const t of TABS) {
      const tab = $(`#tab-${t}`);
      const on = t === name;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      $(`#view-${t}`).hidden = !on;
      if (on && focus) tab.focus();
    }
    if (push && location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    if (name === "models") loadModels();
    if (name === "train") loadTrainings();
    if (name === "search") loadCollections();
    if (name === "faces") loadGallery();
    if (name === "analyze") refreshLabelsHint();
  }
  function setupTabs() {
    for (const t of TABS) {
      $(`#tab-${t}`).addEventListener("click", () => activateTab(t));
      $(`#tab-${t}`).addEventListener("keydown", (ev) => {
        const i = TABS.indexOf(t);
        let j = null;
        if (ev.key === "ArrowRight") j = (i + 1) % TABS.length;
        else if (ev.key === "ArrowLeft") j = (i - 1 + TABS.length) % TABS.length;
        else if (ev.key === "Home") j = 0;
        else if (ev.key === "End") j = TABS.length - 1;
        if (j !== null) {
          ev.preventDefault();
          activateTab(TABS[j], { focus: true });
        }
      });
    }
    window.addEventListener("hashchange", () => activateTab(location.hash.slice(1), { push: false }));
  }

  // ------------------------------------------------------------ bars
  function scoreRow(label, score) {
    const s = Math.max(0, Math.min(1, Number(score) || 0));
    return el(
      "li",
      { class: "score-row", dataset: { label } },
      el("span", { class: "score-label", text: label }),
      el("span", { class: "bar", role: "presentation" }, el("span", { class: "bar-fill", style: `width:${(s * 100).toFixed(1)}%` })),
      el("span", { class: "score-value", text: pct(s) })
    );
  }
  function scoreList(items) {
    if (!items || !items.length) return el("p", { class: "muted", text: "No label above the threshold." });
    return el("ul", { class: "scores" }, items.map((it) => scoreRow(it.label, it.score)));
  }

  // ------------------------------------------------------------ analyze
  const analyze = { file: null, previewUrl: null, resultUrls: [], ops: [], running: false, objects: [], objectsImage: null, faces: [], text: [] };

  function setFile(file) {
    if (!file) return;
    analyze.file = file;
    if (analyze.previewUrl) URL.revokeObjectURL(analyze.previewUrl);
    analyze.previewUrl = URL.createObjectURL(file);
    const img = $("#preview");
    img.alt = `Preview of ${file.name}`;
    img.hidden = false;
    $("#drop-zone").classList.add("has-image");
    $("#image-info").textContent = `${file.name} · ${fmtBytes(file.size)}`;
    img.onload = () => {
      $("#image-info").textContent = `${file.name} · ${img.naturalWidth}×${img.naturalHeight} px · ${fmtBytes(file.size)}`;
    };
    img.onerror = () => {
      $("#image-info").textContent = `${file.name} · ${fmtBytes(file.size)} · this browser cannot preview it; the server may still read it`;
    };
    img.src = analyze.previewUrl;
    $("#analyze-btn").disabled = false;
  }

  function setupDropZone() {
    const zone = $("#drop-zone");
    const input = $("#file-input");
    input.addEventListener("change", () => setFile(input.files[0]));
    zone.addEventListener("click", () => input.click());
    zone.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        input.click();
      }
    });
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (ev) => {
        ev.preventDefault();
        ev.dataTransfer.dropEffect = "copy";
        zone.classList.add("dragging");
      });
    }
    for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (ev) => {
      ev.preventDefault();
      zone.classList.remove("dragging");
      const f = ev.dataTransfer.files && ev.dataTransfer.files[0];
      if (f) setFile(f);
    });
    // Pasting an image anywhere on the Analyze view also works.
    document.addEventListener("paste", (ev) => {
      if ($("#view-analyze").hidden) return;
      const item = Array.from(ev.clipboardData?.items || []).find((i) => i.type.startsWith("image/"));
      if (item) setFile(item.getAsFile());
    });
  }

  const DEFAULT_OPS = new Set(["canny"]);
  let opsRequest = 0;
  async function loadOps() {
    const box = $("#ops-list");
    const mine = ++opsRequest; // a late answer to an older request (e.g. a 401 before the key was saved) is dropped
    try {
      const data = await api("/v1/ops");
      if (mine !== opsRequest) return;
      analyze.ops = (data && data.ops) || [];
      renderOps();
    } catch (err) {
      if (mine !== opsRequest) return;
      box.replaceChildren(el("span", { class: "inline-error", text: `Could not list operations: ${err.message}` }));
      showError(err, "Listing operations");
    }
  }

  function renderOps() {
    const box = $("#ops-list");
    const groups = new Map();
    for (const op of analyze.ops) {
      const g = op.group || op.category || "other";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(op);
    }
    const nodes = [];
    for (const [group, ops] of groups) {
      nodes.push(
        el(
          "div",
          { class: "op-group" },
          el("div", { class: "op-group-name", text: group }),
          ops.map((op) => {
            const id = `op-${op.name}`;
            const opts = Object.entries(op.options || {});
            const optBox = el(
              "div",
              { class: "op-options", id: `${id}-options`, hidden: true },
              opts.map(([name, spec]) => {
                const oid = `${id}-opt-${name}`;
                const def = spec && spec.default !== undefined && spec.default !== null ? String(spec.default) : "auto";
                return el(
                  "label",
                  { class: "op-option", for: oid },
                  el("span", { text: name }),
                  el("input", {
                    id: oid,
                    type: "text",
                    class: "op-option-input",
                    dataset: { op: op.name, option: name },
                    placeholder: def,
                    title: spec && spec.type ? `${name}: ${spec.type}` : name,
                    spellcheck: "false",
                  })
                );
              })
            );
            const cb = el("input", {
              type: "checkbox",
              id,
              class: "op-check",
              value: op.name,
              checked: DEFAULT_OPS.has(op.name),
              "aria-describedby": op.doc ? `${id}-doc` : undefined,
            });
            optBox.hidden = !cb.checked || !opts.length;
            cb.addEventListener("change", () => (optBox.hidden = !cb.checked || !opts.length));
            return el(
              "div",
              { class: "op-item" },
              el("label", { class: "check", for: id, title: op.doc || "" }, cb, " ", op.name),
              op.doc ? el("span", { id: `${id}-doc`, class: "visually-hidden", text: op.doc }) : null,
              optBox
            );
          })
        )
      );
    }
    box.replaceChildren(...(nodes.length ? nodes : [el("span", { class: "muted", text: "The server lists no operations." })]));
  }

  async function refreshLabelsHint() {
    try {
      const data = await api("/v1/models");
      const n = ((data && data.models) || []).filter((m) => m.general).length;
      $("#labels-hint").textContent = `(ImageNet classes${n ? `, and ${n} general model${n > 1 ? "s" : ""}` : ""})`;
    } catch (err) {
      showError(err, "Listing models");
    }
  }

  function clearResults() {
    for (const u of analyze.resultUrls) URL.revokeObjectURL(u);
    analyze.resultUrls = [];
    $("#colors").replaceChildren();
    $("#quality tbody").replaceChildren();
    $("#labels").replaceChildren();
    $("#op-results").replaceChildren();
    analyze.objects = [];
    $("#objects-list").replaceChildren();
    analyze.faces = [];
    analyze.text = [];
    $("#faces-list").replaceChildren();
    $("#text-list").replaceChildren();
    for (const id of ["#colors-card", "#quality-card", "#labels-card", "#objects-card", "#marks-card", "#op-results-card"]) $(id).hidden = true;
  }

  // ------------------------------------------------------------ objects
  // The analyze request asks for every object scoring at least OBJECTS_FLOOR; the slider hides those below its
  // value on the page (no new request), so moving it back shows them again at once.
  const OBJECTS_FLOOR = 0.05;
  const classColour = (name) => {
    let h = 0;
    for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
    return `hsl(${h}, 85%, 45%)`;
  };

  function renderObjects(res) {
    const card = $("#objects-card");
    card.dataset.renders = String(Number(card.dataset.renders || 0) + 1); // one per answer (tests check no re-request)
    analyze.objects = Array.isArray(res.objects) ? res.objects : [];
    const why = res.unavailable && res.unavailable.objects;
    const note = $("#objects-note");
    note.textContent = why || "";
    note.hidden = !why;
    $("#objects-model").textContent = why ? "" : "(coco-yolox-nano)";
    $("#objects-canvas").hidden = Boolean(why);
    card.hidden = false;
    analyze.objectsImage = null;
    const img = new Image();
    img.onload = () => {
      analyze.objectsImage = img;
      drawObjects();
    };
    img.src = analyze.previewUrl;
    drawObjects();
  }

  /** Draw the image, then the boxes (and mask polygons) of the objects at or above the slider's score. */
  function drawObjects() {
    const min = Number($("#objects-score").value);
    $("#objects-score-value").textContent = min.toFixed(2);
    const shown = analyze.objects.filter((o) => o.score >= min);
    const canvas = $("#objects-canvas");
    const img = analyze.objectsImage;
    if (img) {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
      ctx.font = `${Math.max(12, line * 6)}px sans-serif`;
      ctx.textBaseline = "top";
      for (const o of shown) {
        const colour = classColour(o.class_name);
        const [x1, y1, x2, y2] = o.box;
        for (const poly of o.polygons || []) {
          ctx.beginPath();
          for (let i = 0; i < poly.length; i += 2) (i ? ctx.lineTo : ctx.moveTo).call(ctx, poly[i], poly[i + 1]);
          ctx.closePath();
          ctx.globalAlpha = 0.35;
          ctx.fillStyle = colour;
          ctx.fill();
          ctx.globalAlpha = 1;
        }
        ctx.lineWidth = line;
        ctx.strokeStyle = colour;
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        const text = `${o.class_name} ${pct(o.score)}`;
        const w = ctx.measureText(text).width + 6;
        const h = Math.max(12, line * 6) + 4;
        const ty = y1 - h >= 0 ? y1 - h : y1;
        ctx.fillStyle = colour;
        ctx.fillRect(x1, ty, w, h);
        ctx.fillStyle = "#fff";
        ctx.fillText(text, x1 + 3, ty + 2);
      }
    }
    canvas.dataset.shown = String(shown.length);
    canvas.setAttribute("aria-label", `The image with ${shown.length} object${shown.length === 1 ? "" : "s"} boxed`);
    const list = $("#objects-list");
    list.replaceChildren(
      ...analyze.objects.map((o) =>
        el(
          "li",
          { class: "object-row", dataset: { class: o.class_name, score: String(o.score) }, hidden: o.score < min },
          el("span", { class: "swatch-chip", style: `background:${classColour(o.class_name)}`, "aria-hidden": "true" }),
          el("span", { class: "score-label", text: o.class_name }),
          el("span", { class: "score-value", text: pct(o.score) }),
          el("span", { class: "muted small", text: o.box.map((v) => Math.round(v)).join(", ") })
        )
      )
    );
    if (!analyze.objects.length && !$("#objects-note").textContent) list.append(el("li", { class: "muted", text: "No object found." }));
    else if (analyze.objects.length && !shown.length) list.append(el("li", { class: "muted", text: "No object at or above this score." }));
  }

  // ------------------------------------------------------------ faces and text
  const FACE_KNOWN = "#16a34a";
  const FACE_UNKNOWN = "#f59e0b";
  const TEXT_COLOUR = "#2563eb";

  function renderMarks(res, features) {
    const card = $("#marks-card");
    analyze.faces = features.includes("faces") && Array.isArray(res.faces) ? res.faces : [];
    analyze.text = features.includes("text") && Array.isArray(res.text) ? res.text : [];
    const why = Object.entries(res.unavailable || {}).filter(([k]) => k === "faces" || k === "text").map(([k, v]) => `${k}: ${v}`);
    $("#marks-note").textContent = why.join(" ");
    $("#marks-note").hidden = !why.length;
    $("#faces-title").hidden = !features.includes("faces");
    $("#text-title").hidden = !features.includes("text");
    $("#faces-list").replaceChildren(
      ...analyze.faces.map((f) =>
        el(
          "li",
          { class: "object-row face-row", dataset: { name: f.name || "unknown" } },
          el("span", { class: "swatch-chip", style: `background:${f.name && f.name !== "unknown" ? FACE_KNOWN : FACE_UNKNOWN}`, "aria-hidden": "true" }),
          el("span", { class: "score-label", text: f.name || "unknown" }),
          el("span", { class: "score-value", text: typeof f.distance === "number" ? `distance ${fmt(f.distance, 3)}` : "" }),
          el("span", { class: "muted small", text: f.box.join(", ") })
        )
      )
    );
    if (features.includes("faces") && !analyze.faces.length && !res.unavailable?.faces) $("#faces-list").append(el("li", { class: "muted", text: "No face found." }));
    $("#text-list").replaceChildren(
      ...analyze.text.map((t) =>
        el(
          "li",
          { class: "object-row text-row", dataset: { text: t.text, line: String(t.line) } },
          el("span", { class: "score-label", text: t.text }),
          el("span", { class: "score-value", text: pct(t.confidence) })
        )
      )
    );
    if (features.includes("text") && !analyze.text.length && !res.unavailable?.text) $("#text-list").append(el("li", { class: "muted", text: "No text found." }));
    card.hidden = false;
    const img = new Image();
    img.onload = () => drawMarks(img);
    img.src = analyze.previewUrl;
  }

  /** Draw the image, the face boxes with their names and the text quadrilaterals with their strings. */
  function drawMarks(img) {
    const canvas = $("#marks-canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
    const size = Math.max(12, line * 6);
    ctx.font = `${size}px sans-serif`;
    ctx.textBaseline = "top";
    const label = (text, x, y, colour) => {
      const w = ctx.measureText(text).width + 6;
      const h = size + 4;
      const ty = y - h >= 0 ? y - h : y;
      ctx.fillStyle = colour;
      ctx.fillRect(x, ty, w, h);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x + 3, ty + 2);
    };
    ctx.lineWidth = line;
    for (const f of analyze.faces) {
      const known = f.name && f.name !== "unknown";
      const colour = known ? FACE_KNOWN : FACE_UNKNOWN;
      const [x1, y1, x2, y2] = f.box;
      ctx.strokeStyle = colour;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      label(f.name || "unknown", x1, y1, colour);
    }
    for (const t of analyze.text) {
      ctx.beginPath();
      t.quad.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.strokeStyle = TEXT_COLOUR;
      ctx.stroke();
      label(t.text, t.quad[0][0], t.quad[0][1], TEXT_COLOUR);
    }
    canvas.dataset.faces = String(analyze.faces.length);
    canvas.dataset.texts = String(analyze.text.length);
    canvas.dataset.drawn = "1";
    canvas.setAttribute("aria-label", `The image with ${analyze.faces.length} face(s) and ${analyze.text.length} piece(s) of text boxed`);
  }

  // ------------------------------------------------------------ faces view (the gallery)
  async function loadGallery() {
    try {
      const data = await api("/v1/faces/gallery");
      const people = (data && data.people) || [];
      $("#gallery-empty").hidden = people.length > 0;
      $("#gallery-table").hidden = people.length === 0;
      $("#gallery-threshold").textContent = `Same person at a distance of ${fmt(data.threshold, 3)} or less` +
        (data.calibration ? " (calibrated)." : " (dlib's documented value; not calibrated).");
      $("#gallery-calibration").textContent = calibrationLine(data.calibration);
      $("#gallery-table tbody").replaceChildren(
        ...people.map((p) =>
          el(
            "tr",
            { dataset: { person: p.name } },
            el("th", { scope: "row", text: p.name }),
            el("td", { class: "num", text: String(p.count) }),
            el("td", { text: fmtDate(p.created) }),
            el("td", {}, el("button", { type: "button", class: "btn btn-danger btn-small person-delete-btn", text: "Delete", onclick: () => deletePerson(p.name) }))
          )
        )
      );
      document.body.dataset.people = String(people.length);
    } catch (err) {
      showError(err, "Reading the face gallery");
    }
  }

  function calibrationLine(cal) {
    if (!cal) return "Not calibrated: calibrate on the enrolled faces (two people or more, one of them with two photos or more).";
    return `Calibration: threshold ${fmt(cal.threshold, 3)}, ROC AUC ${fmt(cal.auc, 3)}, EER ${fmt(cal.eer, 3)}, ` +
      `FAR ${fmt(cal.far, 3)}, FRR ${fmt(cal.frr, 3)} on ${cal.n_pairs} pairs (${cal.n_same} same, ${cal.n_different} different); ` +
      `${cal.source}, ${fmtDate(cal.created)}.`;
  }

  async function calibrateGallery() {
    const status = $("#calibrate-status");
    status.textContent = "Calibrating…";
    status.classList.remove("inline-error");
    $("#calibrate-btn").disabled = true;
    try {
      const res = await api("/v1/faces/calibrate", { method: "POST" });
      status.textContent = `Threshold ${fmt(res.previous_threshold, 3)} → ${fmt(res.threshold, 3)}.`;
      status.dataset.threshold = String(res.threshold);
      await loadGallery();
    } catch (err) {
      status.textContent = err instanceof Error ? err.message : String(err);
      status.classList.add("inline-error");
    } finally {
      $("#calibrate-btn").disabled = false;
    }
  }

  async function deletePerson(name) {
    if (!(await confirmDialog(`Delete “${name}” and every face of them from the gallery?`))) return;
    try {
      await api(`/v1/faces/gallery/${encodeURIComponent(name)}`, { method: "DELETE" });
      await loadGallery();
    } catch (err) {
      showError(err, "Deleting a person");
    }
  }

  async function enrollPerson(ev) {
    ev.preventDefault();
    const name = $("#enroll-name").value.trim();
    const files = Array.from($("#enroll-files").files);
    if (!name || !files.length) {
      showError(new Error("Give the person's name and at least one photo of them."));
      return;
    }
    const fd = new FormData();
    fd.append("name", name);
    for (const f of files) fd.append("files", f, f.name);
    const status = $("#enroll-status");
    status.textContent = "Enrolling…";
    $("#enroll-btn").disabled = true;
    $("#enroll-refused").replaceChildren();
    clearError();
    try {
      const res = await api("/v1/faces/enroll", { method: "POST", body: fd });
      status.textContent = `${res.name}: ${res.added} face(s) added, ${res.refused} photo(s) refused · ${res.count} in all`;
      status.dataset.added = String(res.added);
      $("#enroll-refused").replaceChildren(
        ...res.images.filter((r) => r.status !== "enrolled").map((r) => el("li", { class: "inline-error", text: `${r.filename}: ${r.reason}` }))
      );
      $("#enroll-files").value = "";
      await loadGallery();
    } catch (err) {
      status.textContent = "";
      showError(err, "Enrolling");
    } finally {
      $("#enroll-btn").disabled = false;
    }
  }

  function swatchList(colors) {
    return el(
      "ul",
      { class: "swatches" },
      colors.map((c) => {
        const frac = Number(c.fraction) || 0;
        return el(
          "li",
          { class: "swatch", dataset: { hex: c.hex } },
          el("span", { class: "swatch-chip", style: `background:${c.hex}`, "aria-hidden": "true" }),
          el(
            "span",
            { class: "swatch-meta" },
            el("span", { class: "swatch-name", text: c.name || "" }),
            el("code", { class: "swatch-hex", text: c.hex }),
            el("span", { class: "bar" }, el("span", { class: "bar-fill", style: `width:${(frac * 100).toFixed(1)}%;background:${c.hex}` })),
            el("span", { class: "swatch-pct", text: pct(frac) })
          )
        );
      })
    );
  }

  function renderColors(colors) {
    $("#colors").replaceChildren(...swatchList(colors).children);
    $("#colors-card").hidden = false;
  }

  const QUALITY_HELP = {
    brightness: "mean luminance, 0 (black) to 1 (white)",
    contrast: "spread of luminance (RMS), 0 to ~0.5",
    sharpness: "variance of the Laplacian: higher is sharper",
    noise_sigma: "estimated noise standard deviation (grey levels)",
    width: "pixels",
    height: "pixels",
  };
  function renderQuality(q) {
    const rows = Object.entries(q).map(([k, v]) =>
      el(
        "tr",
        { dataset: { key: k } },
        el("th", { scope: "row", text: k.replace(/_/g, " ") }),
        el("td", { class: "num quality-value", text: typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v) }),
        el("td", { class: "muted small", text: QUALITY_HELP[k] || "" })
      )
    );
    $("#quality tbody").replaceChildren(...rows);
    $("#quality-card").hidden = false;
  }

  function renderLabels(res) {
    // labels: the general ImageNet labeller's; models: custom models asked for or marked general;
    // unavailable.labels: why there are no general labels (its weights are not on the server).
    const nodes = [];
    if (Array.isArray(res.labels)) {
      nodes.push(el("div", { class: "label-model", dataset: { model: "imagenet" } }, el("h3", { text: "ImageNet" }), scoreList(res.labels)));
    }
    for (const [model, items] of Object.entries(res.models || {})) {
      nodes.push(el("div", { class: "label-model", dataset: { model } }, el("h3", { text: model }), scoreList(items)));
    }
    const why = res.unavailable && res.unavailable.labels;
    if (why) nodes.push(el("p", { class: "muted small labels-unavailable", text: why }));
    if (!nodes.length) nodes.push(el("p", { class: "muted", text: "No labels." }));
    $("#labels").replaceChildren(...nodes);
    $("#labels-card").hidden = false;
  }

  function opCard(name) {
    const card = el(
      "figure",
      { class: "op-result", dataset: { op: name, state: "running" } },
      el("figcaption", {}, el("strong", { text: name }), " ", el("span", { class: "muted small op-state", text: "running…" })),
      el(
        "div",
        { class: "pair" },
        el("div", { class: "pair-item" }, el("img", { src: analyze.previewUrl, alt: "Original image" }), el("span", { class: "small muted", text: "original" })),
        el("div", { class: "pair-item op-output" }, el("div", { class: "spinner", "aria-hidden": "true" }))
      )
    );
    $("#op-results").append(card);
    $("#op-results-card").hidden = false;
    return card;
  }

  /** JSON results of an op: colours as swatches, flat objects as a table, anything else as JSON text. */
  function renderData(res) {
    const isScalar = (v) => v === null || ["number", "string", "boolean"].includes(typeof v);
    if (Array.isArray(res) && res.length && res.every((c) => c && typeof c.hex === "string")) return swatchList(res);
    if (res && typeof res === "object" && !Array.isArray(res) && Object.values(res).every(isScalar)) {
      return el("div", { class: "op-data" }, kvTable(res));
    }
    return el("pre", { class: "json", text: typeof res === "string" ? res : JSON.stringify(res, null, 2) });
  }

  function opOptions(name) {
    const q = {};
    for (const input of $$(`.op-option-input[data-op="${CSS.escape(name)}"]`)) {
      if (input.value.trim() !== "") q[input.dataset.option] = input.value.trim();
    }
    return q;
  }

  async function runOp(name, file) {
    const card = opCard(name);
    const out = $(".op-output", card);
    const state = $(".op-state", card);
    const fd = new FormData();
    fd.append("file", file, file.name);
    const t0 = performance.now();
    try {
      const res = await api(`/v1/ops/${encodeURIComponent(name)}`, { method: "POST", body: fd, query: opOptions(name) });
      const ms = Math.round(performance.now() - t0);
      if (res instanceof Blob) {
        const url = URL.createObjectURL(res);
        analyze.resultUrls.push(url);
        out.replaceChildren(el("img", { src: url, alt: `Result of ${name}`, class: "op-image" }), el("span", { class: "small muted", text: name }));
      } else {
        out.replaceChildren(renderData(res));
      }
      card.dataset.state = "done";
      state.textContent = `${ms} ms`;
    } catch (err) {
      card.dataset.state = "error";
      state.textContent = "failed";
      out.replaceChildren(el("p", { class: "inline-error op-error", role: "alert", text: err.message }));
    }
  }

  /** Run async jobs with at most `limit` in flight (the server caps concurrent requests). */
  async function pool(tasks, limit) {
    const queue = tasks.slice();
    const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
      while (queue.length) await queue.shift()();
    });
    await Promise.all(workers);
  }

  async function runAnalyze(ev) {
    ev.preventDefault();
    if (analyze.running) return;
    const file = analyze.file;
    const status = $("#analyze-status");
    if (!file) {
      showError(new Error("Choose or drop an image first."));
      return;
    }
    const features = $$('#analyze-form input[name="features"]:checked').map((i) => i.value);
    const ops = $$(".op-check:checked").map((i) => i.value);
    if (!features.length && !ops.length) {
      showError(new Error("Choose at least one feature or operation to run."));
      return;
    }
    clearError();
    clearResults();
    analyze.running = true;
    $("#analyze-btn").disabled = true;
    $("#analyze-btn").setAttribute("aria-busy", "true");
    status.textContent = "Running…";
    const t0 = performance.now();
    const tasks = [];
    let failed = 0;
    if (features.length) {
      tasks.push(async () => {
        const fd = new FormData();
        fd.append("file", file, file.name);
        const nColors = $("#n-colors").value;
        try {
          const res = await api("/v1/analyze", {
            method: "POST",
            body: fd,
            query: {
              features: features.join(","),
              n_colors: features.includes("colors") ? nColors : undefined,
              threshold: features.includes("objects") ? OBJECTS_FLOOR : undefined,
            },
          });
          if (res.colors) renderColors(res.colors);
          if (res.quality) renderQuality(res.quality);
          if (features.includes("labels")) renderLabels(res);
          if (features.includes("objects")) renderObjects(res);
          if (features.includes("faces") || features.includes("text")) renderMarks(res, features);
        } catch (err) {
          failed += 1;
          showError(err, "Analyze");
        }
      });
    }
    for (const op of ops) tasks.push(() => runOp(op, file));
    try {
      await pool(tasks, 2);
    } finally {
      analyze.running = false;
      $("#analyze-btn").disabled = false;
      $("#analyze-btn").removeAttribute("aria-busy");
      const opErrors = $$('.op-result[data-state="error"]').length;
      const ms = Math.round(performance.now() - t0);
      status.textContent =
        failed || opErrors ? `Finished with ${failed + opErrors} error(s) in ${ms} ms.` : `Done in ${ms} ms.`;
    }
  }

  // ------------------------------------------------------------ models
  const NOT_SCORES = new Set(["n", "best_epoch", "epochs_run", "epochs", "support"]);
  function metricSummary(metrics) {
    if (!metrics || typeof metrics !== "object") return "—";
    const prefer = ["accuracy", "balanced_accuracy", "macro_f1", "test_accuracy", "val_accuracy", "top1", "val_loss"];
    const rank = (k) => (prefer.indexOf(k) < 0 ? 99 : prefer.indexOf(k));
    const keys = Object.keys(metrics).filter(
      (k) => typeof metrics[k] === "number" && !NOT_SCORES.has(k) && !k.endsWith("_seconds")
    );
    keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const shown = keys.slice(0, 3).map((k) => `${k.replace(/_/g, " ")} ${fmt(metrics[k], 3)}`);
    if (!shown.length) return "—";
    const where = typeof metrics.split === "string" ? `${metrics.split}${typeof metrics.n === "number" ? ` (n=${metrics.n})` : ""}: ` : "";
    return where + shown.join(" · ");
  }

  async function loadModels() {
    const tbody = $("#models-table tbody");
    try {
      const data = await api("/v1/models");
      const models = (data && data.models) || [];
      $("#models-empty").hidden = models.length > 0;
      $("#models-table").hidden = models.length === 0;
      tbody.replaceChildren(
        ...models.map((m) => {
          const classes = m.classes || [];
          return el(
            "tr",
            { dataset: { model: m.name } },
            el("th", { scope: "row" }, el("button", { type: "button", class: "link model-details-btn", text: m.name, onclick: () => showModel(m.name) })),
            el("td", { text: m.task || "—" }),
            el("td", { title: classes.join(", ") }, `${classes.length}: `, el("span", { class: "muted", text: classes.slice(0, 4).join(", ") + (classes.length > 4 ? ", …" : "") })),
            el("td", { class: "small", text: metricSummary(m.metrics) }),
            el("td", { class: "small", text: fmtDate(m.created) }),
            el("td", {}, el("span", { class: `badge badge-${m.source || "none"}`, text: m.source || "—" })),
            el(
              "td",
              { class: "row-actions" },
              el("button", { type: "button", class: "btn btn-small model-details-btn", "aria-label": `Details of ${m.name}`, text: "Details", onclick: () => showModel(m.name) }),
              el("button", { type: "button", class: "btn btn-small btn-danger model-delete-btn", "aria-label": `Delete ${m.name}`, text: "Delete", onclick: () => deleteModel(m.name) })
            )
          );
        })
      );
    } catch (err) {
      showError(err, "Listing models");
    }
  }

  function kvTable(obj) {
    return el(
      "table",
      { class: "kv" },
      el(
        "tbody",
        {},
        Object.entries(obj).map(([k, v]) =>
          el("tr", { dataset: { key: k } }, el("th", { scope: "row", text: k.replace(/_/g, " ") }), el("td", { class: "num", text: v !== null && typeof v === "object" ? JSON.stringify(v) : fmt(v) }))
        )
      )
    );
  }

  async function showModel(name) {
    try {
      const m = await api(`/v1/models/${encodeURIComponent(name)}`);
      const box = $("#model-details");
      $("#model-details-title").textContent = m.name;
      const dl = el(
        "dl",
        { class: "details" },
        [
          ["Task", m.task],
          ["Architecture", m.architecture],
          ["Input shape", Array.isArray(m.input_shape) ? m.input_shape.join(" × ") : m.input_shape],
          ["Source", m.source],
          ["Created", fmtDate(m.created)],
          ["Run folder", m.run_dir],
        ].flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v === undefined || v === null ? "—" : String(v) })])
      );
      const classes = el("ul", { class: "chips" }, (m.classes || []).map((c) => el("li", { class: "chip", text: c })));
      $("#model-details-body").replaceChildren(
        dl,
        el("h3", { text: `Classes (${(m.classes || []).length})` }),
        classes,
        el("h3", { text: "Metrics" }),
        m.metrics && Object.keys(m.metrics).length ? kvTable(m.metrics) : el("p", { class: "muted", text: "No metrics recorded." })
      );
      box.hidden = false;
      box.dataset.model = m.name;
      $("#model-details-close").focus();
    } catch (err) {
      showError(err, `Model ${name}`);
    }
  }

  async function deleteModel(name) {
    const ok = await confirmDialog(`Delete the model “${name}”? Files the service trained are removed; a run folder you registered with --model is kept.`);
    if (!ok) return;
    try {
      await api(`/v1/models/${encodeURIComponent(name)}`, { method: "DELETE" });
      if ($("#model-details").dataset.model === name) $("#model-details").hidden = true;
      await loadModels();
    } catch (err) {
      showError(err, `Deleting ${name}`);
    }
  }

  // ------------------------------------------------------------ training
  const train = { jobId: null, timer: null, lastStatus: null, pollErrors: 0, tryFile: null, tryUrl: null, model: null };

  async function startTraining(ev) {
    ev.preventDefault();
    const file = $("#train-file").files[0];
    const errBox = $("#train-error");
    errBox.hidden = true;
    if (!file) {
      errBox.textContent = "Choose a .zip dataset first.";
      errBox.dataset.source = "submit";
      errBox.hidden = false;
      $("#train-file").focus();
      return;
    }
    const fd = new FormData();
    fd.append("archive", file, file.name);
    // The time budget is the main field; the advanced ones are sent only when filled in (else the server's recipe decides).
    const fields = { name: "#train-name", minutes: "#train-minutes", task: "#train-task", architecture: "#train-arch", epochs: "#train-epochs", img_size: "#train-img-size", batch: "#train-batch", lr: "#train-lr" };
    for (const [k, sel] of Object.entries(fields)) {
      const v = $(sel).value.trim();
      if (v !== "") fd.append(k, v);
    }
    const btn = $("#train-btn");
    btn.disabled = true;
    btn.setAttribute("aria-busy", "true");
    clearError();
    try {
      const job = await api("/v1/trainings", { method: "POST", body: fd });
      watchJob(job);
      loadTrainings();
    } catch (err) {
      errBox.textContent = err.message;
      errBox.dataset.source = "submit"; // stays until the next submission or another job is shown, whatever the polls say
      errBox.hidden = false;
      setStatus("failed to start", "error");
    } finally {
      btn.disabled = false;
      btn.removeAttribute("aria-busy");
    }
  }

  function setStatus(text, key) {
    const s = $("#train-status");
    s.textContent = text;
    s.dataset.status = key || text;
  }

  function rememberJob(id) {
    try {
      if (id) sessionStorage.setItem(JOB_STORAGE, id);
      else sessionStorage.removeItem(JOB_STORAGE);
    } catch {
      /* storage disabled: a reload shows the newest job instead */
    }
  }
  function rememberedJob() {
    try {
      return sessionStorage.getItem(JOB_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function watchJob(job) {
    clearTimeout(train.timer);
    train.jobId = job.id;
    rememberJob(job.id);
    train.lastStatus = null;
    train.pollErrors = 0;
    $("#train-error").hidden = true;
    $("#train-error").dataset.source = "";
    $("#try-section").hidden = true;
    $("#try-results").replaceChildren();
    renderJob(job);
    if (!TERMINAL.has(job.status)) train.timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    const id = train.jobId;
    if (!id) return;
    try {
      const job = await api(`/v1/trainings/${encodeURIComponent(id)}`);
      if (id !== train.jobId) return; // another job was picked meanwhile
      train.pollErrors = 0;
      renderJob(job);
      if (!TERMINAL.has(job.status)) train.timer = setTimeout(poll, POLL_MS);
    } catch (err) {
      if (id !== train.jobId) return;
      train.pollErrors += 1;
      const errBox = $("#train-error");
      errBox.textContent = `Could not read the job's state: ${err.message}` + (train.pollErrors < 5 && err.status !== 404 ? " Retrying…" : "");
      errBox.hidden = false;
      if (err.status !== 404 && err.status !== 401 && train.pollErrors < 5) train.timer = setTimeout(poll, POLL_MS * 2);
    }
  }

  function renderJob(job) {
    const panel = $("#train-job");
    panel.dataset.renders = String(Number(panel.dataset.renders || 0) + 1); // each poll's answer drawn (tests wait on it)
    $("#train-job-id").textContent = job.name ? `${job.name} · ${job.id}` : job.id;
    setStatus(job.status, job.status);
    const progress = Math.max(0, Math.min(1, Number(job.progress) || (job.status === "succeeded" ? 1 : 0)));
    const bar = $("#train-progress");
    bar.value = progress;
    bar.setAttribute("aria-valuetext", `${Math.round(progress * 100)}%`);
    const metrics = job.metrics || [];
    const epochs = job.epochs || (job.options && job.options.epochs);
    const done = metrics.length;
    $("#train-epoch").textContent = progressText(job, progress, epochs, done);
    renderBackbone(job);
    renderFinal(job);
    $("#train-cancel").hidden = TERMINAL.has(job.status);
    const errBox = $("#train-error");
    if (job.error) {
      errBox.textContent = job.error;
      errBox.dataset.source = "job";
      errBox.hidden = false;
    } else if (errBox.dataset.source !== "submit") {
      errBox.hidden = true;
    }
    drawChart(metrics, epochs);
    renderMetricsTable(metrics);
    if (job.status === "succeeded" && job.model) showTry(job.model, (job.dataset && job.dataset.task) || "classify");
    updateTrainingRow(job);
    if (job.status !== train.lastStatus) {
      if (train.lastStatus !== null && TERMINAL.has(job.status)) refreshLabelsHint();
      train.lastStatus = job.status;
    }
  }

  const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

  /** "· 1:12 of 3:00 · epoch 2 · 40%" under a time budget, "· epoch 2 of 5 · 40%" without one. */
  function progressText(job, progress, epochs, done) {
    const parts = [];
    if (job.minutes) {
      const budget = clock(job.minutes * 60);
      parts.push(typeof job.elapsed_s === "number" ? `${clock(job.elapsed_s)} of ${budget}` : `budget ${budget}`);
      if (done) parts.push(epochs ? `epoch ${Math.min(done, epochs)} of at most ${epochs}` : `epoch ${done}`);
    } else if (epochs) {
      parts.push(`epoch ${Math.min(done, epochs)} of ${epochs}`);
    }
    parts.push(`${Math.round(progress * 100)}%`);
    return "· " + parts.join(" · ");
  }

  /** Which model the job trains and why (a pretrained backbone from local weights, or a small CNN). */
  function renderBackbone(job) {
    const b = job.backbone || {};
    const box = $("#train-backbone");
    box.hidden = !b.reason;
    if (!b.reason) return;
    $("#train-backbone-model").textContent = b.model || "auto";
    $("#train-backbone-choice").textContent = b.choice ? `: ${b.choice}` : "";
    $("#train-backbone-reason").textContent = `(${b.reason})`;
    box.dataset.model = b.model || "";
    box.dataset.pretrained = b.pretrained === true ? "true" : b.pretrained === false ? "false" : "";
  }

  /** The final held-out accuracy (a detector: its mAP50), naming its split and its size, and the baseline verdict. */
  function renderFinal(job) {
    const f = job.status === "succeeded" ? job.final : null;
    const score = f && (typeof f.accuracy === "number" ? f.accuracy : f.map50);
    const box = $("#train-final");
    box.hidden = !(f && typeof score === "number");
    if (box.hidden) return;
    $("#train-final-what").textContent = typeof f.accuracy === "number" ? "Held-out accuracy" : "Held-out mAP50";
    $("#train-final-acc").textContent = pct(score);
    $("#train-final-split").textContent = f.split === "val"
      ? `on the val split (n = ${fmt(f.n)}), which chose the best epoch: optimistic`
      : `on the ${f.split || "held-out"} split (n = ${fmt(f.n)}): images never used for training or choosing the epoch`;
    box.dataset.split = f.split || "";
    const verdict = $("#train-final-verdict");
    verdict.textContent = f.verdict || "";
    verdict.dataset.beats = f.beats_baselines === false ? "false" : "true";
  }

  function valAcc(m) {
    for (const k of ["val_accuracy", "val_acc", "accuracy", "val_map50"]) if (typeof m[k] === "number") return m[k];
    return null;
  }

  function renderMetricsTable(metrics) {
    const table = $("#train-metrics");
    table.hidden = metrics.length === 0;
    $("tbody", table).replaceChildren(
      ...metrics.map((m) =>
        el("tr", {}, el("td", { class: "num", text: fmt(m.epoch) }), el("td", { class: "num", text: fmt(m.train_loss) }), el("td", { class: "num", text: fmt(m.val_loss) }), el("td", { class: "num", text: valAcc(m) === null ? "—" : pct(valAcc(m)) }))
      )
    );
  }

  /** Line chart in SVG: losses on the left axis, validation accuracy (0..1) on the right. */
  function drawChart(metrics, epochs) {
    const svg = $("#train-chart");
    const NS = "http://www.w3.org/2000/svg";
    const s = (tag, attrs = {}, text) => {
      const n = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      return n;
    };
    const W = 560, H = 260, L = 52, R = 52, T = 14, B = 34;
    const title = $("#train-chart-title");
    svg.replaceChildren(title);
    const pw = W - L - R, ph = H - T - B;
    svg.append(s("rect", { x: L, y: T, width: pw, height: ph, class: "plot-bg" }));
    const pts = metrics.filter((m) => typeof m.epoch === "number");
    if (!pts.length) {
      svg.append(s("text", { x: L + pw / 2, y: T + ph / 2, class: "chart-empty", "text-anchor": "middle" }, "Waiting for the first epoch…"));
      svg.dataset.points = "0";
      return;
    }
    const xs = pts.map((m) => m.epoch);
    const x0 = Math.min(...xs);
    let x1 = Math.max(Math.max(...xs), x0 + (epochs ? epochs - 1 : 0));
    if (x1 === x0) x1 = x0 + 1;
    const losses = pts.flatMap((m) => [m.train_loss, m.val_loss]).filter((v) => typeof v === "number" && Number.isFinite(v));
    let yMax = losses.length ? Math.max(...losses) : 1;
    yMax = niceCeil(yMax * 1.05 || 1);
    const X = (e) => L + ((e - x0) / (x1 - x0)) * pw;
    const YL = (v) => T + ph - (v / yMax) * ph;
    const YR = (v) => T + ph - v * ph;

    // grid + left/right ticks
    for (let i = 0; i <= 4; i++) {
      const y = T + (ph * i) / 4;
      svg.append(s("line", { x1: L, x2: L + pw, y1: y, y2: y, class: "grid" }));
      svg.append(s("text", { x: L - 6, y: y + 4, class: "tick", "text-anchor": "end" }, fmt(yMax * (1 - i / 4), 2)));
      svg.append(s("text", { x: L + pw + 6, y: y + 4, class: "tick tick-acc", "text-anchor": "start" }, `${Math.round(100 * (1 - i / 4))}%`));
    }
    const span = x1 - x0;
    const step = Math.max(1, Math.ceil(span / 10));
    for (let e = x0; e <= x1; e += step) {
      svg.append(s("text", { x: X(e), y: T + ph + 16, class: "tick", "text-anchor": "middle" }, String(e)));
    }
    svg.append(s("text", { x: L + pw / 2, y: H - 4, class: "axis-label", "text-anchor": "middle" }, "epoch"));
    svg.append(s("text", { x: 12, y: T + ph / 2, class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 12 ${T + ph / 2})` }, "loss"));
    svg.append(s("text", { x: W - 8, y: T + ph / 2, class: "axis-label", "text-anchor": "middle", transform: `rotate(90 ${W - 8} ${T + ph / 2})` }, "accuracy"));

    const series = [
      { key: "train_loss", cls: "line-train-loss", get: (m) => m.train_loss, y: YL, label: (v) => fmt(v) },
      { key: "val_loss", cls: "line-val-loss", get: (m) => m.val_loss, y: YL, label: (v) => fmt(v) },
      { key: "val_accuracy", cls: "line-val-acc", get: valAcc, y: YR, label: pct },
    ];
    for (const ser of series) {
      const p = pts.map((m) => [m.epoch, ser.get(m)]).filter(([, v]) => typeof v === "number" && Number.isFinite(v));
      if (!p.length) continue;
      const g = s("g", { class: `series ${ser.cls}`, "data-series": ser.key });
      g.append(s("polyline", { points: p.map(([e, v]) => `${X(e).toFixed(1)},${ser.y(v).toFixed(1)}`).join(" "), fill: "none" }));
      for (const [e, v] of p) {
        const c = s("circle", { cx: X(e).toFixed(1), cy: ser.y(v).toFixed(1), r: 3.5 });
        c.append(s("title", {}, `epoch ${e}: ${ser.key.replace("_", " ")} ${ser.label(v)}`));
        g.append(c);
      }
      svg.append(g);
    }
    svg.dataset.points = String(pts.length);
  }

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  async function cancelJob() {
    const id = train.jobId;
    if (!id) return;
    const ok = await confirmDialog("Cancel this training? Its progress is lost.", "Cancel training");
    if (!ok) return;
    try {
      const job = await api(`/v1/trainings/${encodeURIComponent(id)}`, { method: "DELETE" });
      clearTimeout(train.timer);
      if (job) renderJob(job);
      else {
        setStatus("removed", "cancelled");
        $("#train-cancel").hidden = true;
        rememberJob(null);
      }
      loadTrainings();
    } catch (err) {
      showError(err, "Cancelling the training");
    }
  }

  function trainingCells(j) {
    return [
      el("td", {}, el("span", { class: "status", dataset: { status: j.status }, text: j.status })),
      el("td", { class: "num", text: `${Math.round(100 * (Number(j.progress) || 0))}%` }),
    ];
  }

  /** Keep the watched job's row in the Trainings table in step with what the poll sees. */
  function updateTrainingRow(job) {
    const row = $(`#trainings-table tr[data-job="${CSS.escape(String(job.id))}"]`);
    if (!row) {
      if (!$("#view-train").hidden && job.status !== train.lastStatus) loadTrainings();
      return;
    }
    const [statusCell, progressCell] = trainingCells(job);
    row.children[1].replaceWith(statusCell);
    row.children[2].replaceWith(progressCell);
  }

  async function loadTrainings() {
    try {
      const data = await api("/v1/trainings");
      const jobs = (data && data.trainings) || [];
      $("#trainings-empty").hidden = jobs.length > 0;
      $("#trainings-table").hidden = jobs.length === 0;
      $("#trainings-table tbody").replaceChildren(
        ...jobs.map((j) =>
          el(
            "tr",
            { dataset: { job: j.id } },
            el("th", { scope: "row", text: j.name || j.id }),
            trainingCells(j),
            el("td", { class: "small", text: fmtDate(j.created) }),
            el("td", { class: "row-actions" }, el("button", { type: "button", class: "btn btn-small", text: "Show", "aria-label": `Show training ${j.name || j.id}`, onclick: () => watchJob(j) }))
          )
        )
      );
      // After a reload the Job panel shows again what it showed (the job remembered for this tab), else the
      // newest job still queued or running, else the newest job: finished jobs too, with their curves and error.
      if (!train.jobId && jobs.length) {
        const kept = rememberedJob();
        watchJob(jobs.find((j) => j.id === kept) || jobs.find((j) => !TERMINAL.has(j.status)) || jobs[0]);
      }
    } catch (err) {
      showError(err, "Listing trainings");
    }
  }

  // --------------------------------------------------------- try it
  function showTry(model, task = "classify") {
    const sec = $("#try-section");
    train.modelTask = task;
    if (train.model !== model) {
      train.model = model;
      $("#try-results").replaceChildren();
    }
    $("#try-model").textContent = model;
    sec.dataset.model = model;
    sec.hidden = false;
  }

  function setupTry() {
    const input = $("#try-file");
    input.addEventListener("change", () => {
      const f = input.files[0];
      train.tryFile = f || null;
      $("#try-btn").disabled = !f;
      if (!f) return;
      if (train.tryUrl) URL.revokeObjectURL(train.tryUrl);
      train.tryUrl = URL.createObjectURL(f);
      const img = $("#try-preview");
      img.src = train.tryUrl;
      img.alt = `Preview of ${f.name}`;
      img.hidden = false;
    });
    $("#try-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = train.tryFile;
      const model = train.model;
      if (!f || !model) return;
      const out = $("#try-results");
      out.replaceChildren(el("p", { class: "muted", text: "Running…" }));
      if (train.modelTask === "detect") {
        const fd = new FormData();
        fd.append("file", f, f.name);
        try {
          const res = await api("/v1/detect", { method: "POST", body: fd, query: { model, threshold: 0.25 } });
          const rows = (res.objects || []).map((o) => el("li", { class: "object-row", dataset: { class: o.class_name } },
            el("span", { class: "score-label", text: o.class_name }), el("span", { class: "score-value", text: pct(o.score) }),
            el("span", { class: "muted small", text: o.box.map((v) => Math.round(v)).join(", ") })));
          out.replaceChildren(el("div", { class: "label-model", dataset: { model } }, el("h3", { text: `${model} on ${f.name}` }),
            rows.length ? el("ul", { class: "objects-list" }, rows) : el("p", { class: "muted", text: "No object found." })));
        } catch (err) {
          out.replaceChildren(el("p", { class: "inline-error", role: "alert", text: err.message }));
        }
        return;
      }
      const fd = new FormData();
      fd.append("files", f, f.name);
      try {
        const res = await api("/v1/classify", { method: "POST", body: fd, query: { model, top_k: 5 } });
        const r = (res.results || [])[0];
        if (!r) throw new Error("The server returned no result for the image.");
        if (r.error) {
          out.replaceChildren(el("p", { class: "inline-error", role: "alert", text: `${r.image}: ${r.error}` }));
          return;
        }
        const items = (r.models || {})[model] || [];
        out.replaceChildren(el("div", { class: "label-model", dataset: { model } }, el("h3", { text: `${model} on ${r.image || f.name}` }), scoreList(items)));
      } catch (err) {
        out.replaceChildren(el("p", { class: "inline-error", role: "alert", text: err.message }));
      }
    });
  }

  // ------------------------------------------------------------ search (collections)
  const search = { collections: [], thumbUrls: [], previewUrl: null, busy: false };

  const currentCollection = () => search.collections.find((c) => c.id === $("#coll-select").value) || null;

  function collectionLabel(c) {
    return `${c.name} · ${c.model} · ${c.count} image${c.count === 1 ? "" : "s"}`;
  }

  function renderCollections(selectId) {
    const select = $("#coll-select");
    const keep = selectId || select.value;
    select.replaceChildren(
      ...(search.collections.length
        ? search.collections.map((c) => el("option", { value: c.id, text: collectionLabel(c), selected: c.id === keep }))
        : [el("option", { value: "", text: "no collection yet: create one below" })])
    );
    updateCollectionState();
  }

  function updateCollectionState() {
    const c = currentCollection();
    $("#coll-info").textContent = c ? `created ${fmtDate(c.created)} · ${c.kind}` : "";
    $("#coll-delete").disabled = !c;
    $("#coll-add").disabled = !c || !$("#coll-files").files.length || search.busy;
    $("#search-btn").disabled = !c || !$("#search-file").files.length || search.busy;
    document.body.dataset.collections = String(search.collections.length);
  }

  let collectionsRequest = 0;
  async function loadCollections(selectId) {
    const mine = ++collectionsRequest;
    try {
      const [data, models] = await Promise.all([api("/v1/collections"), api("/v1/models").catch(() => null)]);
      if (mine !== collectionsRequest) return;
      search.collections = (data && data.collections) || [];
      renderCollections(selectId);
      const names = ((models && models.models) || []).filter((m) => m.task === "classify" && m.backend !== "onnxruntime");
      $("#coll-model-list").replaceChildren(el("option", { value: "phash" }), ...names.map((m) => el("option", { value: m.name })));
    } catch (err) {
      if (mine !== collectionsRequest) return;
      showError(err, "Listing collections");
    }
  }

  async function createCollection(ev) {
    ev.preventDefault();
    const name = $("#coll-name").value.trim();
    const model = $("#coll-model").value.trim() || "phash";
    if (!name) {
      showError(new Error("Give the new collection a name."));
      $("#coll-name").focus();
      return;
    }
    clearError();
    try {
      const c = await api("/v1/collections", { method: "POST", body: { name, model } });
      $("#coll-name").value = "";
      await loadCollections(c.id);
    } catch (err) {
      showError(err, "Creating the collection");
    }
  }

  async function deleteCollection() {
    const c = currentCollection();
    if (!c) return;
    if (!(await confirmDialog(`Delete the collection “${c.name}” and its ${c.count} images?`))) return;
    try {
      await api(`/v1/collections/${encodeURIComponent(c.id)}`, { method: "DELETE" });
      clearSearchResults();
      await loadCollections();
    } catch (err) {
      showError(err, "Deleting the collection");
    }
  }

  async function addImages(ev) {
    ev.preventDefault();
    const c = currentCollection();
    const files = Array.from($("#coll-files").files);
    if (!c || !files.length || search.busy) return;
    const fd = new FormData();
    for (const f of files) {
      if (/\.zip$/i.test(f.name) || f.type === "application/zip") fd.append("archive", f, f.name);
      else fd.append("files", f, f.name);
    }
    const status = $("#coll-add-status");
    search.busy = true;
    updateCollectionState();
    status.textContent = `Adding ${files.length} file${files.length === 1 ? "" : "s"}…`;
    $("#coll-add-errors").replaceChildren();
    clearError();
    try {
      const res = await api(`/v1/collections/${encodeURIComponent(c.id)}/images`, { method: "POST", body: fd });
      status.textContent = `${res.added.length} added, ${res.skipped.length} already there, ${res.errors.length} unreadable · ` +
        `${res.collection.count} images in the collection`;
      status.dataset.added = String(res.added.length);
      $("#coll-add-errors").replaceChildren(
        ...res.errors.map((e) => el("li", { class: "inline-error", text: `${e.filename}: ${e.error}` }))
      );
      $("#coll-files").value = "";
      await loadCollections(c.id);
    } catch (err) {
      status.textContent = "";
      showError(err, "Adding images");
    } finally {
      search.busy = false;
      updateCollectionState();
    }
  }

  function clearSearchResults() {
    for (const u of search.thumbUrls) URL.revokeObjectURL(u);
    search.thumbUrls = [];
    $("#search-results").replaceChildren();
    $("#search-results-card").hidden = true;
  }

  /** A thumbnail through api() (it carries the API key, which an <img src> could not). */
  async function loadThumb(img, url) {
    try {
      const blob = await api(url);
      const obj = URL.createObjectURL(blob);
      search.thumbUrls.push(obj);
      img.src = obj;
    } catch (err) {
      img.alt = `thumbnail unavailable: ${err.message}`;
    }
  }

  async function runSearch(ev) {
    ev.preventDefault();
    const c = currentCollection();
    const file = $("#search-file").files[0];
    if (!c || !file || search.busy) return;
    const fd = new FormData();
    fd.append("file", file, file.name);
    clearError();
    clearSearchResults();
    search.busy = true;
    updateCollectionState();
    const status = $("#search-status");
    $("#search-results-card").hidden = false;
    status.textContent = "searching…";
    try {
      const res = await api(`/v1/collections/${encodeURIComponent(c.id)}/search`, {
        method: "POST",
        body: fd,
        query: { top_k: $("#search-topk").value },
      });
      status.textContent = `${res.results.length} in ${Math.round(res.timings_ms.total)} ms`;
      const hits = res.results.map((r) => {
        const img = el("img", { class: "search-thumb", alt: r.filename || r.image_id });
        loadThumb(img, r.url);
        return el(
          "li",
          { class: "search-hit", dataset: { imageId: r.image_id, score: String(r.score), rank: String(r.rank) } },
          img,
          el("span", { class: "search-name small", text: r.filename || r.image_id }),
          el("span", { class: "score-value", text: r.distance === undefined ? fmt(r.score, 3) : `${r.distance} bits` })
        );
      });
      $("#search-results").replaceChildren(...(hits.length ? hits : [el("li", { class: "muted", text: "The collection is empty: add images first." })]));
    } catch (err) {
      status.textContent = "";
      showError(err, "Search");
    } finally {
      search.busy = false;
      updateCollectionState();
    }
  }

  function setupSearch() {
    $("#coll-refresh").addEventListener("click", () => loadCollections());
    $("#coll-select").addEventListener("change", () => {
      clearSearchResults();
      updateCollectionState();
    });
    $("#coll-create-form").addEventListener("submit", createCollection);
    $("#coll-delete").addEventListener("click", deleteCollection);
    $("#coll-add-form").addEventListener("submit", addImages);
    $("#coll-files").addEventListener("change", updateCollectionState);
    $("#search-form").addEventListener("submit", runSearch);
    $("#search-file").addEventListener("change", () => {
      const f = $("#search-file").files[0];
      const img = $("#search-preview");
      if (search.previewUrl) URL.revokeObjectURL(search.previewUrl);
      search.previewUrl = f ? URL.createObjectURL(f) : null;
      img.hidden = !f;
      if (f) {
        img.src = search.previewUrl;
        img.alt = `Query: ${f.name}`;
      }
      updateCollectionState();
    });
  }

  // ------------------------------------------------------------ api key
  function setupApiKey() {
    const input = $("#api-key");
    input.value = apiKey();
    $("#api-key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      try {
        if (v) localStorage.setItem(KEY_STORAGE, v);
        else localStorage.removeItem(KEY_STORAGE);
      } catch (err) {
        showError(new Error(`This browser refused to store the key (${err.message}).`));
      }
      hideAuthPrompt();
      const btn = $("#api-key-save");
      btn.textContent = v ? "Saved" : "Cleared";
      setTimeout(() => (btn.textContent = "Save"), 1500);
      loadOps();
      const active = TABS.find((t) => !$(`#view-${t}`).hidden) || "analyze";
      activateTab(active, { push: false });
    });
  }

  async function loadHealth() {
    try {
      const h = await api("/v1/health");
      if (h && h.version) $("#server-version").textContent = `v${h.version}`;
    } catch (err) {
      showError(err, "Server health");
    }
  }

  function init() {
    $("#error-close").addEventListener("click", clearError);
    $("#model-details-close").addEventListener("click", () => ($("#model-details").hidden = true));
    $("#models-refresh").addEventListener("click", loadModels);
    $("#trainings-refresh").addEventListener("click", loadTrainings);
    $("#analyze-form").addEventListener("submit", runAnalyze);
    $("#train-form").addEventListener("submit", startTraining);
    $("#train-cancel").addEventListener("click", cancelJob);
    $("#objects-score").addEventListener("input", drawObjects);
    setupApiKey();
    setupTabs();
    setupDropZone();
    setupTry();
    setupSearch();
    $("#enroll-form").addEventListener("submit", enrollPerson);
    $("#gallery-refresh").addEventListener("click", loadGallery);
    $("#calibrate-btn").addEventListener("click", calibrateGallery);
    drawChart([], 0);
    loadHealth();
    loadOps();
    activateTab(location.hash.slice(1) || "analyze", { push: false });
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
