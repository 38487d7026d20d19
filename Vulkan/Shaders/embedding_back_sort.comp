#version 450
// Shapes: ids [N] I32 → keys [P, 2] (P = N rounded up to a power of two) holding (id, position) pairs, sorted.
// The bucketing step of embedding_back.comp: a bitonic sort of the pairs by (id, position), which are all distinct,
// so the order is the same on every run and positions stay in order within an id. Bad ids (outside [0, V)) and the
// padding sort last as id 0xFFFFFFFF; bad ones are flagged. LOCAL: one workgroup sorts 2W pairs in shared memory,
// merge sizes k in [kBegin, kEnd], distances j from jBegin (k = kBegin) or k/2 down to 1; GLOBAL: one step (k, j).
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint count;       // N of this chunk
    uint padded;      // P
    uint vocab;       // V
    uint firstRow;    // position of this chunk's row 0 in the whole ids tensor
    uint load;        // LOCAL: 1 reads the pairs from ids (the first pass), 0 from keys
    uint kBegin, kEnd, jBegin;
} pc;

READONLY_BUFFER(0, int, ids);    // [N]
BUFFER(1, uint, keys);           // [P, 2]: (id, position)
BUFFER(2, int, errors);          // [2]: first bad row, its id

const uint NONE = 0xFFFFFFFFu;

// (id, position) order; positions break ties, so no two pairs compare equal
bool less(uvec2 a, uvec2 b) { return a.x < b.x || (a.x == b.x && a.y < b.y); }

uvec2 keyAt(uint i) { return uvec2(keys[AT(1, 2u * i)], keys[AT(1, 2u * i + 1u)]); }
void store(uint i, uvec2 key) { keys[AT(1, 2u * i)] = key.x; keys[AT(1, 2u * i + 1u)] = key.y; }

#ifdef LOCAL
shared uvec2 block_[2u * gl_WorkGroupSize.x];   // [2W] the pairs of one workgroup

uvec2 loaded(uint i) {
    if (pc.load == 0u) return keyAt(i);
    if (i >= pc.count) return uvec2(NONE, NONE);
    int id = ids[AT(0, i)];
    if (uint(id) < pc.vocab) return uvec2(uint(id), i);
    atomicMin(errors[AT(2, 0)], int(pc.firstRow + i));
    return uvec2(NONE, i);
}

void main() {
    uint W = gl_WorkGroupSize.x, lane = gl_LocalInvocationID.x;
    for (uint base = gl_WorkGroupID.x * 2u * W; base < pc.padded; base += gl_NumWorkGroups.x * 2u * W) {   // uniform
        block_[lane] = loaded(base + lane);
        block_[lane + W] = loaded(base + lane + W);
        barrier();
        for (uint k = pc.kBegin; k <= pc.kEnd; k *= 2u) {
            for (uint j = k == pc.kBegin ? pc.jBegin : k / 2u; j > 0u; j /= 2u) {
                uint i = lane / j * 2u * j + lane % j, l = i + j;   // the lane's pair (i, i + j)
                bool ascending = ((base + i) & k) == 0u;
                uvec2 a = block_[i], b = block_[l];
                if (less(b, a) == ascending) { block_[i] = b; block_[l] = a; }
                barrier();
            }
        }
        store(base + lane, block_[lane]);
        store(base + lane + W, block_[lane + W]);
        barrier();   // the block is stored before the next one overwrites shared memory
    }
}
#else
void main() {
    uint j = pc.jBegin, k = pc.kBegin;
    FOR_EACH_INDEX(p, pc.padded / 2u) {
        uint i = p / j * 2u * j + p % j, l = i + j;
        bool ascending = (i & k) == 0u;
        uvec2 a = keyAt(i), b = keyAt(l);
        if (less(b, a) == ascending) { store(i, b); store(l, a); }
    }
}
#endif
