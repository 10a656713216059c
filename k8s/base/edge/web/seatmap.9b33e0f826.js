// The seat map: a canvas of every seat at its layout coordinates (one draw call per colour, so a 70,000-seat
// stadium draws in milliseconds), zoom and pan, live statuses; plus, for keyboards and screen readers, the seats
// of one section as a grid of labelled buttons.

export const AVAILABLE = 0, RESERVED = 1, BOOKED = 2;
const CODES = { A: AVAILABLE, R: RESERVED, B: BOOKED };
const STATUS_OF = { SEAT_STATUS_AVAILABLE: AVAILABLE, SEAT_STATUS_RESERVED: RESERVED, SEAT_STATUS_BOOKED: BOOKED };
export const STATUS_WORDS = ["available", "reserved", "sold"];
// Okabe–Ito: blue, orange, grey; selected seats bluish green with a black outline.
const COLOURS = ["#0072B2", "#E69F00", "#9a9a9a"];
const SELECTED = "#009E73";
// The same colours as 0xAABBGGRR words, for drawing small seats straight into pixels.
const PIXELS = [0xffb27200, 0xff009fe6, 0xff9a9a9a];
const SELECTED_PIXEL = 0xff739e00;

export class SeatModel {
  // layout: SeatLayout JSON; map: compact SeatMap JSON (same sections and rows, same order).
  constructor(layout, map) {
    let count = 0;
    for (const section of layout.sections) for (const row of section.rows) count += row.xs.length;
    this.count = count;
    this.xs = new Float32Array(count);
    this.ys = new Float32Array(count);
    this.status = new Uint8Array(count);
    this.selected = new Uint8Array(count);
    this.sectionOf = new Uint16Array(count);
    this.rows = [];  // {section, label, first, start, length}
    this.sections = [];  // {id, name, price, rows: [rowIndex...], start, end}
    this.index = new Map();
    let i = 0;
    layout.sections.forEach((section, s) => {
      const info = (map.sections && map.sections[s]) || {};
      const entry = { id: section.sectionId, name: section.name || info.name || section.sectionId, price: info.price,
        priceTier: info.priceTier, rows: [], start: i, end: i };
      for (const row of section.rows) {
        const first = Number(row.firstSeatNumber || 1);
        entry.rows.push(this.rows.length);
        this.rows.push({ section: s, label: row.rowLabel, first, start: i, length: row.xs.length });
        for (let k = 0; k < row.xs.length; k++, i++) {
          this.xs[i] = row.xs[k];
          this.ys[i] = row.ys[k];
          this.sectionOf[i] = s;
          this.index.set(`${section.sectionId}-${row.rowLabel}-${first + k}`, i);
        }
      }
      entry.end = i;
      this.sections.push(entry);
    });
    this.applyMap(map);
  }

  applyMap(map) {
    let r = 0;
    for (const section of map.sections || []) {
      for (const row of section.rows || []) {
        const target = this.rows[r++];
        if (!target) return;
        const codes = row.statusCodes || "";
        for (let k = 0; k < target.length; k++) this.status[target.start + k] = CODES[codes[k]] ?? BOOKED;
      }
    }
  }

  // Returns the indexes whose status changed.
  applyChanges(changes) {
    const touched = [];
    for (const change of changes) {
      const i = this.index.get(change.seatId);
      if (i === undefined) continue;
      const status = STATUS_OF[change.status] ?? BOOKED;
      if (this.status[i] !== status) { this.status[i] = status; touched.push(i); }
      if (status !== AVAILABLE) this.selected[i] = 0;
    }
    return touched;
  }

  seatId(i) {
    const row = this.rowOf(i);
    return `${this.sections[row.section].id}-${row.label}-${row.first + (i - row.start)}`;
  }

  rowOf(i) {
    let lo = 0, hi = this.rows.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (this.rows[mid].start <= i) lo = mid; else hi = mid - 1; }
    return this.rows[lo];
  }

  available() { let n = 0; for (let i = 0; i < this.count; i++) if (this.status[i] === AVAILABLE) n++; return n; }
  selection() { const out = []; for (let i = 0; i < this.count; i++) if (this.selected[i]) out.push(i); return out; }
}

