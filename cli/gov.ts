/**
 * `cage gov …`: propose (a JSON file `{title, actions}`), vote, and show proposals and the
 * governed settings. Shared plumbing in cli/bank.ts.
 */
import { commonHelp, flags, positiveId, readJsonFile, runQuery, runTx, usage, wantsHelp, type ModuleOutput } from './bank.js';

export const GOV_HELP = `Usage: cage gov <command> [flags]

Governance: proposals voted by bonded GEN, executed when the voting window closes.

Commands:
  propose FILE             Propose (JSON: {"title": "...", "actions": [...]}; see docs/bank-court.md)
  vote ID yes|no|abstain   Vote with your bonded GEN
  show [ID]                Show one proposal, or the latest ones
  params                   The governance parameters and the notary quorum

${commonHelp('propose, vote')}`;

const proposalId = (s: string, what: string): number => positiveId(s, what, 'proposal');

/** Runs `cage gov <args>`; returns the exit code. */
export async function govMain(args: string[], output: ModuleOutput): Promise<number> {
  const [sub, ...rest] = args;
  if (wantsHelp(sub, false, GOV_HELP, output)) return 0;
  const what = `gov ${sub}`;
  if (!['propose', 'vote', 'show', 'params'].includes(sub)) throw usage(`gov: unknown command "${sub}"; run \`cage gov --help\``);
  const { v, p } = flags(rest, {}, what, sub === 'vote' ? 2 : sub === 'propose' ? 1 : sub === 'show' ? [0, 1] : 0);
  if (wantsHelp(sub, v.help, GOV_HELP, output)) return 0;
  switch (sub) {
    case 'propose':
      return runTx(v, 'gov', 'propose', await readJsonFile(p[0]!, what), output, what);
    case 'vote':
      if (!['yes', 'no', 'abstain'].includes(p[1]!)) throw usage(`${what}: vote yes, no or abstain`);
      return runTx(v, 'gov', 'vote', { id: proposalId(p[0]!, what), choice: p[1] }, output, what);
    case 'show':
      return p.length === 0 ? runQuery(v, 'gov', 'proposals', {}, output, what) : runQuery(v, 'gov', 'proposal', { id: proposalId(p[0]!, what) }, output, what);
    default:
      return runQuery(v, 'gov', 'params', {}, output, what);
  }
}
