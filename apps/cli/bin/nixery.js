#!/usr/bin/env node
// The nixery command (npx nixery build|push): the built CLI, apps/cli/dist/main.js.
require('../dist/main.js');
