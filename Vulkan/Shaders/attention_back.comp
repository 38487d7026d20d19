#version 450
// Shapes: dOutput [B, T, C], qkv [B, T, 3C], probs [B, NH, T, T], dQkv [B, T, 3C], dPre [B, NH, T, T] (scratch); C = NH·hs.
// Backward pass 1 of 2, one workgroup per (query row t, head h, batch b) = (x, y, z), for s ≤ t:
// dAtt[t, s] = dOut_t·v_s; dPre[t, s] = att[t, s]·(dAtt[t, s] − Σ_r att[t, r]·dAtt[t, r])/√hs (softmax Jacobian,
// then the scale of the scores); dq_t += Σ_s dPre[t, s]·k_s. dPre is saved for pass 2 (attention_back_kv.comp).
// One workgroup owns dq_t, so there are no races. Invocation `lane` owns the columns s ≡ lane (mod W) of the dPre row.
// Phases (attention.glsl) as in attention.comp: dAtt and dq per key range [keyBegin, keyEnd) when split.
#include "common.glsl"
#include "attention.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint T;
    uint C;
    uint hs;          // C / NH
    uint firstHead;   // the dispatch covers heads [firstHead, firstHead + NH') of batches [0, B') of its slice
    float scale;      // 1/√hs
    uint keyBegin, keyEnd, phases;
} pc;

READONLY_BUFFER(0, float, dOutput);  // [B, T, C]
READONLY_BUFFER(1, float, qkv);      // [B, T, 3C]
READONLY_BUFFER(2, float, probs);    // [B, NH, T, T]
BUFFER(3, float, dQkv);              // [B, T, 3C]
BUFFER(4, float, dPre);              // [B, NH, T, T] ∂L/∂(q·k), written for s ≤ t only

shared float reduce_[gl_WorkGroupSize.x];   // [W] tree reduction
shared float weights[gl_WorkGroupSize.x];   // [W] one chunk of dPre[t, s]

// Σ over the workgroup of x (same tree, same order every run).
float sumWorkgroup(float x) {
    uint lane = gl_LocalInvocationID.x;
    reduce_[lane] = x;
    barrier();
    for (uint stride = gl_WorkGroupSize.x / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) reduce_[lane] += reduce_[lane + stride];
        barrier();
    }
    return reduce_[0];
}

void main() {
    uint t = gl_WorkGroupID.x, b = gl_WorkGroupID.z;
    uint h = pc.firstHead + gl_WorkGroupID.y;   // head in qkv; the slice's probs hold heads [firstHead, firstHead + NH')
    uint slot = b * gl_NumWorkGroups.y + gl_WorkGroupID.y;   // (b, h) in the slice's probs [B', NH', T, T]
    uint lane = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, T = pc.T, C3 = 3u * pc.C;
    uint query = b * T * C3 + t * C3 + h * pc.hs;   // q_t (and dq_t); k_s at keys + s·3C, v_s at values + s·3C
    uint keys = b * T * C3 + pc.C + h * pc.hs;
    uint values = keys + pc.C;
    uint dOut = b * T * pc.C + t * pc.C + h * pc.hs;  // dOut_t
    uint row = (slot * T + t) * T;          // probs[b, h, t, :] and dPre[b, h, t, :]

    uint keyEnd = min(pc.keyEnd, t + 1u);   // keys of this dispatch: [keyBegin, keyEnd)

    if ((pc.phases & PHASE_SCORES) != 0u)   // dAtt[t, s] = dOut_t·v_s, kept in dPre for now
        for (uint s = pc.keyBegin + lane; s < keyEnd; s += W) {
            float dAtt = 0.0;
            for (uint i = 0u; i < pc.hs; i++) dAtt += dOutput[AT(0, dOut + i)] * qkv[AT(1, values + s * C3 + i)];
            dPre[AT(4, row + s)] = dAtt;
        }

    if ((pc.phases & PHASE_SOFTMAX) != 0u) {
        // dPre = att ⊙ (dAtt − Σ_s att·dAtt) / √hs
        float weighted = 0.0;
        for (uint s = lane; s <= t; s += W) weighted += probs[AT(2, row + s)] * dPre[AT(4, row + s)];
        weighted = sumWorkgroup(weighted);
        for (uint s = lane; s <= t; s += W) dPre[AT(4, row + s)] = probs[AT(2, row + s)] * (dPre[AT(4, row + s)] - weighted) * pc.scale;
    }

    if ((pc.phases & PHASE_OUTPUT) == 0u) return;   // uniform: the rest has barriers
    // dq_t[i] += Σ_{s in the keys} dPre[t, s]·k_s[i]: chunks of W columns staged in shared memory, dims i in stripes of W
    for (uint base = 0u; base < pc.hs; base += W) {
        uint i = base + lane;
        float acc = 0.0;
        for (uint chunk = pc.keyBegin; chunk < keyEnd; chunk += W) {
            uint s = chunk + lane;   // ≡ lane (mod W): this invocation wrote dPre[row + s]
            barrier();               // the previous chunk (or the reduction's reduce_[0]) is consumed
            weights[lane] = s < keyEnd ? dPre[AT(4, row + s)] : 0.0;
            barrier();
            uint count = min(W, keyEnd - chunk);
            if (i < pc.hs)
                for (uint j = 0u; j < count; j++) acc += weights[j] * qkv[AT(1, keys + (chunk + j) * C3 + i)];
        }
        if (i < pc.hs) dQkv[AT(3, query + i)] += acc;
    }
}
