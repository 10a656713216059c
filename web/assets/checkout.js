// Checkout: the held seats, the hold's countdown, the card through Stripe.js, then the confirmation.
import { ApiError, api, config, newRequestId } from "./api.js";
import { bookedSeat, bookingStatus, h, money } from "./format.js";
import { announce, navigate, requireSignIn, showError } from "./main.js";

let stripeLoaded = null;
function loadStripe() {
  // Stripe.js from its configured origin (localstripe's stand-in locally, js.stripe.com in production).
  if (!stripeLoaded) {
    stripeLoaded = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = config.stripeJsUrl;
      script.onload = () => resolve(window.Stripe(config.stripePublishableKey));
      script.onerror = () => { stripeLoaded = null; reject(new Error("The payment form could not be loaded.")); };
      document.head.append(script);
    });
  }
  return stripeLoaded;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function render(root, params, bookingId) {
  if (!requireSignIn()) return null;
  const timers = [];
  let booking = await api(`/v1/bookings/${encodeURIComponent(bookingId)}`);
  if (booking.status !== "BOOKING_STATUS_RESERVED") { navigate(`#/bookings/${bookingId}`); return null; }
  const event = await api(`/v1/events/${encodeURIComponent(booking.eventId)}`).catch(() => null);
  const countdown = h("span", { class: "countdown", "data-testid": "countdown", role: "timer", "aria-live": "off" });
  const cardMount = h("div", { id: "card-element" });
  const pay = h("button", { type: "submit", "data-testid": "pay" }, `Pay ${money(booking.total)}`);
  const cancel = h("button", { type: "button", class: "secondary", onclick: async () => {
    try { await api(`/v1/bookings/${encodeURIComponent(bookingId)}:cancel`, { method: "POST", body: { requestId: newRequestId() } }); }
    catch (error) { showError(error); return; }
    navigate(`#/events/${booking.eventId}`);
  } }, "Release the seats");
  const form = h("form", { class: "card", "aria-labelledby": "pay-title" },
    h("h2", { id: "pay-title" }, "Pay by card"),
    h("p", { class: "muted" }, "Test card: 4242 4242 4242 4242, any future date, any CVC."),
    cardMount, pay, " ", cancel,
  );
  root.append(
    h("h1", {}, "Checkout"),
    h("section", { class: "card", "aria-labelledby": "held-title" },
      h("h2", { id: "held-title" }, event ? event.name : "Your seats"),
      h("p", {}, "Your seats are held for ", countdown, ". Pay before the time runs out."),
      h("ul", {}, (booking.seats || []).map((seat) => h("li", { "data-testid": "held-seat" }, `${bookedSeat(seat)} — ${money(seat.price)}`))),
      h("p", {}, h("strong", {}, "Total: ", money(booking.total))),
    ),
    form,
  );

  const expires = Date.parse(booking.expireTime);
  let expired = false;
  const tick = () => {
    const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    countdown.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    countdown.classList.toggle("low", left < 60);
    if (left === 60) announce("One minute left to pay.");
    if (left === 0 && !expired) {
      expired = true;
      pay.disabled = true;
      showError(new ApiError(0, "HOLD_EXPIRED", "the hold expired"));
      form.append(h("p", {}, h("a", { class: "button", href: `#/events/${booking.eventId}` }, "Choose seats again")));
    }
  };
  tick();
  timers.push(setInterval(tick, 1000));

  let stripe, card;
  try {
    stripe = await loadStripe();
    card = stripe.elements().create("card");
    card.mount(cardMount);
  } catch (error) { showError(error); pay.disabled = true; }

  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    if (expired) return;
    pay.disabled = true;
    pay.textContent = "Paying…";
    try {
      // The fan proceeds to pay: the PaymentIntent is made now (idempotent: a second press gets the same one).
      if (!booking.payment || !booking.payment.clientSecret) {
        booking = await api(`/v1/bookings/${encodeURIComponent(bookingId)}:checkout`, { method: "POST", body: { requestId: newRequestId() } });
      }
      const result = await stripe.confirmCardPayment(booking.payment.clientSecret, { payment_method: { card } });
      if (result.error) {
        showError(new ApiError(402, "PAYMENT_FAILED", result.error.message || "the card was declined"));
        pay.disabled = false;
        pay.textContent = `Pay ${money(booking.total)}`;
        return;
      }
      // Paid: the booking confirms on Stripe's webhook, or when asked (ConfirmBooking checks the PaymentIntent).
      for (let attempt = 0; attempt < 30; attempt++) {
        try {
          booking = await api(`/v1/bookings/${encodeURIComponent(bookingId)}:confirm`, { method: "POST", body: { requestId: newRequestId() } });
        } catch (error) {
          if (error.reason !== "PAYMENT_INCOMPLETE" && error.reason !== "PAYMENTS_BUSY") throw error;
        }
        if (booking.status !== "BOOKING_STATUS_RESERVED") break;
        await sleep(1000);
      }
      announce(bookingStatus(booking.status));
      navigate(`#/bookings/${bookingId}`);
    } catch (error) {
      showError(error);
      pay.disabled = false;
      pay.textContent = `Pay ${money(booking.total)}`;
    }
  });
  return () => timers.forEach(clearInterval);
}