export class SeatCanvas {
  constructor(canvas, model, { onPick } = {}) {
    this.canvas = canvas;
    this.model = model;
    this.onPick = onPick || (() => {});
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.pending = false;
    this.lastDrawMs = 0;
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (let i = 0; i < model.count; i++) {
      const x = model.xs[i], y = model.ys[i];
      if (x < minX) minX = x; if (x > maxX) maxX = x; if (y < minY) minY = y; if (y > maxY) maxY = y;
    }
    this.bounds = { minX, maxX, minY, maxY };
    // Seat pitch: the closest neighbour in the first row that has two seats.
    const row = model.rows.find((r) => r.length > 1);
    this.pitch = row ? Math.hypot(model.xs[row.start + 1] - model.xs[row.start], model.ys[row.start + 1] - model.ys[row.start]) || 0.5 : 0.5;
    this.bind();
  }

  get baseScale() {
    const { minX, maxX, minY, maxY } = this.bounds;
    const w = this.canvas.clientWidth || 600, h = this.canvas.clientHeight || 400;
    return 0.94 * Math.min(w / Math.max(1e-3, maxX - minX + this.pitch), h / Math.max(1e-3, maxY - minY + this.pitch));
  }

  get scale() { return this.baseScale * this.zoom; }
  get seatPixels() { return this.pitch * this.scale; }

  toScreen(x, y) {
    const { minX, maxX, minY, maxY } = this.bounds;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight, s = this.scale;
    return [w / 2 + (x - (minX + maxX) / 2) * s + this.panX, h / 2 + (y - (minY + maxY) / 2) * s + this.panY];
  }

