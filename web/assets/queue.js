// The waiting room: join, watch the live position and estimate, continue to the seat map on admission.
import { api, newRequestId, query, session, streamToken } from "./api.js";
import { h, humanWait, seconds } from "./format.js";
import { announce, navigate, requireSignIn, showError } from "./main.js";

export async function render(root, params, eventId) {
  if (!requireSignIn()) return null;
  const event = await api(`/v1/events/${encodeURIComponent(eventId)}`);
  const position = h("div", { class: "queue-position", "data-testid": "queue-position" }, "…");
  const estimate = h("p", { "data-testid": "queue-estimate" }, "Joining the queue…");
  const state = h("p", { class: "muted", "data-testid": "queue-state" });
  root.append(
    h("h1", {}, `Waiting room: ${event.name}`),
    h("section", { class: "card", "aria-live": "polite" },
      h("p", {}, "Fans ahead of you:"), position, estimate, state,
      h("p", { class: "muted" }, "Keep this page open: when it is your turn, the seat map opens by itself."),
    ),
  );
  let source = null, closed = false, announced = -1;
  const ticketKey = `tix.ticket.${eventId}.${session.user}`;
  let ticketId = sessionStorage.getItem(ticketKey) || "";

  function show(ticket) {
    const ahead = Number(ticket.position || 0);
    // Past the first 100 places the queue rounds the place up to two significant figures (never better than the
    // real one): say so.
    position.textContent = ahead > 100 ? `about ${ahead.toLocaleString()}` : ahead.toLocaleString();
    const wait = seconds(ticket.estimatedWait);
    estimate.textContent = ticket.state === "QUEUE_TICKET_STATE_ADMITTED" ? "It is your turn!" : `Estimated wait: ${humanWait(wait)}.`;
    state.textContent = { QUEUE_TICKET_STATE_PRE_QUEUE: "The sale has not opened yet; your place is drawn at random when it does.",
      QUEUE_TICKET_STATE_WAITING: "You are in the queue.", QUEUE_TICKET_STATE_ADMITTED: "Admitted: opening the seat map…",
      QUEUE_TICKET_STATE_EXPIRED: "Your admission ran out." }[ticket.state] || "";
    if (Math.abs(ahead - announced) >= 50 || (ahead <= 10 && ahead !== announced)) { announced = ahead; announce(`${ahead > 100 ? "about " : ""}${ahead} fans ahead of you`); }
    if (ticket.state === "QUEUE_TICKET_STATE_ADMITTED" && ticket.admissionToken) {
      sessionStorage.setItem(`tix.admission.${eventId}`, JSON.stringify({ token: ticket.admissionToken,
        expires: ticket.admissionExpireTime, user: session.user }));
      closed = true;
      if (source) source.close();
      navigate(`#/events/${eventId}`);
    } else if (ticket.state === "QUEUE_TICKET_STATE_EXPIRED") {
      sessionStorage.removeItem(ticketKey);
      closed = true;
      if (source) source.close();
      root.querySelector("section").append(h("button", { type: "button", onclick: () => location.reload() }, "Join again"));
    }
  }

  async function open() {
    if (closed) return;
    try {
      if (!ticketId) {
        const ticket = await api(`/v1/events/${encodeURIComponent(eventId)}/queue:join`, { method: "POST", body: { requestId: newRequestId() } });
        ticketId = ticket.ticketId;
        sessionStorage.setItem(ticketKey, ticketId);
        show(ticket);
        if (closed) return;
      }
      const token = await streamToken();
      source = new EventSource(`/v1/events/${encodeURIComponent(eventId)}/queue/${encodeURIComponent(ticketId)}:watch` + query({ access_token: token }));
      source.onmessage = (message) => show(JSON.parse(message.data));
      source.onerror = () => {
        // The stream ends when its token expires or the edge restarts: a fresh token, and watch again.
        if (source) source.close();
        if (!closed) setTimeout(open, 2000);
      };
    } catch (error) {
      showError(error);
      if (error.reason === "QUEUE_TICKET_NOT_FOUND") { sessionStorage.removeItem(ticketKey); ticketId = ""; }
      if (["RATE_LIMITED", "UPSTREAM_UNAVAILABLE", "NETWORK", "QUEUE_TICKET_NOT_FOUND"].includes(error.reason) && !closed) setTimeout(open, 3000);
    }
  }
  open();
  return () => { closed = true; if (source) source.close(); };
}
