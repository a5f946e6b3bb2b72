/// The status page `GET /` serves: one self-contained HTML document (inline CSS and script, nothing loaded from
/// elsewhere). It holds no data: it reads the held leases from `GET /v2/leases`, follows each shown key over
/// `GET /v2/leases/{key}/watch`, and lists a system's rounds from `GET /v2/rounds/{system}`.
///
/// With authentication on, it asks for a token (or takes it from the address's fragment, `#token=TOKEN`, which the
/// browser never sends), keeps it in the tab's `sessionStorage`, sends it as `Authorization: Bearer` on its
/// requests and as `access_token` on its event streams. Every value it shows is set as text, never as markup.
enum StatusPage {
    /// At most this many event streams at once: the first keys of the listing are followed live, the rest
    /// refreshed by the periodic listing only.
    static let maxStreams = 50

    /// The page.
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>Baton status</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f7f8fa; }
        h1 { font-size: 1.4em; margin: 0 0 .6em; }
        h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
        form { display: flex; gap: .5em; flex-wrap: wrap; align-items: center; margin: .4em 0; }
        input { font: inherit; padding: .25em .4em; border: 1px solid #b8bfcc; border-radius: 4px; }
        button { font: inherit; padding: .25em .8em; border-radius: 4px; border: 1px solid #6b7a99; background: #fff; }
        table { border-collapse: collapse; width: 100%; background: #fff; }
        th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
        th { background: #eef1f6; font-weight: 600; }
        td.key, td.holder, td.metadata { font-family: ui-monospace, monospace; word-break: break-all; }
        td.token, td.left { font-variant-numeric: tabular-nums; white-space: nowrap; }
        tr.vacant td { color: #8a93a6; }
        tr.changed td { animation: flash 1.2s ease-out; }
        @keyframes flash { from { background: #fff3b0; } to { background: transparent; } }
        .note { color: #5b6475; font-size: .9em; }
        .error { color: #b3261e; }
        .live { color: #1b7f3b; }
        </style>
        </head>
        <body>
        <h1>Baton status</h1>
        <form id="auth-form" autocomplete="off">
          <label for="token-input">Token</label>
          <input id="token-input" type="password" size="28" placeholder="only if the service asks for one">
          <button type="submit">Use</button>
          <button type="button" id="token-forget">Forget</button>
          <span id="auth-state" class="note"></span>
        </form>
        <p class="note">The token stays in this tab (sessionStorage). It is sent as <code>Authorization: Bearer</code>,
        and to event streams as the <code>access_token</code> query parameter, since a browser's EventSource cannot
        send headers.</p>

        <h2>Held leases</h2>
        <form id="prefix-form" autocomplete="off">
          <label for="prefix-input">Key prefix</label>
          <input id="prefix-input" size="28" placeholder="every key">
          <button type="submit">Filter</button>
          <span id="list-state" class="note"></span>
        </form>
        <table id="leases">
          <thead><tr><th>Key</th><th>Holder</th><th>Token</th><th>Time left</th><th>Metadata</th></tr></thead>
          <tbody></tbody>
        </table>
        <p class="note" id="stream-state"></p>

        <h2>Recent rounds</h2>
        <form id="rounds-form" autocomplete="off">
          <label for="system-input">System</label>
          <input id="system-input" size="28" placeholder="a v1 system name">
          <button type="submit">Show</button>
          <span id="rounds-state" class="note"></span>
        </form>
        <table id="rounds">
          <thead><tr><th>Round</th><th>Winner</th><th>Completed by</th></tr></thead>
          <tbody></tbody>
        </table>

        <script>
        "use strict";
        const MAX_STREAMS = \#(maxStreams);
        const LIST_EVERY_MS = 3000;
        const LIST_LIMIT = 500;
        const $ = (id) => document.getElementById(id);
        const rows = new Map();     // key -> {row, lease, deadline}
        const streams = new Map();  // key -> EventSource
        let token = sessionStorage.getItem("baton.token") || "";
        let prefix = "";
        let system = "";
        let relistSoon = null;

        // A token in the fragment (#token=...) is taken and removed from the address bar.
        (function takeFragment() {
          const fields = new URLSearchParams(location.hash.slice(1));
          if (fields.has("token")) {
            token = fields.get("token");
            sessionStorage.setItem("baton.token", token);
          }
          if (fields.has("prefix")) { prefix = fields.get("prefix"); }
          if (fields.has("system")) { system = fields.get("system"); }
          if (location.hash) { history.replaceState(null, "", location.pathname + location.search); }
        })();

        function setText(element, text, className) {
          element.textContent = text;
          if (className !== undefined) { element.className = className; }
        }

        function cell(className) {
          const td = document.createElement("td");
          td.className = className;
          return td;
        }

        async function getJSON(path) {
          const headers = token ? { "Authorization": "Bearer " + token } : {};
          const answer = await fetch(path, { headers, cache: "no-store" });
          let body = null;
          try { body = await answer.json(); } catch (e) { body = null; }
          if (!answer.ok) {
            const message = body && typeof body.error === "string" ? body.error : "HTTP " + answer.status;
            const failure = new Error(message);
            failure.status = answer.status;
            throw failure;
          }
          return body;
        }

        function showAuth(status) {
          if (status === 401) {
            setText($("auth-state"), token ? "the token was refused" : "this service asks for a token", "error");
          } else {
            setText($("auth-state"), token ? "token set" : "no token", "note");
          }
        }

        // Puts one lease into its row; `lease` is null when the key has no leader now.
        function render(key, lease, remainingMs, via) {
          let entry = rows.get(key);
          if (!entry) {
            const row = document.createElement("tr");
            row.dataset.key = key;
            for (const name of ["key", "holder", "token", "left", "metadata"]) { row.appendChild(cell(name)); }
            row.cells[0].textContent = key;
            entry = { row, lease: null, deadline: null };
            rows.set(key, entry);
            placeRow(key, row);
          }
          const before = entry.lease;
          const changed = !before !== !lease || (before && lease &&
            (before.holder !== lease.holder || before.token !== lease.token || before.metadata !== lease.metadata));
          entry.lease = lease;
          // Which source showed the current term first: its event stream, or a listing.
          if (changed) { entry.row.dataset.via = via; }
          if (remainingMs !== undefined) {
            entry.deadline = remainingMs === null ? null : performance.now() + remainingMs;
          }
          const cells = entry.row.cells;
          cells[1].textContent = lease ? lease.holder : "(nobody)";
          cells[2].textContent = lease ? String(lease.token) : "";
          cells[4].textContent = lease && lease.metadata !== null && lease.metadata !== undefined ? lease.metadata : "";
          entry.row.classList.toggle("vacant", !lease);
          if (changed && before !== null) {
            entry.row.classList.remove("changed");
            void entry.row.offsetWidth;
            entry.row.classList.add("changed");
          }
          tick(entry);
        }

        function placeRow(key, row) {
          const body = $("leases").tBodies[0];
          for (const other of body.rows) {
            if (other.dataset.key > key) { body.insertBefore(row, other); return; }
          }
          body.appendChild(row);
        }

        function tick(entry) {
          const cellLeft = entry.row.cells[3];
          if (!entry.lease) { cellLeft.textContent = ""; return; }
          if (entry.deadline === null) { cellLeft.textContent = "…"; return; }
          const left = Math.max(0, entry.deadline - performance.now());
          cellLeft.textContent = (left / 1000).toFixed(1) + " s";
        }

        function dropRow(key) {
          const entry = rows.get(key);
          if (entry) { entry.row.remove(); rows.delete(key); }
          unwatch(key);
          showStreams();
        }

        function watch(key) {
          if (streams.has(key) || streams.size >= MAX_STREAMS) { return; }
          let url = "/v2/leases/" + encodeURIComponent(key) + "/watch";
          if (token) { url += "?access_token=" + encodeURIComponent(token); }
          const source = new EventSource(url);
          streams.set(key, source);
          source.addEventListener("leader", (event) => {
            let data;
            try { data = JSON.parse(event.data); } catch (e) { return; }
            const entry = rows.get(key);
            const before = entry ? entry.lease : null;
            if (entry) { entry.row.dataset.events = String(Number(entry.row.dataset.events || 0) + 1); }
            const leader = data.leader;
            const sameTerm = before && leader && before.token === leader.token;
            // A new term's time left is not in the event: keep "…" until the listing, asked at once, tells it.
            render(key, leader, sameTerm ? undefined : null, "watch");
            rows.get(key).row.dataset.watched = leader ? leader.holder + " " + leader.token : "";
            if (!sameTerm || before.metadata !== leader.metadata) { scheduleRelist(); }
            showStreams();
          });
          source.addEventListener("error", () => {
            if (source.readyState === EventSource.CLOSED) {
              streams.delete(key);
              showStreams();
            }
          });
        }

        function unwatch(key) {
          const source = streams.get(key);
          if (source) { source.close(); streams.delete(key); }
        }

        function showStreams() {
          const shown = rows.size;
          let text = "Live: " + streams.size + " event stream" + (streams.size === 1 ? "" : "s") +
            " (at most " + MAX_STREAMS + "; other keys refresh every " + LIST_EVERY_MS / 1000 + " s).";
          if (shown > MAX_STREAMS) { text += " " + (shown - MAX_STREAMS) + " keys are not followed live."; }
          setText($("stream-state"), text, "note");
        }

        function scheduleRelist() {
          if (relistSoon !== null) { return; }
          relistSoon = setTimeout(() => { relistSoon = null; relist(); }, 100);
        }

        async function relist() {
          const path = "/v2/leases?limit=" + LIST_LIMIT + (prefix ? "&prefix=" + encodeURIComponent(prefix) : "");
          let listing;
          try {
            listing = await getJSON(path);
          } catch (failure) {
            showAuth(failure.status);
            setText($("list-state"), "listing failed: " + failure.message, "error");
            return;
          }
          showAuth(200);
          const held = new Set();
          for (const lease of listing.leases) {
            held.add(lease.key);
            render(lease.key, lease, lease.remaining_ms === null ? null : lease.remaining_ms, "list");
          }
          for (const key of Array.from(rows.keys())) {
            if (!held.has(key)) { dropRow(key); }
          }
          for (const key of rows.keys()) { watch(key); }
          const count = listing.leases.length;
          const more = listing.truncated ? " (more are held: narrow the prefix)" : "";
          setText($("list-state"), count + " held" + more + ", listed " + new Date().toLocaleTimeString(), "live");
          showStreams();
        }

        async function showRounds() {
          const body = $("rounds").tBodies[0];
          if (!system) { body.replaceChildren(); setText($("rounds-state"), ""); return; }
          let listing;
          try {
            listing = await getJSON("/v2/rounds/" + encodeURIComponent(system) + "?limit=20");
          } catch (failure) {
            setText($("rounds-state"), "rounds failed: " + failure.message, "error");
            return;
          }
          const fresh = listing.rounds.map((round) => {
            const row = document.createElement("tr");
            row.dataset.round = round.round;
            for (const [name, value] of [["round", round.round], ["winner", round.winner],
              ["completed", round.completed_by]]) {
              const td = cell(name);
              td.textContent = value === null || value === undefined ? "—" : value;
              row.appendChild(td);
            }
            return row;
          });
          body.replaceChildren(...fresh);
          setText($("rounds-state"), fresh.length + " rounds" + (listing.truncated ? " (the newest 20)" : ""), "note");
        }

        function restartStreams() {
          for (const key of Array.from(streams.keys())) { unwatch(key); }
          relist();
        }

        $("auth-form").addEventListener("submit", (event) => {
          event.preventDefault();
          token = $("token-input").value;
          $("token-input").value = "";
          sessionStorage.setItem("baton.token", token);
          restartStreams();
          showRounds();
        });
        $("token-forget").addEventListener("click", () => {
          token = "";
          sessionStorage.removeItem("baton.token");
          restartStreams();
        });
        $("prefix-form").addEventListener("submit", (event) => {
          event.preventDefault();
          prefix = $("prefix-input").value;
          for (const key of Array.from(rows.keys())) {
            if (!key.startsWith(prefix)) { dropRow(key); }
          }
          relist();
        });
        $("rounds-form").addEventListener("submit", (event) => {
          event.preventDefault();
          system = $("system-input").value.trim();
          showRounds();
        });

        $("prefix-input").value = prefix;
        $("system-input").value = system;
        showAuth(200);
        relist();
        showRounds();
        setInterval(relist, LIST_EVERY_MS);
        setInterval(showRounds, 5000);
        setInterval(() => { for (const entry of rows.values()) { tick(entry); } }, 200);
        </script>
        </body>
        </html>
        """#
}
