// Search: suggestions as you type, typo-tolerant results, filters (dates, city or near me, category), paging.
import { ApiError, api, query } from "./api.js";
import { band, categories, category, h, money, when } from "./format.js";
import { announce, navigate, showError } from "./main.js";

const PAGE_SIZE = 10;
const NEAR_ME_KM = 50;
let suggestRoute = "unknown";  // "no" when the edge has no GET /v1/events:suggest (an older API)

// Suggestions as {text, detail, eventId} (open the event) or {text, detail, filters} (search with them).
async function suggestions(text, signal) {
  if (suggestRoute !== "no") {
    try {
      const answer = await api("/v1/events:suggest" + query({ query: text, pageSize: 4 }), { signal });
      suggestRoute = "yes";
      return [
        ...(answer.events || []).map((e) => ({ text: e.name, detail: when(e.startTime, e.venue && e.venue.timeZone), eventId: e.eventId })),
        ...(answer.performers || []).map((p) => ({ text: p.name, detail: "Performer", filters: { performer: p.name } })),
        ...(answer.venues || []).map((v) => ({ text: v.name, detail: `Venue in ${v.city}`, filters: { query: v.name } })),
        ...(answer.cities || []).map((c) => ({ text: c.name, detail: "City", filters: { city: c.name } })),
      ];
    } catch (error) {
      if (!(error instanceof ApiError) || (error.reason !== "ROUTE_NOT_FOUND" && error.status !== 404)) throw error;
      suggestRoute = "no";  // fall back to the first search hits
    }
  }
  const found = await api("/v1/events:search" + query({ query: text, pageSize: 6 }), { signal });
  return (found.events || []).map((e) => ({ text: e.name, detail: when(e.startTime, e.venue && e.venue.timeZone), eventId: e.eventId }));
}

