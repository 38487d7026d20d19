#version 450
// Shapes: qkv [B, T, 3C] = q | k | v (each [B, T, NH, hs]), output [B, T, C], probs [B, NH, T, T]; C = NH·hs.
// One workgroup per (query row t, head h, batch b) = (x, y, z):
// att[t, s] = softmax_{s≤t}(q_t·k_s/√hs) (row maximum subtracted, 0 for s > t), out_t = Σ_s att[t, s]·v_s.
// Invocation `lane` owns the columns s ≡ lane (mod W) of the probs row in every loop, so it only reads back
// probs it wrote itself; the only cross-invocation traffic goes through shared memory. W must be a power of two.
// Phases (attention.glsl), all in one dispatch when the row fits the loop budget; else SCORES and OUTPUT run per key
// range [keyBegin, keyEnd) (multiples of W), with SOFTMAX once between them.
#include "common.glsl"
#include "attention.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint T;
    uint C;
    uint hs;          // C / NH
    uint firstHead;   // the dispatch covers heads [firstHead, firstHead + NH') of batches [0, B') of its slice
    float scale;      // 1/√hs
    uint keyBegin, keyEnd, phases;
} pc;

READONLY_BUFFER(0, float, qkv);  // [B, T, 3C]
BUFFER(1, float, output_);       // [B, T, C]
BUFFER(2, float, probs);         // [B, NH, T, T]

shared float reduce_[gl_WorkGroupSize.x];   // [W] tree reductions
shared float weights[gl_WorkGroupSize.x];   // [W] one chunk of att[t, s]

// max or Σ over the workgroup of x (same tree, same order every run).
float reduceWorkgroup(float x, bool maximum) {
    uint lane = gl_LocalInvocationID.x;
    reduce_[lane] = x;
    barrier();
    for (uint stride = gl_WorkGroupSize.x / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) reduce_[lane] = maximum ? max(reduce_[lane], reduce_[lane + stride]) : reduce_[lane] + reduce_[lane + stride];
        barrier();
    }
    float result = reduce_[0];
    barrier();   // everyone has read reduce_[0] before the next reduction overwrites it
    return result;
}

void main() {
    uint t = gl_WorkGroupID.x, b = gl_WorkGroupID.z;
    uint h = pc.firstHead + gl_WorkGroupID.y;   // head in qkv; the slice's probs hold heads [firstHead, firstHead + NH')
    uint slot = b * gl_NumWorkGroups.y + gl_WorkGroupID.y;   // (b, h) in the slice's probs [B', NH', T, T]
    uint lane = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, T = pc.T, C3 = 3u * pc.C;
    uint query = b * T * C3 + t * C3 + h * pc.hs;   // q_t; k_s at keys + s·3C, v_s at values + s·3C
    uint keys = b * T * C3 + pc.C + h * pc.hs;
    uint values = keys + pc.C;
    uint row = (slot * T + t) * T;        // probs[b, h, t, :]

    uint keyEnd = min(pc.keyEnd, t + 1u);   // keys of this dispatch: [keyBegin, keyEnd)

    if ((pc.phases & PHASE_SCORES) != 0u)   // scores q_t·k_s/√hs for s ≤ t
        for (uint s = pc.keyBegin + lane; s < keyEnd; s += W) {
            float dot_ = 0.0;
            for (uint i = 0u; i < pc.hs; i++) dot_ += qkv[AT(0, query + i)] * qkv[AT(0, keys + s * C3 + i)];
            probs[AT(2, row + s)] = dot_ * pc.scale;
        }

    if ((pc.phases & PHASE_SOFTMAX) != 0u) {
        float maximum = uintBitsToFloat(0xff800000u);    // −∞
        for (uint s = lane; s <= t; s += W) maximum = max(maximum, probs[AT(2, row + s)]);
        maximum = reduceWorkgroup(maximum, true);
        // exp(score − max): the largest term is exp(0) = 1, so nothing overflows
        float sum = 0.0;
        for (uint s = lane; s <= t; s += W) {
            float e = exp(probs[AT(2, row + s)] - maximum);
            probs[AT(2, row + s)] = e;
            sum += e;
        }
        float inverse = 1.0 / reduceWorkgroup(sum, false);
        // normalize; the future s > t is masked to exactly 0
        for (uint s = lane; s < T; s += W) probs[AT(2, row + s)] = s <= t ? probs[AT(2, row + s)] * inverse : 0.0;
    }

    if ((pc.phases & PHASE_OUTPUT) == 0u) return;   // uniform: the rest has barriers
    // out_t[i] (+)= Σ_{s in the keys} att[t, s]·v_s[i]: chunks of W columns staged in shared memory, dims i in stripes
    // of W; a later key range adds onto the earlier ones
    uint out_ = b * T * pc.C + t * pc.C + h * pc.hs;
    for (uint base = 0u; base < pc.hs; base += W) {
        uint i = base + lane;
        float acc = pc.keyBegin == 0u || i >= pc.hs ? 0.0 : output_[AT(1, out_ + i)];
        for (uint chunk = pc.keyBegin; chunk < keyEnd; chunk += W) {
            uint s = chunk + lane;   // ≡ lane (mod W): this invocation wrote probs[row + s]
            weights[lane] = s < keyEnd ? probs[AT(2, row + s)] : 0.0;
            barrier();
            uint count = min(W, keyEnd - chunk);
            if (i < pc.hs)
                for (uint j = 0u; j < count; j++) acc += weights[j] * qkv[AT(0, values + (chunk + j) * C3 + i)];
            barrier();   // the chunk is consumed before the next one overwrites it
        }
        if (i < pc.hs) output_[AT(1, out_ + i)] = acc;
    }
}
