/**
 * `cage court …`: submit evidence anyone holds (a JSON file: a log fork, a notary fork, a
 * validator's two signed QBFT payloads, a split-origin proof and receipt, a usage line), read
 * cases, vote on judged cases, answer a consistency challenge. Shared plumbing in cli/bank.ts.
 */
import { commonHelp, flags, positiveId, readJsonFile, runQuery, runTx, usage, wantsHelp, type ModuleOutput } from './bank.js';

export const COURT_HELP = `Usage: cage court <command> [flags]

The Court: cryptographic evidence slashes bonded GEN at once; disputes are voted by bonded GEN.

Commands:
  submit-evidence FILE         Submit evidence (JSON: {"type": "log-fork"|"notary-fork"|
                               "validator-equivocation"|"split-origin"|"usage", ...})
  case ID                      Show a case
  cases [--open]               List the latest cases
  vote ID claimant|respondent  Vote on a judged case with your bonded GEN
  answer ID FILE               Answer a consistency challenge (FILE: JSON list of base64 hashes)
  notary DID                   Whether the court dropped this notary

${commonHelp('submit-evidence, vote, answer')}`;

const caseId = (s: string, what: string): number => positiveId(s, what, 'case');

/** Runs `cage court <args>`; returns the exit code. */
export async function courtMain(args: string[], output: ModuleOutput): Promise<number> {
  const [sub, ...rest] = args;
  if (wantsHelp(sub, false, COURT_HELP, output)) return 0;
  const what = `court ${sub}`;
  const counts: Record<string, number> = { 'submit-evidence': 1, case: 1, cases: 0, vote: 2, answer: 2, notary: 1 };
  if (counts[sub] === undefined) throw usage(`court: unknown command "${sub}"; run \`cage court --help\``);
  const { v, p } = flags(rest, sub === 'cases' ? { open: { type: 'boolean' } } : {}, what, counts[sub]!);
  if (wantsHelp(sub, v.help, COURT_HELP, output)) return 0;
  switch (sub) {
    case 'submit-evidence':
      return runTx(v, 'court', 'submit', { evidence: courtEvidence(await readJsonFile(p[0]!, what)) }, output, what);
    case 'case':
      return runQuery(v, 'court', 'case', { id: caseId(p[0]!, what) }, output, what);
    case 'cases':
      return runQuery(v, 'court', 'cases', v.open === true ? { open: true } : {}, output, what);
    case 'vote':
      if (p[1] !== 'claimant' && p[1] !== 'respondent') throw usage(`${what}: vote claimant or respondent`);
      return runTx(v, 'court', 'vote', { caseId: caseId(p[0]!, what), side: p[1] }, output, what);
    case 'answer':
      return runTx(v, 'court', 'answer', { caseId: caseId(p[0]!, what), proof: await readJsonFile(p[1]!, what) }, output, what);
    default:
      return runQuery(v, 'court', 'notary', { did: p[0] }, output, what);
  }
}

/**
 * Court evidence from a file: as is, or a notary's evidence file (`cage-notary-evidence/v1`, what
 * `cage notary serve` keeps under DIR/evidence when a log forks, rolls back or fails a consistency
 * proof) turned into a `log-fork` case with the two log-signed checkpoints it holds.
 */
export function courtEvidence(file: unknown): unknown {
  const f = file as { type?: unknown; recorded?: { note?: unknown }; submitted?: { note?: unknown } };
  if (typeof f !== 'object' || f === null || f.type !== 'cage-notary-evidence/v1') return file;
  if (typeof f.recorded?.note !== 'string' || typeof f.submitted?.note !== 'string') throw usage('a notary evidence file needs recorded.note and submitted.note');
  return { type: 'log-fork', a: f.recorded.note, b: f.submitted.note };
}
