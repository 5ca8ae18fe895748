/** The web pages' escaping template helper, host filter, and the strict Prometheus parser used by the tests. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pageHost, storePathName } from '../../apps/gateway/src/web/format';
import { escapeHtml, html, raw } from '../../apps/gateway/src/web/html';
import { parsePrometheusText } from '../helpers/prometheus';

describe('html template helper', () => {
  it('escapes every interpolation, including inside arrays, and keeps nested html', () => {
    const evil = `<img src=x onerror="alert('1')">&\``;
    const out = html`<p title="${evil}">${evil}${[evil, html`<b>${evil}</b>`]}${raw('<i>ok</i>')}${null}${undefined}${false}${3}</p>`.value;
    assert.ok(!out.includes('<img'));
    const esc = '&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;&#96;';
    assert.equal(escapeHtml(evil), esc);
    assert.equal(out, `<p title="${esc}">${esc}${esc}<b>${esc}</b><i>ok</i>3</p>`);
  });

  it('uses the request host only when it is a host[:port]', () => {
    assert.equal(pageHost('registry.example.com:5000', 'x'), 'registry.example.com:5000');
    assert.equal(pageHost('[::1]:8080', 'x'), '[::1]:8080');
    for (const bad of ['"><img src=x>', 'a b', 'host/path', '', undefined]) assert.equal(pageHost(bad, 'fallback:1'), 'fallback:1');
  });

  it('names store paths by what follows the hash', () => {
    assert.equal(storePathName('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-git-2.39.2'), 'git-2.39.2');
  });
});

describe('strict Prometheus text parser', () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1\\"2"} 3\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n';
  it('accepts valid text', () => {
    const f = parsePrometheusText(ok);
    assert.equal(f.get('a_total')?.samples[0]?.labels.x, '1"2');
    assert.equal(f.get('h')?.type, 'histogram');
  });
  it('rejects what Prometheus would reject', () => {
    for (const bad of [
      'a 1', // no newline at the end
      '# TYPE a counter\na -1\n',
      '# TYPE a gauge\na{x="\\q"} 1\n',
      '# TYPE a gauge\na{1x="1"} 1\n',
      '# TYPE a gauge\na one\n',
      '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n',
      '# TYPE a gauge\na 1\na 1\n',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n',
      '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 3\n',
    ]) {
      assert.throws(() => parsePrometheusText(bad), Error, bad);
    }
  });
});
