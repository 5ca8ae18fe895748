import { type HtmlValue, type SafeHtml, html, raw } from './html';

const CSS = `
:root { color-scheme: light dark; --fg:#1d2329; --muted:#5f6b76; --bg:#fbfbfa; --card:#fff; --line:#dde2e6; --accent:#4a6fa5; --shared:#d08c2b; --bad:#b3261e; }
@media (prefers-color-scheme: dark) { :root { --fg:#e4e7ea; --muted:#9aa5b0; --bg:#15191d; --card:#1d2227; --line:#30373e; --accent:#7fa4d8; --shared:#e0a54a; --bad:#f2877d; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 980px; margin: 0 auto; padding: 24px 16px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
a { color: var(--accent); }
code, pre { font: 13px/1.45 ui-monospace, monospace; }
pre { background: var(--card); border: 1px solid var(--line); padding: 8px 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 4px 0; }
.muted { color: var(--muted); }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; font-size: 13px; color: var(--muted); }
.num { text-align: right; white-space: nowrap; }
.stage { font-weight: 600; }
.pill { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; border: 1px solid var(--line); }
.failure { border-left: 3px solid var(--bad); padding: 4px 10px; margin: 10px 0; background: var(--card); }
.failure .what { font-weight: 600; }
.layers { display: flex; flex-direction: column; gap: 10px; }
.layer { background: var(--card); border: 1px solid var(--line); padding: 6px 8px; }
.bar-row { display: grid; grid-template-columns: 2.2em 1fr 6.5em; align-items: center; gap: 8px; }
.bar-row .size { white-space: nowrap; text-align: right; }
.layer-bar { height: 18px; background: var(--accent); min-width: 3px; border-radius: 2px; }
.layer-bar.shared { background: var(--shared); }
.layer .pkgs { font: 12px/1.4 ui-monospace, monospace; word-break: break-all; }
.stack { display: flex; height: 26px; border: 1px solid var(--line); margin: 8px 0 16px; }
.stack .segment { height: 100%; background: var(--accent); border-right: 1px solid var(--bg); }
.stack .segment.shared { background: var(--shared); }
.legend .swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin: 0 4px 0 12px; background: var(--accent); }
.legend .swatch.shared { background: var(--shared); }
footer { margin-top: 40px; font-size: 13px; }
`;

/** The page shell: title, CSS, body and an optional inline script allowed by the CSP nonce. */
export function layout(opts: { title: string; body: HtmlValue; nonce: string; script?: SafeHtml }): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title}</title>
<style>${raw(CSS)}</style>
</head>
<body>
<main>
${opts.body}
<footer class="muted"><a href="/">Nixery</a> · <a href="/metrics">metrics</a> · <a href="/healthz">healthz</a> · <a href="/readyz">readyz</a></footer>
</main>
${opts.script ? html`<script nonce="${opts.nonce}">${opts.script}</script>` : ''}
</body>
</html>
`;
}

/** Content-Security-Policy for the pages: only our own nonce'd script and style, fetches to ourselves. */
export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    // Bar widths are style attributes; a nonce here would make browsers ignore 'unsafe-inline'.
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}
