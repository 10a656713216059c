// The event page: details, the live seat map, best available N or picked seats, then the hold.
import { api, newRequestId, query, session, streamToken } from "./api.js";
import { band, h, money, when } from "./format.js";
import { announce, navigate, requireSignIn, showError } from "./main.js";
import { AVAILABLE, STATUS_WORDS, SeatCanvas, SeatModel, legendItems } from "./seatmap.js";

const layouts = new Map();  // layout id -> SeatLayout (also cached by the browser: max-age one day)
// Measurements the browser tests read: draw time of the map, when each seat change reached the page.
const metrics = (window.tixMetrics = window.tixMetrics || { draws: [], seatChanges: {}, watchFrames: 0 });

async function layoutOf(layoutId) {
  if (!layouts.has(layoutId)) layouts.set(layoutId, api(`/v1/layouts/${encodeURIComponent(layoutId)}`));
  try { return await layouts.get(layoutId); } catch (error) { layouts.delete(layoutId); throw error; }
}

export function admissionFor(eventId) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(`tix.admission.${eventId}`) || "null");
    if (saved && saved.user === session.user && Date.parse(saved.expires) > Date.now()) return saved.token;
  } catch { /* nothing usable saved */ }
  return "";
}

export async function render(root, params, eventId) {
  const started = performance.now();
  const closers = [];
  const cleanup = () => closers.forEach((close) => close());
  const [event, map] = await Promise.all([
    api(`/v1/events/${encodeURIComponent(eventId)}`),
    api(`/v1/events/${encodeURIComponent(eventId)}/seats`),
  ]);
  const layout = await layoutOf(event.venue.layoutId);
  const model = new SeatModel(layout, map);
  let version = Number(map._headers.get("tix-feed-position") || map.version || 0);
  const [bandText, bandClass] = band(event.availabilityBand);
  const onSale = event.saleStatus === "SALE_STATUS_ON_SALE";
  const waitingRoom = event.waitingRoom && event.waitingRoom.enabled;
  const maxSeats = Math.max(1, Math.min(8, event.maxSeatsPerUser || 8));

  const summary = h("p", { class: "muted", id: "map-summary" });
  const canvas = h("canvas", { tabindex: "0", role: "img", "aria-describedby": "map-summary map-help", "data-testid": "seat-map" });
  const grid = h("div", { class: "seat-grid", role: "grid", "aria-label": "Seats of the chosen section" });
  const sectionSelect = h("select", { id: "section" },
    model.sections.map((s, i) => h("option", { value: String(i) }, `${s.name}${s.price ? " · " + money(s.price) : ""}`)));
  const quantity = h("select", { id: "quantity" }, Array.from({ length: maxSeats }, (_, i) => h("option", { value: String(i + 1), selected: i === 1 }, String(i + 1))));
  const pickedText = h("p", { "data-testid": "picked" }, "No seats picked yet.");
  const reservePicked = h("button", { type: "button", disabled: true, onclick: () => reserve({ seatIds: model.selection().map((i) => model.seatId(i)) }) }, "Reserve picked seats");
  const buy = h("section", { class: "card buy", "aria-labelledby": "buy-title" });
  let seatCanvas = null;
  let currentSection = -1;

  function updateSummary() {
    const free = model.available();
    summary.textContent = `${free.toLocaleString()} of ${model.count.toLocaleString()} seats available. Live: seats change colour as other fans reserve them.`;
    canvas.setAttribute("aria-label", `Seat map of ${event.venue.name}`);
  }

  function updatePicked() {
    const picked = model.selection();
    pickedText.textContent = picked.length
      ? `Picked: ${picked.map((i) => { const r = model.rowOf(i); return `${model.sections[r.section].name} row ${r.label} seat ${r.first + i - r.start}`; }).join("; ")}`
      : "No seats picked yet.";
    reservePicked.disabled = picked.length === 0 || !onSale;
    reservePicked.textContent = picked.length ? `Reserve ${picked.length} picked seat${picked.length === 1 ? "" : "s"}` : "Reserve picked seats";
  }

  function toggle(i) {
    if (model.status[i] !== AVAILABLE) { announce(`That seat is ${STATUS_WORDS[model.status[i]]}.`); return; }
    if (!model.selected[i] && model.selection().length >= maxSeats) { announce(`At most ${maxSeats} seats per fan.`); return; }
    model.selected[i] = model.selected[i] ? 0 : 1;
    updatePicked();
    paintSeat(i);
    seatCanvas.redraw();
  }

  function seatButtonLabel(i) {
    const r = model.rowOf(i), section = model.sections[r.section];
    const state = model.selected[i] ? "selected" : STATUS_WORDS[model.status[i]];
    return `Row ${r.label} seat ${r.first + i - r.start}, ${state}${section.price ? ", " + money(section.price) : ""}`;
  }

  function paintSeat(i) {
    const button = grid.querySelector(`[data-seat="${i}"]`);
    if (!button) return;
    const state = model.selected[i] ? "selected" : ["available", "reserved", "booked"][model.status[i]];
    button.className = `seat ${state}`;
    button.setAttribute("aria-label", seatButtonLabel(i));
    button.setAttribute("aria-pressed", String(Boolean(model.selected[i])));
    button.setAttribute("aria-disabled", String(model.status[i] !== AVAILABLE));
  }

  function showSection(s, { zoom = true } = {}) {
    currentSection = s;
    sectionSelect.value = String(s);
    const section = model.sections[s];
    const rows = section.rows.map((r) => model.rows[r]);
    grid.replaceChildren(...rows.map((row) => h("div", { class: "seat-row", role: "row" },
      h("span", { class: "row-label", role: "rowheader" }, row.label),
      Array.from({ length: row.length }, (_, k) => {
        const i = row.start + k;
        return h("button", { type: "button", class: "seat", role: "gridcell", tabindex: "-1", "data-seat": String(i),
          "data-seat-id": model.seatId(i), onclick: () => toggle(i) }, String(row.first + k));
      }))));
    for (let i = section.start; i < section.end; i++) paintSeat(i);
    const first = grid.querySelector(".seat.available") || grid.querySelector(".seat");
    if (first) first.tabIndex = 0;
    if (zoom && seatCanvas) seatCanvas.focusOn(section.start, section.end);
  }

  // Arrow keys move between seats (a roving tab stop); Enter or Space picks.
  grid.addEventListener("keydown", (event) => {
    const current = event.target.closest(".seat");
    if (!current) return;
    const row = current.parentElement, seats = [...row.querySelectorAll(".seat")], k = seats.indexOf(current);
    let next = null;
    if (event.key === "ArrowRight") next = seats[k + 1];
    else if (event.key === "ArrowLeft") next = seats[k - 1];
    else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const other = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
      if (other) { const list = other.querySelectorAll(".seat"); next = list[Math.min(k, list.length - 1)]; }
    } else if (event.key === "Home") next = seats[0];
    else if (event.key === "End") next = seats[seats.length - 1];
    if (!next) return;
    event.preventDefault();
    current.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  });

  async function reserve(choice) {
    if (!requireSignIn()) return;
    const admissionToken = waitingRoom ? admissionFor(eventId) : "";
    if (waitingRoom && !admissionToken) { navigate(`#/events/${eventId}/queue`); return; }
    // A hold only: the payment is made by :checkout when the fan presses Pay.
    const body = { eventId: String(eventId), requestId: newRequestId(), admissionToken: admissionToken || undefined, deferPayment: true, ...choice };
    buy.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      const booking = await api("/v1/bookings:reserve", { method: "POST", body });
      navigate(`#/checkout/${booking.bookingId}`);
    } catch (error) {
      showError(error);
      buy.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      updatePicked();
    }
  }

  // The buy panel.
  buy.append(h("h2", { id: "buy-title" }, "Get tickets"));
  if (!onSale) {
    buy.append(h("p", {}, event.saleStatus === "SALE_STATUS_SCHEDULED" ? `On sale ${when(event.saleStartTime, event.venue.timeZone)}.` : "Tickets are not on sale."));
  } else if (waitingRoom && !admissionFor(eventId)) {
    buy.append(
      h("p", {}, "This on-sale has a waiting room: join the queue, and the seat map opens for you when it is your turn."),
      h("a", { class: "button", href: `#/events/${eventId}/queue`, "data-testid": "join-queue" }, "Join the queue"),
    );
  } else {
    buy.append(
      waitingRoom ? h("p", { class: "ok" }, "It is your turn: choose your seats.") : "",
      h("label", { for: "quantity" }, "Best available seats", quantity),
      h("p", {}, h("button", { type: "button", "data-testid": "best-available", onclick: () =>
        reserve({ bestAvailable: { quantity: Number(quantity.value) } }) }, "Find best seats")),
      h("hr"),
      h("p", { class: "muted" }, "Or pick seats: on the map, or with the keyboard in the section's seat list below."),
      pickedText, reservePicked,
    );
  }

  const legend = h("ul", { class: "legend", "aria-label": "Legend" }, legendItems().map(([svg, label]) => {
    const item = h("li", {}, label);
    item.insertAdjacentHTML("afterbegin", `<svg width="14" height="14" aria-hidden="true">${svg}</svg>`);
    return item;
  }));

  root.append(
    h("div", { class: "event-head" },
      h("div", {}, h("h1", {}, event.name),
        h("p", { class: "muted" }, when(event.startTime, event.venue.timeZone), " · ", `${event.venue.name}, ${event.venue.city}`)),
      h("div", {}, bandText ? h("span", { class: `badge ${bandClass}` }, bandText) : "",
        event.minPrice ? h("p", {}, `${money(event.minPrice)} – ${money(event.maxPrice)}`) : ""),
    ),
    event.description ? h("p", {}, event.description) : "",
    h("div", { class: "shop" },
      h("div", {},
        h("div", { class: "map-wrap" }, canvas,
          h("div", { class: "map-tools" },
            h("button", { type: "button", class: "secondary", "aria-label": "Zoom in", onclick: () => seatCanvas.zoomBy(1.6) }, "+"),
            h("button", { type: "button", class: "secondary", "aria-label": "Zoom out", onclick: () => seatCanvas.zoomBy(1 / 1.6) }, "−"),
            h("button", { type: "button", class: "secondary", "aria-label": "Show the whole venue", onclick: () => { seatCanvas.zoom = 1; seatCanvas.panX = 0; seatCanvas.panY = 0; seatCanvas.redraw(); } }, "Whole venue"))),
        legend, summary,
        h("p", { id: "map-help", class: "visually-hidden" }, "Arrow keys move the map, plus and minus zoom. To pick seats with the keyboard, choose a section below."),
        h("label", { for: "section" }, "Section", sectionSelect),
        grid,
      ),
      buy,
    ),
  );

  seatCanvas = new SeatCanvas(canvas, model, { onPick: (i, closeEnough) => {
    const s = model.sectionOf[i];
    if (s !== currentSection) showSection(s, { zoom: !closeEnough });
    if (closeEnough && onSale) toggle(i);
  } });
  sectionSelect.addEventListener("change", () => showSection(Number(sectionSelect.value)));
  const drawMs = seatCanvas.draw();
  metrics.drawAgain = () => seatCanvas.draw();
  metrics.draws.push({ eventId, seats: model.count, drawMs, sincePageMs: performance.now() - started });
  updateSummary();
  const firstFree = model.sections.findIndex((s) => { for (let i = s.start; i < s.end; i++) if (model.status[i] === AVAILABLE) return true; return false; });
  showSection(Math.max(0, firstFree), { zoom: false });
  updatePicked();

  // Live seats: SSE from the feed position of the map just drawn; the stream token identifies a signed-in fan.
  let source = null, closed = false;
  async function watch() {
    if (closed) return;
    let token = "";
    if (session.token) { try { token = await streamToken(); } catch { token = ""; } }
    source = new EventSource(`/v1/events/${encodeURIComponent(eventId)}/seats:watch` + query({ sinceVersion: version || "", access_token: token }));
    const touched = (indexes) => {
      const now = Date.now();
      for (const i of indexes) { paintSeat(i); metrics.seatChanges[model.seatId(i)] = now; }
      if (indexes.length) { seatCanvas.redraw(); updateSummary(); updatePicked(); }
    };
    source.addEventListener("snapshot", (message) => {
      const frame = JSON.parse(message.data);
      metrics.watchFrames++;
      const before = model.status.slice();
      model.applyMap(frame.snapshot);
      const changed = [];
      for (let i = 0; i < model.count; i++) if (before[i] !== model.status[i]) changed.push(i);
      version = Number(frame.version || version);
      touched(changed);
    });
    source.addEventListener("changes", (message) => {
      const frame = JSON.parse(message.data);
      metrics.watchFrames++;
      version = Number(frame.version || version);
      touched(model.applyChanges((frame.changes && frame.changes.changes) || []));
    });
    source.addEventListener("heartbeat", () => { metrics.watchFrames++; });
    source.onerror = () => {
      // EventSource retries by itself (with Last-Event-ID); when it gives up, the stream token may have expired.
      if (source.readyState === EventSource.CLOSED && !closed) setTimeout(watch, 2000);
    };
  }
  watch();
  closers.push(() => { closed = true; if (source) source.close(); });
  return cleanup;
}