export function render(root, params) {
  const state = Object.fromEntries(params.entries());
  const tokens = (state.pages || "").split(",").filter(Boolean);  // tokens of the pages before this one ("-": the first)
  const q = h("input", { id: "q", name: "query", type: "search", value: state.query || "", placeholder: "Artist, team, venue or city",
    role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": "suggestions", autocomplete: "off" });
  const list = h("ul", { id: "suggestions", class: "suggestions", role: "listbox", hidden: true, "aria-label": "Suggestions" });
  const from = h("input", { id: "from", name: "from", type: "date", value: state.from || "" });
  const to = h("input", { id: "to", name: "to", type: "date", value: state.to || "" });
  const city = h("input", { id: "city", name: "city", value: state.city || "", placeholder: "Any city" });
  const near = h("input", { id: "near", name: "near", type: "checkbox", checked: Boolean(state.lat) });
  const cat = h("select", { id: "category", name: "category" }, h("option", { value: "" }, "Any"),
    Object.entries(categories).map(([value, label]) => h("option", { value, selected: state.category === value }, label)));
  const results = h("section", { "aria-labelledby": "results-title" });
  let position = { lat: state.lat, lon: state.lon };

  function submit(extra = {}) {
    const next = { query: q.value.trim(), from: from.value, to: to.value, city: near.checked ? "" : city.value.trim(),
      category: cat.value, lat: near.checked ? position.lat : "", lon: near.checked ? position.lon : "", ...extra };
    navigate("#/" + query(next));
  }

  near.addEventListener("change", () => {
    if (!near.checked) return;
    if (!navigator.geolocation) { near.checked = false; showError(new Error("This browser cannot share its location.")); return; }
    navigator.geolocation.getCurrentPosition(
      (p) => { position = { lat: p.coords.latitude.toFixed(4), lon: p.coords.longitude.toFixed(4) }; city.value = ""; announce("Location found: searching near you"); },
      () => { near.checked = false; showError(new Error("Your location is not available: allow it, or type a city.")); },
      { timeout: 10000 },
    );
  });

  // Suggestions as you type (a listbox the arrow keys move through).
  let controller = null, timer = 0, active = -1, items = [];
  function close() { list.hidden = true; q.setAttribute("aria-expanded", "false"); q.removeAttribute("aria-activedescendant"); active = -1; }
  function choose(item) {
    close();
    if (item.eventId) navigate(`#/events/${item.eventId}`);
    else if (item.filters.city) { city.value = item.filters.city; near.checked = false; q.value = ""; submit(); }
    else if (item.filters.performer) { q.value = ""; submit({ performer: item.filters.performer }); }
    else { q.value = item.filters.query; submit(); }
  }
  function highlight(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) q.setAttribute("aria-activedescendant", `suggestion-${index}`);
  }
  q.addEventListener("input", () => {
    clearTimeout(timer);
    const text = q.value.trim();
    if (text.length < 2) { close(); return; }
    timer = setTimeout(async () => {
      if (controller) controller.abort();
      controller = new AbortController();
      try {
        items = await suggestions(text, controller.signal);
      } catch (error) { if (error.name !== "AbortError") close(); return; }
      list.replaceChildren(...items.map((item, i) => h("li", { id: `suggestion-${i}`, role: "option", "aria-selected": "false",
        onmousedown: (e) => { e.preventDefault(); choose(item); } }, item.text, item.detail ? h("span", { class: "muted" }, " · ", item.detail) : "")));
      list.hidden = items.length === 0;
      q.setAttribute("aria-expanded", String(items.length > 0));
      active = -1;
    }, 120);
  });
  q.addEventListener("keydown", (event) => {
    if (list.hidden) return;
    if (event.key === "ArrowDown") { event.preventDefault(); highlight(Math.min(items.length - 1, active + 1)); }
    else if (event.key === "ArrowUp") { event.preventDefault(); highlight(Math.max(-1, active - 1)); }
    else if (event.key === "Escape") close();
    else if (event.key === "Enter" && active >= 0) { event.preventDefault(); choose(items[active]); }
  });
  q.addEventListener("blur", () => setTimeout(close, 150));

  root.append(
    h("h1", {}, "Find events"),
    h("form", { class: "search-form card", role: "search", onsubmit: (e) => { e.preventDefault(); submit(); } },
      h("div", { class: "combo" }, h("label", { for: "q" }, "Search", q), list),
      h("label", { for: "from" }, "From", from),
      h("label", { for: "to" }, "Until", to),
      h("label", { for: "city" }, "City", city),
      h("label", { for: "category" }, "Category", cat),
      h("div", {}, h("label", { class: "inline", for: "near" }, near, "Near me"), h("button", { type: "submit" }, "Search")),
    ),
    results,
  );

  const request = {
    query: state.query, city: state.city, category: state.category, performer: state.performer, pageSize: PAGE_SIZE, pageToken: state.page,
    startTime: state.from ? new Date(state.from + "T00:00:00").toISOString() : "",
    endTime: state.to ? new Date(state.to + "T23:59:59").toISOString() : "",
    latitude: state.lat, longitude: state.lon, radiusKm: state.lat ? NEAR_ME_KM : "",
  };
  const pageController = new AbortController();
  (async () => {
    results.append(h("p", { class: "muted" }, "Searching…"));
    try {
      const answer = await api("/v1/events:search" + query(request), { signal: pageController.signal });
      const events = answer.events || [];
      const total = Number(answer.totalSize || 0);
      const first = tokens.length * PAGE_SIZE;
      const title = h("h2", { id: "results-title" }, events.length
        ? `${total} event${total === 1 ? "" : "s"}${state.query ? ` for “${state.query}”` : ""}${state.performer ? ` by ${state.performer}` : ""} — ${first + 1}–${first + events.length}`
        : "No events match: try fewer filters or another spelling");
      const items = events.map((e) => {
        const [bandText, bandClass] = band(e.availabilityBand);
        return h("li", { class: "card result" },
          h("div", {},
            h("h3", {}, h("a", { href: `#/events/${e.eventId}`, "data-testid": "result" }, e.name)),
            h("div", { class: "muted" }, when(e.startTime, e.venue && e.venue.timeZone), " · ", e.venue ? `${e.venue.name}, ${e.venue.city}` : "",
              e.distanceKm !== undefined ? ` · ${Number(e.distanceKm).toFixed(0)} km away` : ""),
          ),
          h("div", {}, category(e.category), " ", bandText ? h("span", { class: `badge ${bandClass}` }, bandText) : "",
            e.minPrice ? h("div", {}, "from ", money(e.minPrice)) : ""),
        );
      });
      const pager = h("nav", { class: "pager", "aria-label": "Result pages" },
        tokens.length ? h("button", { class: "secondary", type: "button", onclick: () => {
          const previous = tokens[tokens.length - 1];
          submit({ page: previous === "-" ? "" : previous, pages: tokens.slice(0, -1).join(",") });
        } }, "Previous") : "",
        answer.nextPageToken ? h("button", { class: "secondary", type: "button", onclick: () =>
          submit({ page: answer.nextPageToken, pages: [...tokens, state.page || "-"].join(",") }) }, "Next") : "",
      );
      results.replaceChildren(title, h("ul", { class: "results" }, items), pager);
      announce(title.textContent);
    } catch (error) {
      if (error.name === "AbortError") return;
      results.replaceChildren();
      showError(error);
    }
  })();
  return () => { pageController.abort(); if (controller) controller.abort(); };
}
