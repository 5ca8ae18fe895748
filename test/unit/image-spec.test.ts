import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig, splitWords } from '../../libs/shared/src/config/config';
import { parseImage, validateName } from '../../libs/shared/src/protocol/image-spec';

describe('image names (Nixery rules)', () => {
  it('shell meta-package expands and always-added packages are present', () => {
    const r = parseImage('shell/hello', 'latest');
    assert.ok(r.ok);
    assert.deepEqual(r.spec.packages, ['bashInteractive', 'cacert', 'coreutils', 'hello', 'iana-etc', 'moreutils', 'nano']);
    assert.equal(r.spec.system, 'x86_64-linux');
    assert.equal(r.spec.architecture, 'amd64');
  });

  it('order and duplicates do not change the package list', () => {
    const a = parseImage('git/htop/git', 'latest');
    const b = parseImage('htop/git', 'latest');
    assert.ok(a.ok && b.ok);
    assert.deepEqual(a.spec.packages, b.spec.packages);
    assert.deepEqual(a.spec.packages, ['cacert', 'git', 'htop', 'iana-etc']);
  });

  it('arm64 at the front selects aarch64-linux', () => {
    const r = parseImage('arm64/shell/git', 'latest');
    assert.ok(r.ok);
    assert.equal(r.spec.system, 'aarch64-linux');
    assert.equal(r.spec.architecture, 'arm64');
    assert.ok(r.spec.packages.includes('bashInteractive'));
    assert.ok(!r.spec.packages.includes('arm64'));
  });

  it('shell is only a meta-package at the front', () => {
    const r = parseImage('git/shell', 'latest');
    assert.ok(r.ok);
    assert.ok(r.spec.packages.includes('shell'));
    assert.ok(!r.spec.packages.includes('bashInteractive'));
  });

  it('dotted and digit-leading names pass through as data', () => {
    const r = parseImage('xorg.xev/7zz', 'latest');
    assert.ok(r.ok);
    assert.ok(r.spec.packages.includes('xorg.xev'));
    assert.ok(r.spec.packages.includes('7zz'));
  });

  // Every separator the spec allows between lowercase letters and digits: `.`, `_`, `__`, any run of `-`.
  for (const name of ['hello', '7zz', 'xorg.xev', 'python3.pkgs', 'a_b', 'a__b', 'a-b', 'a---b', 'iana-etc', 'arm64/shell/git', 'a0/b1/c2']) {
    it(`accepts ${JSON.stringify(name)}`, () => {
      assert.equal(validateName(name), null);
      assert.ok(parseImage(name, 'latest').ok);
    });
  }

  it('an uppercase name is rejected with a reason naming the component and the grammar', () => {
    const r = validateName('shell/Hello');
    assert.equal(r?.kind, 'name_invalid');
    assert.match(r?.reason ?? '', /"Hello".*\[a-z0-9\]\+/);
  });

  const bad: [string, string, string][] = [
    ['', 'latest', 'name_invalid'],
    ['a//b', 'latest', 'name_invalid'],
    ['../etc', 'latest', 'name_invalid'],
    ['a/..', 'latest', 'name_invalid'],
    ['hello"; builtins.abort "x', 'latest', 'name_invalid'],
    ['${pkgs.hello}', 'latest', 'name_invalid'],
    ['x'.repeat(256), 'latest', 'name_invalid'],
    // The spec's grammar (issue 12): lowercase only, so one image has one spelling.
    ['Hello', 'latest', 'name_invalid'],
    ['shell/bashInteractive', 'latest', 'name_invalid'],
    ['HELLO/jq', 'latest', 'name_invalid'],
    ['_7zz', 'latest', 'name_invalid'],
    ['gtk+', 'latest', 'name_invalid'],
    ['hello.', 'latest', 'name_invalid'],
    ['xorg..xev', 'latest', 'name_invalid'],
    ['-hello', 'latest', 'name_invalid'],
    ['hello_', 'latest', 'name_invalid'],
    ['a___b', 'latest', 'name_invalid'],
    ['a._b', 'latest', 'name_invalid'],
    ['hello/', 'latest', 'name_invalid'],
    ['hello', '', 'tag_invalid'],
    ['hello', '-bad', 'tag_invalid'],
    ['hello', 'a'.repeat(129), 'tag_invalid'],
    ['hello', 'x/y', 'tag_invalid'],
  ];
  for (const [name, tag, kind] of bad) {
    it(`rejects ${JSON.stringify(name.slice(0, 30))}:${JSON.stringify(tag.slice(0, 20))} as ${kind}`, () => {
      const r = parseImage(name, tag);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.error.kind, kind);
    });
  }
});

describe('NIXERY_NIX_OPTIONS word splitting', () => {
  const cases: [string, string[]][] = [
    ["--option substituters ''", ['--option', 'substituters', '']],
    ['--option substituters ""', ['--option', 'substituters', '']],
    ["  --option   substituters 'http://a http://b'  ", ['--option', 'substituters', 'http://a http://b']],
    ["--max-jobs 4 --option sandbox false", ['--max-jobs', '4', '--option', 'sandbox', 'false']],
    ['', []],
  ];
  for (const [text, want] of cases) {
    it(JSON.stringify(text), () => assert.deepEqual(splitWords(text), want));
  }
  it('loadConfig uses it', () => {
    assert.deepEqual(loadConfig({ NIXERY_NIX_OPTIONS: "--option substituters ''" }).nix.options, ['--option', 'substituters', '']);
  });
});