  toWorld(px, py) {
    const { minX, maxX, minY, maxY } = this.bounds;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight, s = this.scale;
    return [(px - w / 2 - this.panX) / s + (minX + maxX) / 2, (py - h / 2 - this.panY) / s + (minY + maxY) / 2];
  }

  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const started = performance.now();
    const { canvas, model } = this;
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return 0;  // not on screen (hidden, or the page has moved on)
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d", { alpha: false });
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    const { minX, maxX, minY, maxY } = this.bounds;
    const s = this.scale, cx = w / 2 + this.panX - ((minX + maxX) / 2) * s, cy = h / 2 + this.panY - ((minY + maxY) / 2) * s;
    const size = Math.max(1.2, Math.min(28, this.pitch * s * 0.8)), half = size / 2;
    const { xs, ys, status, selected, count } = model;
    if (size * ratio < 4) {
      // A whole venue on screen: seats are a few device pixels each, written straight into the pixel buffer
      // (a 70,000-seat stadium in a few milliseconds, where one path rectangle per seat takes a hundred).
      const width = canvas.width, height = canvas.height;
      const image = ctx.createImageData(width, height);
      const pixels = new Uint32Array(image.data.buffer);
      pixels.fill(0xffffffff);
      const side = Math.max(1, Math.round(size * ratio));
      for (let i = 0; i < count; i++) {
        const px = Math.round((xs[i] * s + cx) * ratio - side / 2), py = Math.round((ys[i] * s + cy) * ratio - side / 2);
        if (px < 0 || py < 0 || px + side > width || py + side > height) continue;
        const colour = selected[i] ? SELECTED_PIXEL : PIXELS[status[i]];
        for (let dy = 0; dy < side; dy++) {
          const row = (py + dy) * width + px;
          for (let dx = 0; dx < side; dx++) pixels[row + dx] = colour;
        }
      }
      ctx.putImageData(image, 0, 0);
    } else {
      for (let colour = 0; colour < 3; colour++) {
        ctx.fillStyle = COLOURS[colour];
        ctx.beginPath();
        for (let i = 0; i < count; i++) {
          if (status[i] !== colour || selected[i]) continue;
          const x = xs[i] * s + cx, y = ys[i] * s + cy;
          if (x < -size || y < -size || x > w + size || y > h + size) continue;
          ctx.rect(x - half, y - half, size, size);
        }
        ctx.fill();
      }
      ctx.fillStyle = SELECTED;
      ctx.strokeStyle = "#000";
      ctx.lineWidth = Math.max(1, size / 6);
      ctx.beginPath();
      for (let i = 0; i < count; i++) {
        if (!selected[i]) continue;
        ctx.rect(xs[i] * s + cx - half, ys[i] * s + cy - half, size, size);
      }
      ctx.fill();
      ctx.stroke();
    }
    // The stage (or field) is at the origin.
    const [sx, sy] = this.toScreen(0, 0);
    ctx.fillStyle = "#1b1f24";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    if (sx > 30 && sy > 10 && sx < w - 30 && sy < h - 10) ctx.fillText("STAGE", sx, sy + 4);
    if (size >= 10) {  // close enough to read: section names at their centres
      ctx.fillStyle = "#1b1f24";
      for (const section of model.sections) {
        if (section.end === section.start) continue;
        const mid = (section.start + section.end) >> 1;
        const [px, py] = this.toScreen(xs[mid], ys[mid]);
        if (px > 0 && py > 0 && px < w && py < h) ctx.fillText(section.name, px, py - size);
      }
    }
    this.lastDrawMs = performance.now() - started;
    return this.lastDrawMs;
  }

  zoomBy(factor, px, py) {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    px = px ?? w / 2; py = py ?? h / 2;
    const [wx, wy] = this.toWorld(px, py);
    this.zoom = Math.min(80, Math.max(1, this.zoom * factor));
    const [nx, ny] = this.toScreen(wx, wy);
    this.panX += px - nx;
    this.panY += py - ny;
    if (this.zoom === 1) { this.panX = 0; this.panY = 0; }
    this.redraw();
  }

  focusOn(start, end) {
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (let i = start; i < end; i++) {
      minX = Math.min(minX, this.model.xs[i]); maxX = Math.max(maxX, this.model.xs[i]);
      minY = Math.min(minY, this.model.ys[i]); maxY = Math.max(maxY, this.model.ys[i]);
    }
    const b = this.bounds, w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const want = 0.8 * Math.min(w / Math.max(this.pitch * 4, maxX - minX), h / Math.max(this.pitch * 4, maxY - minY));
    this.zoom = Math.min(80, Math.max(1, want / this.baseScale));
    const s = this.scale;
    this.panX = -(((minX + maxX) / 2) - (b.minX + b.maxX) / 2) * s;
    this.panY = -(((minY + maxY) / 2) - (b.minY + b.maxY) / 2) * s;
    this.redraw();
  }

  nearest(px, py) {
    const [wx, wy] = this.toWorld(px, py);
    const { xs, ys, count } = this.model;
    let best = -1, bestDistance = Infinity;
    for (let i = 0; i < count; i++) {
      const d = (xs[i] - wx) ** 2 + (ys[i] - wy) ** 2;
      if (d < bestDistance) { bestDistance = d; best = i; }
    }
    const reach = Math.max(this.pitch, 12 / this.scale);
    return bestDistance <= reach * reach ? best : -1;
  }

  bind() {
    const canvas = this.canvas;
    let drag = null;
    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = canvas.getBoundingClientRect();
      this.zoomBy(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - rect.left, event.clientY - rect.top);
    }, { passive: false });
    canvas.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, panX: this.panX, panY: this.panY, moved: false };
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
      if (drag.moved) { this.panX = drag.panX + dx; this.panY = drag.panY + dy; this.redraw(); }
    });
    canvas.addEventListener("pointerup", (event) => {
      const wasDrag = drag && drag.moved;
      drag = null;
      if (wasDrag) return;
      const rect = canvas.getBoundingClientRect();
      const i = this.nearest(event.clientX - rect.left, event.clientY - rect.top);
      if (i >= 0) this.onPick(i, this.seatPixels >= 6);
    });
    canvas.addEventListener("keydown", (event) => {
      const step = 60;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (moves[event.key]) { this.panX += moves[event.key][0]; this.panY += moves[event.key][1]; this.redraw(); }
      else if (event.key === "+" || event.key === "=") this.zoomBy(1.5);
      else if (event.key === "-") this.zoomBy(1 / 1.5);
      else if (event.key === "0") { this.zoom = 1; this.panX = 0; this.panY = 0; this.redraw(); }
      else return;
      event.preventDefault();
    });
    new ResizeObserver(() => this.redraw()).observe(canvas);
  }
}

// The legend: a word and a shape per state, not colour alone.
export function legendItems() {
  const shapes = [
    '<rect x="1" y="1" width="12" height="12" rx="2" fill="#0072B2"/>',
    '<rect x="1.5" y="1.5" width="11" height="11" rx="2" fill="#fff" stroke="#E69F00" stroke-width="2" stroke-dasharray="3 2"/>',
    '<rect x="1" y="1" width="12" height="12" rx="2" fill="#9a9a9a"/><path d="M3 3l8 8M11 3l-8 8" stroke="#fff" stroke-width="1.5"/>',
    '<rect x="1" y="1" width="12" height="12" rx="2" fill="#009E73" stroke="#000" stroke-width="2"/>',
  ];
  return ["Available", "Reserved by another fan", "Sold", "Your selection"].map((label, i) => [shapes[i], label]);
}
