"""The checkers' findings as one self-contained HTML page (`--html FILE`): for each anomaly, the history that shows
it drawn as Porcupine draws one, a row per client and a bar per operation from its call to its return (an
operation whose outcome is unknown runs to the right edge), calls and returns in order rather than to scale
(raftkube/timeline.py says why; hovering a bar shows its times), with the nemesis's faults as vertical lines. No
script, no outside file: open it in any browser, or attach it to a bug report.
"""
from __future__ import annotations

import html
import math

from raftkube import timeline
from raftkube.findings import Finding
from raftkube.linearizability import FAILED, UNKNOWN, Op

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
.summary { white-space: pre-wrap; font-family: monospace; background: #f6f6f6; padding: .8em; }
.chart { position: relative; margin: 1em 0 0 7em; border-left: 1px solid #999; }
.row { position: relative; height: 2.2em; border-bottom: 1px dotted #ddd; }
.who { position: absolute; left: -7em; width: 6.5em; top: .5em; text-align: right; font-family: monospace; }
.op { position: absolute; top: .3em; height: 1.6em; box-sizing: border-box; border: 1px solid #345;
      border-radius: 3px; background: #cde; overflow: hidden; white-space: nowrap; font: 12px/1.6em monospace;
      padding: 0 .3em; }
.op.write, .op.cas { background: #cec; }
.op.unknown { background: repeating-linear-gradient(45deg, #fdb, #fdb 6px, #fff 6px, #fff 12px);
              border-style: dashed; }
.op.failed { background: #eee; color: #888; }
.fault { position: absolute; top: 0; bottom: 0; border-left: 2px solid #c33; }
.fault span { position: absolute; top: -1.4em; left: 2px; white-space: nowrap; font-size: 11px; color: #c33; }
.axis { font-size: 11px; color: #666; margin-left: 7em; }
.faults { margin-top: 1.8em; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; }
"""


def render(title: str, summary: list[str], findings: list[Finding]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<div class='summary'>{html.escape(chr(10).join(summary))}</div>"]
    if not findings:
        parts.append("<p>The checkers found nothing wrong.</p>")
    for n, f in enumerate(findings, 1):
        parts += [f"<h2>Anomaly {n} of {len(findings)}: {html.escape(f.guarantee)}</h2>",
                  f"<p>{html.escape(f.summary)}</p>"]
        if f.ops:
            parts.append(_chart(f.ops, f.faults))
        if f.details:
            parts.append(f"<pre>{html.escape(chr(10).join(f.details))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _chart(ops: list[Op], faults: list[tuple[float, str]]) -> str:
    start = min(op.call for op in ops)
    end = max([op.ret for op in ops if op.ret != math.inf] + [op.call for op in ops])
    earlier = [(t, text) for t, text in faults if t < start]
    during = [(t, text) for t, text in faults if t >= start]
    place = timeline.positions([t for op in ops for t in (op.call, op.ret)] + [t for t, _ in during])
    slot = 100.0 / max(2, len(place))  # a bar reaches into the next slot, so the shortest is still readable

    def x(t: float) -> float:
        return place[t] * (100.0 - slot)

    rows: dict[int, list[str]] = {}
    for op in sorted(ops, key=lambda o: o.call):
        left, right = x(op.call), x(op.ret) + slot
        kind = "unknown" if op.outcome == UNKNOWN else "failed" if op.outcome == FAILED else op.kind
        ret = "unknown" if op.ret == math.inf else f"{op.ret - start:.3f}s"
        text = timeline.label(op) + (f" via {op.via}" if op.via else "")
        tip = f"{text}: called at {op.call - start:.3f}s, returned {ret}, outcome {op.outcome}"
        rows.setdefault(op.client, []).append(
            f"<div class='op {kind}' style='left:{left:.2f}%;width:{min(right, 100.0) - left:.2f}%' "
            f"title='{html.escape(tip, quote=True)}'>{html.escape(text)}</div>")
    lines = []
    if earlier:
        lines.append("<p>" + "<br>".join(f"{t - start:+.3f}s before: {html.escape(text)}" for t, text in earlier)
                     + "</p>")
    lines.append(f"<div class='chart{' faults' if during else ''}'>")
    lines += [f"<div class='fault' style='left:{x(t):.2f}%'><span>{html.escape(text)}</span></div>"
              for t, text in during]
    for client, bars in sorted(rows.items()):
        lines.append(f"<div class='row'><div class='who'>{html.escape(timeline.who(client))}</div>{''.join(bars)}"
                     "</div>")
    lines.append(f"</div><div class='axis'>calls and returns in order, over {end - start:.3f} s "
                 "(hover a bar for its times)</div>")
    return "\n".join(lines)
