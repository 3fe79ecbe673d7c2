#include "serve/dashboard.h"

namespace switchyard::serve {

// Inline script and style only: the page must work where the gateway cannot reach the internet.
const std::string & dashboard_html() {
    static const std::string html = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>switchyard serve</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:1.5em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}#status,td.none{color:#666}td.none{text-align:left}
.bar{display:inline-block;height:10px;background:#4a8;vertical-align:middle}
</style></head><body>
<h1>switchyard serve</h1>
<p id="status">loading…</p>
<h2>Routes</h2><table id="routes"><thead><tr><th>route</th><th>model</th><th>fallback</th><th>requests</th><th>errors</th><th>fallbacks</th><th>escalations</th><th>canary</th><th>why</th></tr></thead><tbody></tbody></table>
<h2>Models</h2><table id="models"><thead><tr><th>model</th><th>kind</th><th>requests</th><th>errors</th><th>tokens in</th><th>tokens out</th><th>mean TTFT ms</th><th>mean total ms</th><th>$ per 1M tokens</th><th>est. cost</th></tr></thead><tbody></tbody></table>
<h2>Residency</h2><p id="budget"></p><table id="residency"><thead><tr><th>model</th><th>load</th><th>state</th><th>resident MiB</th><th>in use</th><th>waiting</th><th>loads</th><th>unloads</th><th>load failures</th><th>mean load s</th></tr></thead><tbody></tbody></table>
<h2>Replicas</h2><table id="replicas"><thead><tr><th>model</th><th>replica</th><th>state</th><th>outstanding</th><th>requests</th><th>failures</th><th>mean ms</th></tr></thead><tbody></tbody></table>
<h2>Shadows</h2><table id="shadows"><thead><tr><th>route</th><th>candidate</th><th>samples</th><th>exact match</th><th>token agreement</th><th>KLD</th><th>state</th></tr></thead><tbody></tbody></table>
<h2>Capture</h2><table id="capture"><thead><tr><th>route</th><th>sample</th><th>stored</th><th>dropped (queue full)</th><th>kept</th><th>redacted</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
function cell(v){const td=document.createElement("td");if(v instanceof Node)td.appendChild(v);else td.textContent=v;return td;}
function fill(id,rows){const tb=document.querySelector("#"+id+" tbody");tb.replaceChildren();
  if(!rows.length){const tr=document.createElement("tr"),td=cell("none");td.colSpan=document.querySelectorAll("#"+id+" th").length;
    td.className="none";tr.appendChild(td);tb.appendChild(tr);return;}
  for(const r of rows){const tr=document.createElement("tr");for(const v of r)tr.appendChild(cell(v));tb.appendChild(tr);}}
function dollars(x){return x>0?"$"+(x<0.01?x.toPrecision(3):x.toFixed(2)):"–";}
function why(r){const text=r.shadow&&r.shadow.decision?"shadowing "+r.shadow.model+" · plan: "+r.shadow.decision:(r.note||"");
  if(!(r.shadow&&r.shadow.evidence)&&!r.evidence)return text;
  const span=document.createElement("span");span.textContent=text+" ";const a=document.createElement("a");
  a.href="/evidence?route="+encodeURIComponent(r.name);a.textContent="evidence";span.appendChild(a);return span;}
function pct(x){return (100*x).toFixed(1)+"%";}
async function refresh(){
  try{
    const s=await (await fetch("/stats",{cache:"no-store"})).json();
    const rs=s.routes||{},ms=s.models||{},sh=s.shadows||{};
    let total=0;for(const k in ms)total+=ms[k].requests;
    document.getElementById("status").textContent="portfolio generation "+s.portfolio_generation+" · "+total+" requests answered · "+
      s.in_flight+" in flight · "+s.streams_active+" streams · "+s.rejected+" rejected";
    document.getElementById("status").dataset.requests=total;
    fill("routes",s.portfolio.routes.map(r=>{const c=rs[r.name]||{};return [r.name,r.cascade?"cascade: "+r.cascade.join(" → "):r.model,
      (r.fallback||[]).join(", "),c.requests||0,c.errors||0,c.fallbacks||0,c.escalations||0,c.canary||0,why(r)];}));
    fill("models",s.portfolio.models.map(m=>{const c=ms[m.name]||{};return [m.name+(m.resting?" (resting)":""),m.kind,c.requests||0,c.errors||0,
      c.tokens_in||0,c.tokens_out||0,((c.mean_ttft_s||0)*1000).toFixed(1),((c.mean_total_s||0)*1000).toFixed(1),dollars(1000*m.cost_per_1k_tokens),
      m.cost_per_1k_tokens>0?"$"+(c.cost||0).toFixed(6):"–"];}));
    const rd=s.residency||{models:{}},mib=b=>(b/1048576).toFixed(1);
    document.getElementById("budget").textContent=(rd.memory_budget_bytes?"memory budget "+mib(rd.memory_budget_bytes)+" MiB · ":"no memory budget · ")+
      mib(rd.resident_bytes||0)+" MiB resident · peak "+mib(rd.peak_resident_bytes||0)+" MiB";
    fill("residency",Object.entries(rd.models).map(([n,m])=>[n,m.load,m.state,mib(m.resident_bytes),m.in_use,m.waiting,m.loads,m.unloads,
      m.load_failures,m.load_seconds_mean.toFixed(2)]));
    fill("replicas",(s.replicas||[]).map(x=>[x.model,x.replica,x.healthy?"in rotation":"out",x.outstanding,x.requests,x.failures,x.mean_latency_ms.toFixed(1)]));
    const cap=s.capture||{};
    fill("capture",s.portfolio.routes.filter(r=>r.capture).map(r=>{const c=cap[r.name]||{};return [r.name,pct(r.capture.sample),c.stored||0,c.dropped||0,
      r.capture.max_items+" items, "+r.capture.retention_days+" days",(r.capture.redact||[]).join(", ")];}));
    fill("shadows",Object.entries(sh).map(([route,x])=>[route,x.candidate,x.samples,pct(x.exact_match),pct(x.token_agreement),
      x.kld_mean==null?"–":x.kld_mean.toFixed(4),x.state]));
  }catch(e){document.getElementById("status").textContent="cannot reach the gateway: "+e;}
}
refresh();setInterval(refresh,2000);
</script></body></html>
)HTML";
    return html;
}

}  // namespace switchyard::serve
