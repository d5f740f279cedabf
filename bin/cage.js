#!/usr/bin/env node
// The `cage` command: runs the compiled CLI (built by `npm ci` / `npm run build`).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`cage: ${err && err.stack ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
