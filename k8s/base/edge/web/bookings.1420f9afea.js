// My bookings (GET /v1/bookings: mine, newest first, paged) and one booking's confirmation.
import { api, query } from "./api.js";
import { bookedSeat, bookingStatus, h, money, when } from "./format.js";
import { requireSignIn } from "./main.js";

const PAGE_SIZE = 10;

export async function renderList(root, params) {
  if (!requireSignIn()) return null;
  const tokens = (params.get("pages") || "").split(",").filter(Boolean);
  const page = params.get("page") || "";
  const answer = await api("/v1/bookings" + query({ pageSize: PAGE_SIZE, pageToken: page }));
  const bookings = answer.bookings || [];
  // The events' names, one read per distinct event (public and cached by the edge and the browser).
  const names = new Map();
  await Promise.all([...new Set(bookings.map((b) => b.eventId))].map(async (id) => {
    try { names.set(id, (await api(`/v1/events/${encodeURIComponent(id)}`)).name); } catch { names.set(id, `Event ${id}`); }
  }));
  root.append(h("h1", {}, "My bookings"));
  if (!bookings.length && !tokens.length) {
    root.append(h("p", {}, "No bookings yet. ", h("a", { href: "#/" }, "Find an event")));
    return null;
  }
  root.append(
    h("table", { class: "bookings" },
      h("thead", {}, h("tr", {}, h("th", {}, "Booked"), h("th", {}, "Event"), h("th", {}, "Seats"), h("th", {}, "Total"), h("th", {}, "Status"))),
      h("tbody", {}, bookings.map((b) => h("tr", { "data-testid": "booking" },
        h("td", {}, when(b.createTime)),
        h("td", {}, h("a", { href: `#/bookings/${b.bookingId}` }, names.get(b.eventId) || `Event ${b.eventId}`)),
        h("td", {}, (b.seats || []).map((s) => bookedSeat(s)).join("; ")),
        h("td", {}, money(b.total)),
        h("td", {}, bookingStatus(b.status)))))),
    h("nav", { class: "pager", "aria-label": "Booking pages" },
      tokens.length ? h("a", { class: "button secondary", href: "#/bookings" + query({ page: tokens[tokens.length - 1] === "-" ? "" : tokens[tokens.length - 1], pages: tokens.slice(0, -1).join(",") }) }, "Newer") : "",
      answer.nextPageToken ? h("a", { class: "button secondary", href: "#/bookings" + query({ page: answer.nextPageToken, pages: [...tokens, page || "-"].join(",") }) }, "Older") : ""),
  );
  return null;
}

export async function renderOne(root, params, bookingId) {
  if (!requireSignIn()) return null;
  const booking = await api(`/v1/bookings/${encodeURIComponent(bookingId)}`);
  const event = await api(`/v1/events/${encodeURIComponent(booking.eventId)}`).catch(() => null);
  const confirmed = booking.status === "BOOKING_STATUS_CONFIRMED";
  root.append(
    h("h1", { "data-testid": "booking-status" }, confirmed ? "You're going! Booking confirmed" : bookingStatus(booking.status)),
    h("section", { class: "card" },
      h("h2", {}, event ? event.name : `Event ${booking.eventId}`),
      event ? h("p", { class: "muted" }, when(event.startTime, event.venue.timeZone), " · ", `${event.venue.name}, ${event.venue.city}`) : "",
      h("ul", {}, (booking.seats || []).map((s) => h("li", {}, `${bookedSeat(s)} — ${money(s.price)}`))),
      h("p", {}, h("strong", {}, "Total: ", money(booking.total))),
      booking.statusReason ? h("p", {}, booking.statusReason) : "",
      h("p", { class: "muted" }, `Booking ${booking.bookingId}`),
    ),
    h("p", {}, h("a", { href: "#/bookings" }, "All my bookings"), " · ", h("a", { href: "#/" }, "Find more events")),
  );
  if (booking.status === "BOOKING_STATUS_RESERVED") root.append(h("p", {}, h("a", { class: "button", href: `#/checkout/${bookingId}` }, "Continue to payment")));
  return null;
}
