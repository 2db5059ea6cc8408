"""The page at ``/``: self-contained HTML and JavaScript (no CDN, no external request) over the JSON API.

Pick a user: their history, LLM summary (with --trsr), the retrieved list and the reranked one with scores. Add an
item (with the write token) and see where it lands in the user's list. ``/?user=U&k=10&rerank=1`` opens on a user. Every text is inserted with
``textContent``, never as HTML, so item text stays data on the page too.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>recllm serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:72rem;color:#222}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin:.8rem 0 .3rem}
.row{display:flex;gap:1.5rem;flex-wrap:wrap}.col{flex:1;min-width:20rem}
input{padding:.25rem;margin:.15rem}button{padding:.25rem .7rem}
ol{padding-left:1.6rem}li{margin:.15rem 0}.new{background:#ffef9e}.muted{color:#777}
#status{min-height:1.2rem;color:#a00}
</style></head><body>
<h1>recllm serve</h1>
<div>User <input id="user" size="12"> k <input id="k" size="3" value="10">
<label><input type="checkbox" id="rerank"> rerank with the LLM</label>
<button id="show">Show</button> <span id="health" class="muted"></span></div>
<div id="status"></div>
<div class="row">
 <div class="col"><h2>History (oldest first)</h2><ol id="history"></ol>
  <h2>LLM summary</h2><p id="summary" class="muted">-</p></div>
 <div class="col"><h2>Retrieved (LEARN)</h2><ol id="retrieved"></ol></div>
 <div class="col"><h2>Reranked (LLM-TRSR)</h2><ol id="reranked"></ol></div>
</div>
<h2>Add an item</h2>
<div>id <input id="new-id" size="10"> text <input id="new-text" size="40">
token <input id="token" type="password" size="16"> <button id="add">Add</button> <span id="added"></span></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let lastAdded = null;
async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({error: "not JSON"}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function fill(list, rows, scored) {
  list.replaceChildren();
  for (const row of rows) {
    const li = document.createElement("li");
    let label = row.item + (row.text ? " - " + row.text : "");
    if (scored && row.score !== undefined) label += "  [score " + row.score.toFixed(3) +
      (row.p_yes !== undefined ? ", P(Yes) " + row.p_yes.toFixed(3) : "") + "]";
    li.textContent = label;
    li.dataset.item = row.item;
    if (row.item === lastAdded) li.className = "new";
    list.appendChild(li);
  }
}
async function show() {
  $("status").textContent = "";
  const user = encodeURIComponent($("user").value.trim()), k = encodeURIComponent($("k").value);
  try {
    const history = await api("/users/" + user + "/history");
    fill($("history"), history.items, false);
    const retrieved = await api("/recommend?user=" + user + "&k=" + k);
    fill($("retrieved"), retrieved.items, true);
    if ($("rerank").checked) {
      const reranked = await api("/recommend?user=" + user + "&k=" + k + "&rerank=llm");
      fill($("reranked"), reranked.items, true);
      const summary = await api("/users/" + user + "/summary");
      $("summary").textContent = (summary.summary || "(none yet)") + " (version " + summary.version + ")";
    } else { $("reranked").replaceChildren(); }
  } catch (error) { $("status").textContent = error.message; }
}
async function add() {
  const id = $("new-id").value.trim();
  try {
    await api("/items", {method: "POST", headers: {"Content-Type": "application/json",
      "Authorization": "Bearer " + $("token").value}, body: JSON.stringify({id: id, text: $("new-text").value})});
    lastAdded = id;
    await show();
    const where = (list) => {
      const place = [...$(list).children].findIndex((li) => li.dataset.item === id);
      return place >= 0 ? "rank " + (place + 1) : "not in the top k";
    };
    $("added").textContent = "added; " + where("retrieved") + " for this user" +
      ($("rerank").checked ? ", " + where("reranked") + " after reranking" : "");
  } catch (error) { $("status").textContent = error.message; }
}
const params = new URLSearchParams(location.search);  // /?user=U&k=10&rerank=1 opens on that user
if (params.get("user")) {
  $("user").value = params.get("user");
  if (params.get("k")) $("k").value = params.get("k");
  $("rerank").checked = params.get("rerank") === "1";
  show();
}
$("show").addEventListener("click", show);
$("add").addEventListener("click", add);
api("/health").then((h) => { $("health").textContent = h.items + " items, " + h.users + " users" +
  (h.rerank ? ", LLM rerank on" : ""); $("rerank").disabled = !h.rerank; }).catch(() => {});
</script></body></html>
"""
