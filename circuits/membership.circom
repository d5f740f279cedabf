pragma circom 2.1.0;

// Anonymous group membership (Semaphore-style) for HTTP Cage.
//
// Tree: fixed-depth (DEPTH = 20) binary Merkle tree, node = Poseidon(left, right),
// empty leaf = 0 (zero subtrees: z[0] = 0, z[i+1] = Poseidon(z[i], z[i])).
// Leaf = identity commitment = Poseidon(secret).
// External nullifier = Poseidon(scope, epoch); nullifier = Poseidon(secret, externalNullifier).
// The signal hash is bound by a dummy square constraint so a proof cannot be re-used for
// another signal (Groth16 proofs are malleable only as far as the public inputs allow).
//
// Public inputs (in this order): root, nullifier, signalHash, scope, epoch
// Public output order in snarkjs: outputs first, then public inputs — this circuit has no
// outputs; root and nullifier are constrained inputs so the verifier supplies every value.

include "poseidon.circom";
include "mux1.circom";
include "bitify.circom";

template MerkleInclusion(DEPTH) {
    signal input leaf;
    signal input pathIndices[DEPTH];
    signal input siblings[DEPTH];
    signal output root;

    component hashers[DEPTH];
    component mux[DEPTH];
    signal levels[DEPTH + 1];
    levels[0] <== leaf;

    for (var i = 0; i < DEPTH; i++) {
        // each path bit is 0 or 1
        pathIndices[i] * (1 - pathIndices[i]) === 0;

        mux[i] = MultiMux1(2);
        mux[i].c[0][0] <== levels[i];
        mux[i].c[0][1] <== siblings[i];
        mux[i].c[1][0] <== siblings[i];
        mux[i].c[1][1] <== levels[i];
        mux[i].s <== pathIndices[i];

        hashers[i] = Poseidon(2);
        hashers[i].inputs[0] <== mux[i].out[0];
        hashers[i].inputs[1] <== mux[i].out[1];
        levels[i + 1] <== hashers[i].out;
    }
    root <== levels[DEPTH];
}

template Membership(DEPTH) {
    // private
    signal input secret;
    signal input pathIndices[DEPTH];
    signal input siblings[DEPTH];
    // public
    signal input root;
    signal input nullifier;
    signal input signalHash;
    signal input scope;
    signal input epoch;

    component commitment = Poseidon(1);
    commitment.inputs[0] <== secret;

    component tree = MerkleInclusion(DEPTH);
    tree.leaf <== commitment.out;
    for (var i = 0; i < DEPTH; i++) {
        tree.pathIndices[i] <== pathIndices[i];
        tree.siblings[i] <== siblings[i];
    }
    root === tree.root;

    component externalNullifier = Poseidon(2);
    externalNullifier.inputs[0] <== scope;
    externalNullifier.inputs[1] <== epoch;

    component nullifierHash = Poseidon(2);
    nullifierHash.inputs[0] <== secret;
    nullifierHash.inputs[1] <== externalNullifier.out;
    nullifier === nullifierHash.out;

    // Bind the signal hash into the proof.
    signal signalSquare;
    signalSquare <== signalHash * signalHash;
}

component main { public [root, nullifier, signalHash, scope, epoch] } = Membership(20);
