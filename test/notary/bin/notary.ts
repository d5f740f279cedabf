/** `cage notary …` for the tests, until cli/main.ts dispatches to it: node --import tsx test/notary/bin/notary.ts init|serve … */
import { notaryMain } from '../../../cli/notary.js';

const code = await notaryMain(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
});
process.exit(code);
