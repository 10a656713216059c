// The Tix REST API on this origin (the edge), the signed-in fan's token, and errors as people read them.

export const config = JSON.parse(document.getElementById("tix-config").textContent);

const TOKEN = "tix.token";
const USER = "tix.user";

export const session = {
  get token() { return localStorage.getItem(TOKEN) || ""; },
  get user() { return localStorage.getItem(USER) || ""; },
  signIn(token, user) { localStorage.setItem(TOKEN, token); localStorage.setItem(USER, user); },
  signOut() { localStorage.removeItem(TOKEN); localStorage.removeItem(USER); },
};

// ErrorInfo reasons (the API's and the edge's) -> what happened and what to do next.
const MESSAGES = {
  SEAT_UNAVAILABLE: ["Someone else just took one of those seats.", "Pick other seats, or ask for the best available again."],
  SEAT_NOT_FOUND: ["One of those seats does not exist at this event.", "Pick seats on the map again."],
  SEAT_LIMIT_EXCEEDED: ["That is more seats than one fan may hold for this event.", "Choose fewer seats."],
  HOLD_EXPIRED: ["Your hold on these seats ran out before the payment.", "Go back to the seat map and choose seats again."],
  PAYMENT_REJECTED: ["The payment failed.", "Check the card details or use another card."],
  PAYMENT_FAILED: ["The payment failed.", "Check the card details or use another card; your seats stay held until the countdown ends."],
  PAYMENT_INCOMPLETE: ["The payment has not gone through yet.", "Wait a moment; this page checks again by itself."],
  PAYMENTS_BUSY: ["Payments are very busy right now.", "Wait a few seconds and press Pay again; your seats stay held."],
  PAYMENTS_UNAVAILABLE: ["Payments are unavailable for a moment.", "Try again shortly; your seats stay held."],
  ADMISSION_USED: ["Your turn from the waiting room already bought a booking.", "Open My bookings, or join the queue again for more seats."],
  BOOKING_BUSY: ["So many fans are choosing seats that we could not take your request this second.", "Press the button again in a moment; nothing was reserved."],
  PAYMENT_MISMATCH: ["That payment does not match this booking.", "Pay again on this page; a wrong payment is refunded."],
  STORE_UNAVAILABLE: ["Tix is catching its breath.", "Retry in a few seconds; nothing was lost."],
  ADMISSION_REQUIRED: ["This event has a waiting room.", "Join the queue: the seat map opens by itself when it is your turn."],
  SALE_ENDED: ["The sale for this event is closed, and so is its queue.", "Search for another date or event."],
  SALE_NOT_OPEN: ["The sale has not started yet.", "Come back at the on-sale time."],
  WAITING_ROOM_DISABLED: ["This event has no waiting room.", "Go straight to the seat map."],
  QUEUE_TICKET_NOT_FOUND: ["Your place in the queue was not found.", "Join the queue again."],
  BOOKING_CANCELLED: ["This booking was cancelled.", "Choose seats again."],
  BOOKING_NOT_RESERVED: ["This booking is no longer waiting for payment.", "Open My bookings."],
  BOOKING_NOT_FOUND: ["No such booking for you.", "Open My bookings."],
  EVENT_NOT_FOUND: ["No such event.", "Search for events."],
  RATE_LIMITED: ["Too many requests at once.", "Wait a second and try again."],
  UNAUTHENTICATED: ["You need to sign in first.", "Sign in, then try again."],
  PERMISSION_DENIED: ["That is not allowed for your account.", "Sign in as the right fan."],
  UPSTREAM_UNAVAILABLE: ["Tix is unavailable for a moment.", "Retry in a few seconds."],
  UPSTREAM_TIMEOUT: ["Tix took too long to answer.", "Retry in a few seconds."],
  SLOW_READER: ["The live seat updates fell behind.", "They reconnect by themselves."],
  NETWORK: ["Cannot reach Tix.", "Check your connection, then retry."],
};

export class ApiError extends Error {
  constructor(status, reason, message, retryAfter = 0) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.retryAfter = retryAfter;
  }

  static from(response, body) {
    const info = (body.details || []).find((d) => (d["@type"] || "").endsWith("google.rpc.ErrorInfo"));
    const retry = Number(response.headers.get("retry-after") || 0);
    return new ApiError(response.status, (info && info.reason) || `HTTP_${response.status}`, body.message || response.statusText, retry);
  }

  // [what happened, what to do next]
  get human() {
    if (this.reason === "PAYMENT_FAILED" && this.message) {  // the card processor's own words say what was wrong
      return [`The payment failed: ${this.message.replace(/\.$/, "")}.`, MESSAGES.PAYMENT_FAILED[1]];
    }
    return MESSAGES[this.reason] || [this.message || "Something went wrong.", "Try again; if it persists, reload the page."];
  }
}

export function humanError(error) {
  if (error instanceof ApiError) return error.human;
  return [String(error && error.message ? error.message : error), "Try again; if it persists, reload the page."];
}

export async function api(path, { method = "GET", body, signal, headers = {} } = {}) {
  const sent = { ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (session.token) sent.Authorization = "Bearer " + session.token;
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "NETWORK", String(error));
  }
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!response.ok) throw ApiError.from(response, data);
  data._headers = response.headers;
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

// A stream token for EventSource, which cannot send an Authorization header (the edge verifies ?access_token=).
export async function streamToken() {
  const minted = await api("/v1/streamTokens", { method: "POST", body: {} });
  return minted.token;
}

export function newRequestId() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}
