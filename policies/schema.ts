/**
 * The BISO policy bundle: its TypeScript shape and the JSON Schema (draft-07, ajv) a bundle must
 * match before it is compiled. Unknown keys are errors everywhere (a typo must never silently turn
 * off a protection); defaults live in the schema. The language is described in docs/policies.md.
 */

import { DETECTORS, type Detector } from './detect.js';

/** Data classes, least to most sensitive; a rule can select by class. */
export const DATA_CLASSES = ['Public', 'Internal', 'Confidential', 'Restricted', 'TopSecret'] as const;
export type DataClass = (typeof DATA_CLASSES)[number];
export const DATA_TYPES = ['PII', 'PHI', 'PCI', 'General'] as const;
export type DataType = (typeof DATA_TYPES)[number];
export const IDENTITY_KINDS = ['anonymous', 'api-key', 'jwt', 'did', 'zk'] as const;
export type IdentityKind = (typeof IDENTITY_KINDS)[number];

export interface Selector {
  routes?: string[];
  paths?: string[];
  methods?: string[];
}

export interface Classification extends Selector {
  id: string;
  class: DataClass;
  types: DataType[];
}

export interface RegionList {
  allow?: string[];
  block?: string[];
}

export interface Requirements {
  authenticated?: boolean;
  identity?: IdentityKind[];
  roles?: string[];
  signed?: boolean;
  encrypted?: 'tls' | 'pq' | 'any';
  max_body_bytes?: number;
  client_regions?: RegionList;
  upstream_regions?: RegionList;
  consent?: { regions: string[]; tokens?: string[] };
  purposes?: string[];
  inspect?: { detect: Detector[]; max_bytes: number };
}

export interface Rule {
  id: string;
  description?: string;
  effect: 'deny' | 'warn';
  shadow: boolean;
  when?: Selector & { classes?: DataClass[]; types?: DataType[] };
  require: Requirements;
}

export interface BundleSignature {
  /** Ed25519 public key, 32 bytes, base64. */
  key: string;
  /** Ed25519 signature over the canonical form, 64 bytes, base64. */
  sig: string;
}

export interface Bundle {
  name: string;
  version: string;
  description?: string;
  shadow: boolean;
  default_class: DataClass;
  default_types: DataType[];
  region_groups: Record<string, string[]>;
  classify: Classification[];
  rules: Rule[];
  signature?: BundleSignature;
}

/** Limits on a bundle file; the YAML parser and schema enforce them before anything is compiled. */
export const BUNDLE_LIMITS = Object.freeze({ maxBytes: 1024 * 1024, maxDepth: 12, maxAliases: 0, maxRules: 1000, maxList: 256 });

const ID = { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' } as const;
const REGION = { type: 'string', pattern: '^[A-Z][A-Z0-9-]{1,15}$' } as const;
const WORD = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:/-]+$' } as const;
const list = (items: object, minItems = 1): object => ({ type: 'array', items, minItems, maxItems: BUNDLE_LIMITS.maxList, uniqueItems: true });
const METHOD = { type: 'string', pattern: '^[A-Z]{1,16}$' } as const;
const selectorProps = {
  routes: list({ type: 'string', minLength: 1, maxLength: 128 }),
  paths: list({ type: 'string', minLength: 1, maxLength: 512 }),
  methods: list(METHOD),
};
const regionList = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { allow: list(REGION), block: list(REGION) },
};

export const BUNDLE_SCHEMA = {
  $id: 'https://http-cage.dev/schemas/policy-bundle-v1.json',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'version', 'rules'],
  properties: {
    name: ID,
    version: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9.+_-]+$' },
    description: { type: 'string', maxLength: 2048 },
    shadow: { type: 'boolean', default: false },
    default_class: { enum: [...DATA_CLASSES], default: 'Internal' },
    default_types: { ...list({ enum: [...DATA_TYPES] }), default: ['General'] },
    region_groups: {
      type: 'object',
      default: {},
      maxProperties: 64,
      propertyNames: REGION,
      additionalProperties: list(REGION),
    },
    classify: {
      type: 'array',
      default: [],
      maxItems: BUNDLE_LIMITS.maxRules,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'class'],
        properties: { id: ID, ...selectorProps, class: { enum: [...DATA_CLASSES] }, types: { ...list({ enum: [...DATA_TYPES] }), default: ['General'] } },
      },
    },
    rules: {
      type: 'array',
      maxItems: BUNDLE_LIMITS.maxRules,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'require'],
        properties: {
          id: ID,
          description: { type: 'string', maxLength: 2048 },
          effect: { enum: ['deny', 'warn'], default: 'deny' },
          shadow: { type: 'boolean', default: false },
          when: {
            type: 'object',
            additionalProperties: false,
            properties: { ...selectorProps, classes: list({ enum: [...DATA_CLASSES] }), types: list({ enum: [...DATA_TYPES] }) },
          },
          require: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            properties: {
              authenticated: { type: 'boolean' },
              identity: list({ enum: [...IDENTITY_KINDS] }),
              roles: list(WORD),
              signed: { type: 'boolean' },
              encrypted: { enum: ['tls', 'pq', 'any'] },
              max_body_bytes: { type: 'integer', minimum: 0, maximum: 2 ** 40 },
              client_regions: regionList,
              upstream_regions: regionList,
              consent: {
                type: 'object',
                additionalProperties: false,
                required: ['regions'],
                properties: { regions: list(REGION), tokens: list(WORD) },
              },
              purposes: list(WORD),
              inspect: {
                type: 'object',
                additionalProperties: false,
                required: ['detect'],
                properties: { detect: list({ enum: [...DETECTORS] }), max_bytes: { type: 'integer', minimum: 1, maximum: 16 * 1024 * 1024, default: 65536 } },
              },
            },
          },
        },
      },
    },
    signature: {
      type: 'object',
      additionalProperties: false,
      required: ['key', 'sig'],
      properties: {
        key: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
        sig: { type: 'string', pattern: '^[A-Za-z0-9+/]{86}==$' },
      },
    },
  },
} as const;
