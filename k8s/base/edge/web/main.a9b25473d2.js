// The app shell: hash routes, the notice area, who is signed in.
import { ApiError, api, config, humanError, session } from "./api.js";
import { h } from "./format.js";

const view = document.getElementById("view");
const notice = document.getElementById("notice");
const statusRegion = document.getElementById("status");
let cleanup = null;

export function announce(text) {
  statusRegion.textContent = "";
  setTimeout(() => { statusRegion.textContent = text; }, 30);
}

export function showError(error) {
  const [what, next] = humanError(error);
  notice.replaceChildren(h("strong", {}, what), h("span", { class: "next" }, next));
  if (error instanceof ApiError && error.reason === "UNAUTHENTICATED") {
    notice.append(" ", h("a", { href: "#/signin?then=" + encodeURIComponent(location.hash) }, "Sign in"));
  }
}

export function clearError() { notice.replaceChildren(); }

export function navigate(hash) { location.hash = hash; }

export function requireSignIn() {
  if (session.token) return true;
  navigate("#/signin?then=" + encodeURIComponent(location.hash || "#/"));
  return false;
}

function renderWho() {
  const who = document.getElementById("who");
  if (session.user) {
    who.replaceChildren(
      h("span", { class: "muted" }, "Signed in as "), h("strong", { "data-testid": "user" }, session.user), " ",
      h("button", { class: "secondary", type: "button", onclick: () => { session.signOut(); renderWho(); navigate("#/"); } }, "Sign out"),
    );
  } else {
    who.replaceChildren(h("a", { href: "#/signin?then=" + encodeURIComponent(location.hash || "#/") }, "Sign in"));
  }
}

function signInPage(root, params) {
  const then = params.get("then") || "#/";
  const token = params.get("access_token");
  if (token) {  // back from the operator's identity provider
    session.signIn(token, params.get("user") || "fan");
    renderWho();
    navigate(then);
    return;
  }
  root.append(h("h1", {}, "Sign in"));
  if (!config.devSignInPath) {
    root.append(
      h("p", {}, "Sign in with your account at the ticket office's identity provider."),
      config.signInUrl ? h("a", { class: "button", href: config.signInUrl }, "Continue to sign in") : h("p", { class: "muted" }, "No sign-in is configured."),
    );
    return;
  }
  const input = h("input", { id: "signin-name", name: "name", autocomplete: "username", required: true, maxlength: 64 });
  const form = h("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const answer = await api(config.devSignInPath, { method: "POST", body: { name: input.value.trim() } });
      session.signIn(answer.token, answer.userId);
      renderWho();
      clearError();
      navigate(then);
    } catch (error) { showError(error); }
  } },
    h("p", { class: "muted" }, "Development sign-in: any name becomes a fan of this local Tix (no password)."),
    h("label", { for: "signin-name" }, "Your name", input), " ",
    h("p", {}, h("button", { type: "submit" }, "Sign in")),
  );
  root.append(form);
  input.focus();
}

const routes = [
  [/^#\/?$/, () => import("./search.js").then((m) => m.render)],
  [/^#\/signin$/, async () => signInPage],
  [/^#\/events\/([^/]+)$/, () => import("./event.js").then((m) => m.render)],
  [/^#\/events\/([^/]+)\/queue$/, () => import("./queue.js").then((m) => m.render)],
  [/^#\/checkout\/([^/]+)$/, () => import("./checkout.js").then((m) => m.render)],
  [/^#\/bookings$/, () => import("./bookings.js").then((m) => m.renderList)],
  [/^#\/bookings\/([^/]+)$/, () => import("./bookings.js").then((m) => m.renderOne)],
];

async function route() {
  const [path, search = ""] = (location.hash || "#/").split("?");
  const params = new URLSearchParams(search);
  if (cleanup) { try { cleanup(); } catch { /* the old page is gone anyway */ } cleanup = null; }
  clearError();
  renderWho();
  for (const [pattern, load] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    const root = h("div", { class: "page" });
    view.replaceChildren(root);
    try {
      const render = await load();
      cleanup = (await render(root, params, ...match.slice(1).map(decodeURIComponent))) || null;
    } catch (error) { showError(error); }
    view.focus({ preventScroll: true });
    return;
  }
  view.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Search for events")));
}

window.addEventListener("hashchange", route);
route();
