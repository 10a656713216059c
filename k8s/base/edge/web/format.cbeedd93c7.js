// Formatting shared by the pages, and a tiny DOM helper.

export function money(value) {
  if (!value || !value.currencyCode) return "";
  const amount = Number(value.amountMinor || 0) / 100;
  return new Intl.NumberFormat(undefined, { style: "currency", currency: value.currencyCode }).format(amount);
}

export function when(timestamp, timeZone) {
  if (!timestamp) return "";
  const options = { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" };
  try {
    return new Intl.DateTimeFormat(undefined, { ...options, timeZone: timeZone || undefined }).format(new Date(timestamp));
  } catch {
    return new Intl.DateTimeFormat(undefined, options).format(new Date(timestamp));
  }
}

export function seconds(duration) {
  // proto3 JSON Duration: "12.5s"
  return duration ? Math.max(0, parseFloat(String(duration))) : 0;
}

export function humanWait(totalSeconds) {
  if (totalSeconds < 1) return "less than a second";
  if (totalSeconds < 60) { const n = Math.ceil(totalSeconds); return n === 1 ? "1 second" : `${n} seconds`; }
  const minutes = Math.round(totalSeconds / 60);
  return minutes === 1 ? "about a minute" : `about ${minutes} minutes`;
}

const CATEGORIES = {
  EVENT_CATEGORY_CONCERT: "Concert", EVENT_CATEGORY_SPORTS: "Sports", EVENT_CATEGORY_THEATER: "Theater",
  EVENT_CATEGORY_COMEDY: "Comedy", EVENT_CATEGORY_FAMILY: "Family",
};
export const categories = CATEGORIES;
export function category(value) { return CATEGORIES[value] || ""; }

const BANDS = {
  AVAILABILITY_BAND_AVAILABLE: ["Available", ""], AVAILABILITY_BAND_FEW_LEFT: ["Few left", "few"],
  AVAILABILITY_BAND_SOLD_OUT: ["Sold out", "out"],
};
export function band(value) { return BANDS[value] || ["", ""]; }

const STATUSES = {
  BOOKING_STATUS_RESERVED: "Held, awaiting payment", BOOKING_STATUS_CONFIRMED: "Confirmed",
  BOOKING_STATUS_CANCELLED: "Cancelled", BOOKING_STATUS_EXPIRED: "Expired", BOOKING_STATUS_REFUNDED: "Refunded",
};
export function bookingStatus(value) { return STATUSES[value] || value; }

// h("a", {href: "#/"}, "text", child...) -> Element; attributes starting with "on" are listeners.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function seatLabel(seatId) {
  // "<section>-<row>-<number>"
  const parts = String(seatId).split("-");
  const number = parts.pop(), row = parts.pop();
  return `section ${parts.join("-")}, row ${row}, seat ${number}`;
}

export function bookedSeat(seat) {
  return seat.rowLabel ? `section ${seat.sectionId}, row ${seat.rowLabel}, seat ${seat.number}` : seatLabel(seat.seatId);
}
