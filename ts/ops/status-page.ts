// The status page: one static HTML document, its script and its style, served as they are
// (no build step). The script reads /status.json and draws it with DOM text nodes only, so
// that whatever the registry holds (host tags and shard names are user input) shows as text
// and never as markup; it follows /events (the change stream) and draws again on a change.

/** PAGE_HTML is the page: headings and empty tables, filled by PAGE_JS. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Zongzi cluster</title>
<link rel="stylesheet" href="page.css">
<script src="page.js" defer></script>
</head>
<body>
<header>
<h1>Zongzi <span id="cluster"></span></h1>
<p id="summary">loading…</p>
<p id="live" class="off">connecting</p>
</header>
<main>
<section>
<h2>Hosts</h2>
<div class="scroll"><table id="hosts">
<thead><tr><th>host</th><th>status</th><th>tags</th><th>bus address</th>
<th>replicas</th><th>leaders</th></tr></thead><tbody></tbody>
</table></div>
</section>
<section>
<h2>Shards</h2>
<div class="scroll"><table id="shards">
<thead><tr><th>id</th><th>name</th><th>type</th><th>status</th><th>leader</th>
<th>replicas</th><th>placement</th></tr></thead><tbody></tbody>
</table></div>
</section>
<section>
<h2>Recent membership changes</h2>
<ol id="recent"></ol>
</section>
</main>
</body>
</html>
`

/** PAGE_CSS styles the page for a phone first: tables scroll sideways within their box. */
export const PAGE_CSS = `
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #fafafa; }
header, main { padding: 0 12px; }
h1 { font-size: 1.3em; margin: 12px 0 4px; }
h2 { font-size: 1.1em; margin: 18px 0 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e3e3;
  vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 14em; overflow-wrap: anywhere; }
td.reps span { display: block; }
code { font-size: 0.9em; }
.tag { display: inline-block; background: #eef; border-radius: 3px; padding: 0 4px;
  margin: 1px 2px 1px 0; }
.active, .ok { color: #11690f; }
.missing, .error, .deleting { color: #b3261e; font-weight: 600; }
.draining, .new { color: #8a5a00; }
.gone { color: #777; }
.leader { font-weight: 600; }
#live.on::before { content: "● "; color: #11690f; }
#live.off::before { content: "● "; color: #b3261e; }
ol { padding-left: 20px; }
@media (max-width: 600px) { body { font-size: 14px; } th, td { padding: 3px 5px; } }
`

/** PAGE_JS draws /status.json and follows /events; it builds text nodes, never HTML. */
export const PAGE_JS = `'use strict'
;(function () {
  var status = null
  var pending = null
  var source = null

  function el(tag, text, cls) {
    var e = document.createElement(tag)
    if (text !== undefined && text !== null) e.textContent = String(text)
    if (cls) e.className = cls
    return e
  }
  function row(cells) {
    var tr = document.createElement('tr')
    cells.forEach(function (c) {
      var td = c instanceof Node ? c : el('td', c)
      if (td.tagName !== 'TD') { var w = el('td'); w.appendChild(td); td = w }
      tr.appendChild(td)
    })
    return tr
  }
  function short(id) { return id ? String(id).slice(0, 8) : '' }
  function tags(t) {
    var td = el('td', null, 'wrap')
    Object.keys(t || {}).sort().forEach(function (k) {
      td.appendChild(el('span', k + '=' + t[k], 'tag'))
    })
    return td
  }
  function fill(id, rows) {
    var body = document.querySelector('#' + id + ' tbody')
    body.replaceChildren.apply(body, rows)
  }

  function draw(s) {
    status = s
    document.getElementById('cluster').textContent = s.cluster
    var leaders = s.shards.filter(function (x) { return x.leaderHost }).length
    document.getElementById('summary').textContent =
      s.hosts.length + ' hosts, ' + s.shards.length + ' shards (' + leaders + ' with a leader), ' +
      'registry index ' + s.index + ', as host ' + short(s.hostId) + ' sees it'
    var names = {}
    s.hosts.forEach(function (h) { names[h.id] = short(h.id) })
    fill('hosts', s.hosts.map(function (h) {
      var tr = row([el('code', short(h.id)), el('span', h.status, h.status), tags(h.tags),
        h.apiAddress, h.replicas, h.leaders])
      tr.title = h.id
      tr.dataset.host = h.id
      return tr
    }))
    fill('shards', s.shards.map(function (sh) {
      var reps = el('td', null, 'wrap reps')
      sh.replicas.forEach(function (r) {
        var text = (names[r.hostId] || short(r.hostId)) + (r.nonVoting ? ' (non-voting)' : '') +
          (r.status !== 'active' ? ' ' + r.status : '') +
          (r.lag !== undefined ? ' lag ' + r.lag : '')
        reps.appendChild(el('span', text, r.leader ? 'leader' : ''))
      })
      var place = sh.placementError !== undefined
        ? el('span', sh.placementError, 'error') : el('span', 'ok', 'ok')
      var tr = row([sh.id, sh.name, sh.type, el('span', sh.status, sh.status),
        sh.leaderHost ? names[sh.leaderHost] || short(sh.leaderHost) : '—', reps, place])
      tr.dataset.shard = String(sh.id)
      return tr
    }))
    var recent = document.getElementById('recent')
    recent.replaceChildren.apply(recent, s.recent.slice().reverse().map(function (c) {
      var what = c.changes.filter(function (x) { return x.kind === 'replica' }).map(function (x) {
        var r = x.record
        return r ? 'replica ' + x.id + ' of shard ' + r.shardId + ' on ' +
          (names[r.hostId] || short(r.hostId)) + (r.nonVoting ? ' (non-voting)' : '') +
          ' ' + r.status : 'replica ' + x.id + ' removed'
      }).join('; ')
      return el('li', '#' + c.index + ' ' + c.op + (c.by ? ' by ' + short(c.by) : '') + ': ' + what)
    }))
  }

  function load() {
    return fetch('status.json', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json() })
      .then(draw)
  }
  function later() {
    if (pending) return
    pending = setTimeout(function () { pending = null; load().catch(function () {}) }, 200)
  }
  function follow() {
    if (source) source.close()
    source = new EventSource('events?since=' + status.index)
    var live = document.getElementById('live')
    source.onopen = function () { live.className = 'on'; live.textContent = 'live' }
    source.onerror = function () { live.className = 'off'; live.textContent = 'reconnecting' }
    source.addEventListener('change', later)
    source.addEventListener('reset', function () {
      source.close()
      load().then(follow, function () { setTimeout(start, 2000) })
    })
  }
  function start() {
    load().then(follow, function () { setTimeout(start, 2000) })
  }
  start()
})()
`
