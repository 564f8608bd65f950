// A VM's serial console in the page: Debian's xterm.js, joined by the
// console's websocket to the VM's serial port. What a read-only user
// types is dropped by the server.
"use strict";

(async () => {
  const q = new URLSearchParams(location.search);
  const vm = q.get("vm"), ns = q.get("ns") || "", port = q.get("port") || "0";
  const status = document.getElementById("status");
  document.getElementById("title").textContent = `${vm} (${ns}) serial ${port}`;
  document.title = `${vm}: serial ${port}`;
  const me = await (await fetch("/api/whoami")).json();
  const sel = document.getElementById("port");
  for (let i = 0; i < 4; i++) {
    const o = document.createElement("option");
    o.value = o.textContent = String(i);
    if (String(i) === port) o.selected = true;
    sel.append(o);
  }
  sel.addEventListener("change", () => { q.set("port", sel.value); location.search = q.toString(); });

  const term = new Terminal({ cols: 100, rows: 30, scrollback: 5000, disableStdin: me.readonly });
  term.open(document.getElementById("terminal"));
  term.focus();
  const decoder = new TextDecoder();
  // What came from the guest, for the page's tests and a copy button.
  const seen = { text: "" };
  window.mmSerial = { term, seen };

  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(`${proto}${location.host}/ws/serial/${encodeURIComponent(vm)}?ns=${encodeURIComponent(ns)}&port=${port}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { status.textContent = "connected"; status.classList.remove("off"); };
  // The reason is the console's when it let go: this page stopped
  // answering.
  ws.onclose = (ev) => {
    status.textContent = ev.reason ? `disconnected: ${ev.reason}` : "disconnected";
    status.classList.add("off");
  };
  // Let go when the page is left, even into the back/forward cache (the
  // relay keeps no viewer for a page nobody sees), and reconnect if it
  // comes back.
  addEventListener("pagehide", () => ws.close(1000, "page left"));
  addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
  ws.onmessage = (ev) => {
    const s = decoder.decode(new Uint8Array(ev.data), { stream: true });
    seen.text += s;
    if (seen.text.length > 1 << 20) seen.text = seen.text.slice(-(1 << 19));
    term.write(s);
  };
  const encoder = new TextEncoder();
  term.on("data", (d) => { if (ws.readyState === 1) ws.send(encoder.encode(d)); });
})();
