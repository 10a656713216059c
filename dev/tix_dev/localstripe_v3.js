// Tix's local stand-in for Stripe.js v3, served by tix_dev.localstripe at /js.stripe.com/v3/ (development only;
// production pages load https://js.stripe.com/v3/). It offers the part of the real API the web app uses, with the
// same shapes: Stripe(key).elements().create("card").mount(el) and
// stripe.confirmCardPayment(clientSecret, {payment_method: {card}}) -> {paymentIntent} or {error: {message, code}}.
// The card fields are plain labelled inputs (the real card Element is an iframe). Test cards as Stripe's:
// 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined.
(function () {
  const base = document.currentScript.src.replace(/\/js\.stripe\.com\/v3\/?$/, "");

  function field(id, label, attributes) {
    const wrap = document.createElement("label");
    wrap.setAttribute("for", id);
    wrap.textContent = label;
    const input = document.createElement("input");
    input.id = id;
    Object.entries(attributes).forEach(([key, value]) => input.setAttribute(key, value));
    wrap.append(input);
    return [wrap, input];
  }

  class CardElement {
    mount(target) {
      const root = typeof target === "string" ? document.querySelector(target) : target;
      const [numberLabel, number] = field("card-number", "Card number", { inputmode: "numeric", autocomplete: "cc-number", placeholder: "4242 4242 4242 4242", size: "20" });
      const [expiryLabel, expiry] = field("card-expiry", "Expiry (MM/YY)", { inputmode: "numeric", autocomplete: "cc-exp", placeholder: "12/34", size: "6" });
      const [cvcLabel, cvc] = field("card-cvc", "CVC", { inputmode: "numeric", autocomplete: "cc-csc", placeholder: "123", size: "4" });
      this.inputs = { number, expiry, cvc };
      root.append(numberLabel, expiryLabel, cvcLabel);
    }

    value() {
      const [month, year] = this.inputs.expiry.value.split("/").map((part) => part.trim());
      return { number: this.inputs.number.value.replace(/\D/g, ""), exp_month: month || "", exp_year: year || "", cvc: this.inputs.cvc.value.trim() };
    }
  }

  window.Stripe = function (publishableKey) {
    return {
      elements() { return { create(type) { if (type !== "card") throw new Error("only card elements here"); return new CardElement(); } }; },
      async confirmCardPayment(clientSecret, data) {
        const match = /^(pi_\w+?)_secret_/.exec(clientSecret || "");
        if (!match) return { error: { type: "invalid_request_error", message: "Invalid client secret." } };
        const card = data && data.payment_method && data.payment_method.card;
        if (!card) return { error: { type: "invalid_request_error", message: "No card given." } };
        try {
          // A simple request (text/plain): no preflight.
          const response = await fetch(`${base}/_tix/payment_intents/${match[1]}/confirm_card`, {
            method: "POST", body: JSON.stringify({ key: publishableKey, client_secret: clientSecret, card: card.value() }),
          });
          const body = await response.json();
          return response.ok ? { paymentIntent: body } : { error: body.error || { message: "The payment failed." } };
        } catch (error) {
          return { error: { type: "api_connection_error", message: String(error) } };
        }
      },
    };
  };
})();
