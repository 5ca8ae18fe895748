#!/usr/bin/env node
// Gives every registry package in package-lock.json its download address
// ("resolved"), which `npm install` leaves out on machines whose npm config
// says omit-lockfile-registry-resolved. With the address, `npm ci` on a fresh
// machine fetches each tarball at once instead of first fetching the
// package's whole metadata document (see .npmrc). Run after `npm install`:
//   node scripts/lockfile-addresses.js
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const file = path.join(__dirname, '..', 'package-lock.json');
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
let added = 0;
for (const [key, entry] of Object.entries(lock.packages)) {
  if (!key.includes('node_modules/') || entry.link || entry.resolved || !entry.version) continue;
  const name = entry.name ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
  const resolved = `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${entry.version}.tgz`;
  // "resolved" goes right after "version", where npm itself writes it.
  lock.packages[key] = Object.fromEntries(
    Object.entries(entry).flatMap(([k, v]) => (k === 'version' ? [[k, v], ['resolved', resolved]] : [[k, v]])),
  );
  added++;
}
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`lockfile-addresses: ${added} download addresses added`);
