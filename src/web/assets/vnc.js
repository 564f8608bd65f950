// A VM's screen in the page: Debian's noVNC, joined by the console's
// websocket to the VM's VNC. A read-only user's input is dropped by the
// server; the page only stops sending it.
import RFB from "/novnc/core/rfb.js";

const q = new URLSearchParams(location.search);
const vm = q.get("vm"), ns = q.get("ns") || "";
const status = document.getElementById("status");
document.getElementById("title").textContent = `${vm} (${ns})`;
document.title = `${vm}: screen`;
document.getElementById("serial-link").href = `/serial.html?vm=${encodeURIComponent(vm)}&ns=${encodeURIComponent(ns)}`;

const me = await (await fetch("/api/whoami")).json();
document.body.classList.toggle("readonly", me.readonly);
const proto = location.protocol === "https:" ? "wss://" : "ws://";
const url = `${proto}${location.host}/ws/vnc/${encodeURIComponent(vm)}?ns=${encodeURIComponent(ns)}`;
const rfb = new RFB(document.getElementById("screen"), url, { shared: true });
rfb.viewOnly = me.readonly;
rfb.scaleViewport = false;
rfb.addEventListener("connect", () => { status.textContent = "connected"; status.classList.remove("off"); });
rfb.addEventListener("disconnect", (e) => {
  status.textContent = e.detail.clean ? "disconnected" : "connection lost";
  status.classList.add("off");
});
// A page left (or kept in the back/forward cache) lets go of the screen;
// one that comes back starts over.
addEventListener("pagehide", () => rfb.disconnect());
addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
document.getElementById("cad").addEventListener("click", () => rfb.sendCtrlAltDel());
window.mmVnc = rfb;
