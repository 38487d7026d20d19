#version 450
// Shapes: dOutput [B, T, C], qkv [B, T, 3C], probs [B, NH, T, T], dPre [B, NH, T, T] (from pass 1), dQkv [B, T, 3C]; C = NH·hs.
// Backward pass 2 of 2, one workgroup per (key/value column s, head h, batch b) = (x, y, z), summing over t ≥ s:
// dk_s += Σ_t dPre[t, s]·q_t (dPre already carries the 1/√hs) and dv_s += Σ_t att[t, s]·dOut_t.
// One workgroup owns dk_s and dv_s; invocation `lane` owns the dims d ≡ lane (mod W) of [dk_s | dv_s] (2·hs long),
// so there is no shared memory and there are no barriers. The host may split t into ranges [keyBegin, keyEnd)
// (here query rows), one dispatch each, adding in order.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint T;
    uint C;
    uint hs;          // C / NH
    uint firstHead;   // the dispatch covers heads [firstHead, firstHead + NH') of batches [0, B') of its slice
    float scale;      // 1/√hs, unused: pass 1 folded it into dPre
    uint keyBegin, keyEnd, phases;   // query rows t of this dispatch; phases unused
} pc;

READONLY_BUFFER(0, float, dOutput);  // [B, T, C]
READONLY_BUFFER(1, float, qkv);      // [B, T, 3C]
READONLY_BUFFER(2, float, probs);    // [B, NH, T, T]
READONLY_BUFFER(3, float, dPre);     // [B, NH, T, T], valid for s ≤ t
BUFFER(4, float, dQkv);              // [B, T, 3C]

void main() {
    uint s = gl_WorkGroupID.x, b = gl_WorkGroupID.z;
    uint h = pc.firstHead + gl_WorkGroupID.y;   // head in qkv; the slice's probs hold heads [firstHead, firstHead + NH')
    uint slot = b * gl_NumWorkGroups.y + gl_WorkGroupID.y;   // (b, h) in the slice's probs [B', NH', T, T]
    uint T = pc.T, C3 = 3u * pc.C;
    uint queries = b * T * C3 + h * pc.hs;               // q_t at queries + t·3C
    uint key = b * T * C3 + s * C3 + pc.C + h * pc.hs;    // k_s (and dk_s); v_s at key + C
    uint dOuts = b * T * pc.C + h * pc.hs;               // dOut_t at dOuts + t·C
    uint column = slot * T * T + s;                      // [b, h, t, s] at column + t·T

    for (uint d = gl_LocalInvocationID.x; d < 2u * pc.hs; d += gl_WorkGroupSize.x) {
        float acc = 0.0;
        if (d < pc.hs) {
            // dk_s[d] += Σ_{t≥s} dPre[t, s]·q_t[d]
            for (uint t = max(s, pc.keyBegin); t < pc.keyEnd; t++) acc += dPre[AT(3, column + t * T)] * qkv[AT(1, queries + t * C3 + d)];
            dQkv[AT(4, key + d)] += acc;
        } else {
            // dv_s[i] += Σ_{t≥s} att[t, s]·dOut_t[i]
            uint i = d - pc.hs;
            for (uint t = max(s, pc.keyBegin); t < pc.keyEnd; t++) acc += probs[AT(2, column + t * T)] * dOutput[AT(0, dOuts + t * pc.C + i)];
            dQkv[AT(4, key + pc.C + i)] += acc;
        }
    }
}
