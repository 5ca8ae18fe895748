#!/usr/bin/env node
// The fast build of a first `npm start` (scripts/setup.sh): every project of
// tsconfig.json (its references and itself) has each of its TypeScript files
// turned into JavaScript on its own, without type checking, where the .js is
// missing or older than its source. isolatedModules (tsconfig.base.json) makes
// `tsc` refuse code that this would compile differently. `npm test` and
// `npm run build` type-check with `tsc -b` as before.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const root = path.join(__dirname, '..');

function readProject(dir) {
  const file = path.join(dir, 'tsconfig.json');
  const { config, error } = ts.readConfigFile(file, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  return ts.parseJsonConfigFileContent(config, ts.sys, dir, undefined, file);
}

function transpileProject(dir) {
  const project = readProject(dir);
  const options = { ...project.options, declaration: false, composite: false, declarationMap: false };
  let written = 0;
  for (const src of project.fileNames) {
    if (src.endsWith('.d.ts')) continue;
    const rel = path.relative(options.rootDir, src).replace(/\.ts$/, '.js');
    const out = path.join(options.outDir, rel);
    if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(src).mtimeMs) continue;
    const result = ts.transpileModule(fs.readFileSync(src, 'utf8'), { compilerOptions: options, fileName: src });
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const js = result.outputText;
    if (result.sourceMapText) {
      fs.writeFileSync(`${out}.map`, result.sourceMapText);
    }
    fs.writeFileSync(out, js);
    written++;
  }
  return { written, references: (project.projectReferences ?? []).map((r) => r.path) };
}

const start = Date.now();
const top = transpileProject(root);
let written = top.written;
for (const ref of top.references) written += transpileProject(ref).written;
console.log(`transpile: ${written} files in ${((Date.now() - start) / 1000).toFixed(1)} s (no type check; npm test type-checks)`);
