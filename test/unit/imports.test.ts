/** Module structure rules: no circular imports; apps never import each other; only config.ts reads process.env. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import madge from 'madge';

const REPO = path.resolve(__dirname, '../..');
const APPS = ['gateway', 'worker', 'popcount-job'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (name === 'node_modules' || name === 'dist') continue;
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

describe('module structure', () => {
  it('has no circular imports', async () => {
    const res = await madge([path.join(REPO, 'libs/shared/src'), ...APPS.map((a) => path.join(REPO, 'apps', a, 'src')), path.join(REPO, 'src')], {
      fileExtensions: ['ts'],
      tsConfig: path.join(REPO, 'test/tsconfig.json'),
    });
    assert.ok(Object.keys(res.obj()).length > 40, 'madge parsed the sources');
    assert.deepEqual(res.circular(), []);
  });

  it('apps never import another app, and libs/shared never imports an app', () => {
    const offenders: string[] = [];
    for (const app of APPS) {
      for (const f of sources(path.join(REPO, 'apps', app, 'src'))) {
        const text = readFileSync(f, 'utf8');
        for (const other of APPS.filter((a) => a !== app)) {
          const imports = [...text.matchAll(/(?:from|import|require\() ?'([^']+)'/g)].map((m) => m[1]!);
          if (imports.some((i) => i === `@nixery/${other}` || i.includes(`apps/${other}`) || i.includes(`../${other}/`))) offenders.push(`${f} -> ${other}`);
        }
      }
    }
    for (const f of sources(path.join(REPO, 'libs/shared/src'))) {
      if (/(from|import|require\() ?'(@nixery\/(gateway|worker|popcount-job)|[./]*apps\/)/.test(readFileSync(f, 'utf8'))) offenders.push(f);
    }
    assert.deepEqual(offenders, []);
  });

  it('only config.ts reads process.env', () => {
    const readers = [...sources(path.join(REPO, 'libs/shared/src')), ...APPS.flatMap((a) => sources(path.join(REPO, 'apps', a, 'src'))), ...sources(path.join(REPO, 'src'))]
      .filter((f) => /process\.env\b/.test(readFileSync(f, 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')))
      .map((f) => path.relative(REPO, f));
    assert.deepEqual(readers, ['libs/shared/src/config.ts']);
  });
});
