// Minimal ambient types for the untyped zk packages (snarkjs, circomlibjs, ffjavascript):
// only what circuits/ uses.
declare module 'snarkjs' {
  export interface Groth16Proof {
    pi_a: string[];
    pi_b: string[][];
    pi_c: string[];
    protocol: string;
    curve: string;
  }
  export interface Logger {
    debug(...args: unknown[]): void;
    info(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
  }
  export const groth16: {
    fullProve(input: Record<string, unknown>, wasm: string | Uint8Array, zkey: string | Uint8Array, logger?: Logger, wtnsCalcOptions?: unknown, proverOptions?: unknown): Promise<{ proof: Groth16Proof; publicSignals: string[] }>;
    verify(vk: unknown, publicSignals: string[], proof: Groth16Proof, logger?: Logger): Promise<boolean>;
  };
  export const powersOfTau: {
    newAccumulator(curve: unknown, power: number, fileName: string, logger?: Logger): Promise<unknown>;
    contribute(oldPtau: string, newPtau: string, name: string, entropy: string, logger?: Logger): Promise<unknown>;
    beacon(oldPtau: string, newPtau: string, name: string, beaconHash: string, numIterationsExp: number, logger?: Logger): Promise<unknown>;
    preparePhase2(oldPtau: string, newPtau: string, logger?: Logger): Promise<unknown>;
  };
  export const zKey: {
    newZKey(r1cs: string, ptau: string, zkey: string, logger?: Logger): Promise<unknown>;
    contribute(oldZkey: string, newZkey: string, name: string, entropy: string, logger?: Logger): Promise<unknown>;
    beacon(oldZkey: string, newZkey: string, name: string, beaconHash: string, numIterationsExp: number, logger?: Logger): Promise<unknown>;
    exportVerificationKey(zkey: string, logger?: Logger): Promise<Record<string, unknown>>;
  };
  export const wtns: {
    calculate(input: Record<string, unknown>, wasm: string | Uint8Array, out: { type: 'mem'; data?: Uint8Array }): Promise<void>;
  };
  export const curves: {
    getCurveFromName(name: string, options?: { singleThread?: boolean }): Promise<unknown>;
  };
}

declare module 'circomlibjs' {
  export interface PoseidonField {
    toObject(x: Uint8Array): bigint;
    e(x: bigint | string | number): Uint8Array;
  }
  export interface Poseidon {
    (inputs: (bigint | Uint8Array)[]): Uint8Array;
    F: PoseidonField;
  }
  export function buildPoseidon(): Promise<Poseidon>;
}

declare module 'ffjavascript' {
  export function buildBn128(singleThread?: boolean, plugins?: unknown): Promise<unknown>;
  export const utils: {
    unstringifyBigInts(x: unknown): unknown;
    leInt2Buff(n: bigint, len: number): Uint8Array;
    leBuff2int(b: Uint8Array): bigint;
  };
}
