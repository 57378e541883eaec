// mutual's only script (an ES module, served from the binary; no inline
// script anywhere, so the strict CSP holds). It does four things:
//  1. quick exit: the button, or Esc twice within a second, replaces the
//     page with a blank one at once;
//  2. keeps the tab's history free of mutual pages: links and forms move
//     with location.replace / history.replaceState, never adding entries,
//     so after a quick exit "Back" leads to no mutual page;
//  3. live updates from /events (server-sent events): posts, replies,
//     retractions, hides and pins are drawn without a reload, from markup
//     the server escaped;
//  4. nothing else: without it every form still works.

const NEUTRAL = "about:blank";

function quickExit() {
  try { document.documentElement.replaceChildren(); } catch (_) { /* leave at once anyway */ }
  location.replace(NEUTRAL);
}

let lastEsc = 0;
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  const now = Date.now();
  if (now - lastEsc < 1000) { e.preventDefault(); quickExit(); }
  lastEsc = now;
});
document.addEventListener("click", (e) => {
  if (e.target instanceof Element && e.target.closest("#exit")) { quickExit(); }
});

// Links of this app: replace, never push.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target instanceof Element ? e.target.closest("a[href]") : null;
  if (!a) return;
  const url = new URL(a.getAttribute("href"), location.href);
  if (url.origin !== location.origin) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  location.replace(url.href);
});

function announce(text) {
  const live = document.getElementById("live");
  if (live) live.textContent = text;
}

function showPage(html, url) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  document.body.replaceWith(document.adoptNode(doc.body));
  document.title = "mutual";
  let target = null;
  if (url) {
    // A post just written: `?p=ID` names it (a fetch drops the #fragment).
    const u = new URL(url);
    const p = u.searchParams.get("p");
    if (p) {
      u.search = "";
      u.hash = `p-${p}`;
      target = document.getElementById(`p-${p}`);
    }
    history.replaceState(null, "", u.href);
  }
  const error = document.getElementById("error");
  if (error) { error.focus(); }
  else if (target) {
    const art = target.querySelector("article");
    (art || target).focus();
    target.scrollIntoView({ block: "center" });
  } else {
    const main = document.getElementById("main");
    if (main) main.focus();
  }
}

// Forms: sent with fetch, the answer drawn in place (history unchanged).
let sending = false;
document.addEventListener("submit", async (e) => {
  const form = e.target;
  // Attributes, not form.action / form.method: a field of that name would
  // shadow them.
  if (!(form instanceof HTMLFormElement) || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
  const action = new URL(form.getAttribute("action") || location.href, location.href).href;
  e.preventDefault();
  if (sending) return;
  sending = true;
  try {
    const body = new URLSearchParams(new FormData(form, e.submitter || undefined));
    const r = await fetch(action, {
      method: "POST", body, credentials: "same-origin", redirect: "follow",
    });
    const text = await r.text();
    if (r.status === 401 || r.status === 403 || r.status === 421 || !r.headers.get("content-type")?.startsWith("text/html")) {
      showPage(text.startsWith("<!DOCTYPE") ? text : `<!DOCTYPE html><p>${r.status}</p>`, null);
      return;
    }
    showPage(text, r.redirected ? r.url : null);
  } catch (_) {
    announce("Could not reach the node. Is it still running?");
  } finally {
    sending = false;
  }
});

// Live updates.
function fragment(html) {
  const t = document.createElement("template");
  t.innerHTML = html; // markup escaped by the server; scripts in it never run
  return t.content.firstElementChild;
}

function pageTopic() { return document.body.dataset.topic || null; }

function onPost(d, restored) {
  const topic = pageTopic();
  if (topic === null) {
    const badge = document.querySelector(`[data-unread="${CSS.escape(d.topic)}"]`);
    if (badge && !d.mine && !restored) {
      const n = Number(badge.dataset.count || "0") + 1;
      badge.dataset.count = String(n);
      badge.textContent = `${n} new`;
      badge.hidden = false;
    }
    return;
  }
  if (topic !== d.topic) return;
  const existing = document.getElementById(`p-${d.id}`);
  const node = fragment(d.html);
  if (!node) return;
  if (existing) {
    if (!restored) return;
    const old = existing.querySelector(":scope > article");
    const fresh = node.querySelector(":scope > article");
    if (old && fresh) old.replaceWith(fresh); else if (fresh) existing.prepend(fresh);
    existing.dataset.pinned = d.pinned ? "1" : "0";
    return;
  }
  node.classList.add("arrived");
  const parent = d.parent ? document.getElementById(`p-${d.parent}`) : null;
  const list = parent ? parent.querySelector(":scope > ol.replies") : document.getElementById("thread");
  if (!list) return;
  list.append(node);
  const empty = document.getElementById("empty");
  if (empty) empty.hidden = true;
  announce(parent ? "A new reply arrived." : "A new post arrived.");
}

function onRemoved(d) {
  const li = document.getElementById(`p-${d.id}`);
  if (!li) return;
  const article = li.querySelector(":scope > article");
  if (d.reason === "hidden" && d.html) {
    const fresh = fragment(d.html)?.querySelector(":scope > article");
    if (article && fresh) article.replaceWith(fresh);
    announce("A moderator hid a post.");
    return;
  }
  if (article) article.remove();
  const replies = li.querySelector(":scope > ol.replies");
  if (!replies || replies.children.length === 0) li.remove();
  announce(d.reason === "retracted" ? "A post was taken back by its author." : "A post was removed by a moderator.");
}

function onPin(d) {
  const li = document.getElementById(`p-${d.id}`);
  if (!li) return;
  li.dataset.pinned = d.pinned ? "1" : "0";
  const header = li.querySelector(":scope > article > header");
  const badge = header?.querySelector(".pin");
  if (d.pinned && header && !badge) {
    const b = document.createElement("span");
    b.className = "badge pin";
    b.textContent = "Pinned";
    header.append(" ", b);
  } else if (!d.pinned && badge) {
    badge.remove();
  }
  const thread = document.getElementById("thread");
  if (d.pinned && thread && li.parentElement === thread) thread.prepend(li);
}

if (window.EventSource && document.querySelector("header.top")) {
  const source = new EventSource("/events");
  const on = (name, f) => source.addEventListener(name, (e) => {
    try { f(JSON.parse(e.data)); } catch (_) { /* a malformed event is skipped */ }
  });
  on("post", (d) => onPost(d, false));
  on("restored", (d) => onPost(d, true));
  on("removed", onRemoved);
  on("pin", onPin);
  on("reload", () => location.reload());
  on("stopped", () => { announce("The node stopped."); source.close(); });
  source.addEventListener("open", () => { document.documentElement.dataset.live = "1"; });
}
