/**
 * The module registry: every module the chain runs, in a fixed order (the order `endBlock` runs in
 * and part of consensus: all validators must run the same list). Adding a module is one import and
 * one entry in `defaultModules`.
 */
import type { ChainModule } from '../module.js';
import { anchorModule } from './anchor.js';
import { bankModule } from './bank.js';
import { courtModule } from './court.js';
import { govModule } from './gov.js';
import { validatorsModule } from './validators.js';

export function defaultModules(): ChainModule[] {
  return [anchorModule, validatorsModule, bankModule, courtModule, govModule];
}

export { anchorModule, validatorsModule, bankModule, courtModule, govModule };
