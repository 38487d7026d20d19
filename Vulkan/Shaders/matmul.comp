#version 450
// Shapes: op(a) [M, K], op(b) [K, N], bias [N], output [Z, M, N] row-major; Z output batches, R reduced batches.
// output[z, m, n] = (accumulate ? output[z, m, n] : 0) + Σ_r Σ_k op(a)[z, r](m, k) · op(b)[z, r](k, n) + bias[n],
// op(x)(i, p) = x[z·zStride + r·rStride + i·rowStride + p·colStride]: transposes, batches and shared operands are strides.
// One workgroup computes a BM×BN tile of output, stepping over K in BK slices staged in shared memory; each of its
// (BM/TM)·(BN/TN) invocations keeps a TM×TN register tile (rows ty + i·BM/TM, columns tx + j·BN/TN) in fp32.
// The host splits the work into regions of output (groups x: N tiles, y: M tiles, z: batches, from tileN0/tileM0/z0,
// rows < M, columns < N) so that no group count passes the device limit and each operand's range fits one descriptor
// (bound from element *Origin on), and into K-slice steps [stepBegin, stepEnd) of R·⌈K/BK⌉, later ones accumulating:
// lavapipe (llvmpipe) ends a shader invocation's loops after 65535 iterations in all.
#include "common.glsl"

layout(constant_id = 3) const uint BM = 64;   // tile rows
layout(constant_id = 4) const uint BN = 64;   // tile columns
layout(constant_id = 5) const uint BK = 16;   // K slice
layout(constant_id = 6) const uint TM = 4;    // register tile rows per invocation
layout(constant_id = 7) const uint TN = 4;    // register tile columns per invocation

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint M, N, K;                  // ends of this region's rows and columns; K
    uint outRow;                   // output row stride (the whole N)
    uint aOrigin, bOrigin, outOrigin;   // first element of each operand's bound range
    uint aRow, aCol, bRow, bCol;   // element strides of op(a)(m, k) and op(b)(k, n)
    uint aZ, bZ, outZ;             // strides of the output batches (0 = shared operand)
    uint aR, bR;                   // strides of the batches summed into one output (a shared operand's gradient)
    uint flags;                    // 1: add bias, 2: accumulate into output
    uint stepBegin, stepEnd;       // step t covers batch r = t / ⌈K/BK⌉, k0 = (t mod ⌈K/BK⌉)·BK
    uint tileN0, tileM0, z0;       // first tile and batch of this dispatch
} pc;

READONLY_BUFFER(0, float, a);        // op(a) [Z, R, M, K] as strided above
READONLY_BUFFER(1, float, b);        // op(b) [Z, R, K, N]
READONLY_BUFFER(2, float, bias);     // [N] (any tensor when flags & 1 == 0: never read)
BUFFER(3, float, output_);           // [Z, M, N]

shared float aTile[BK * BM];   // [BK, BM]: aTile[k·BM + m] = op(a)(m0 + m, k0 + k)
shared float bTile[BK * BN];   // [BK, BN]: bTile[k·BN + n] = op(b)(k0 + k, n0 + n)

void main() {
    const uint WM = BM / TM, WN = BN / TN, THREADS = WM * WN;   // invocations along rows, columns, in all
    uint tid = gl_LocalInvocationIndex, tx = tid % WN, ty = tid / WN;
    uint slices = (pc.K + BK - 1) / BK;
    uint z = pc.z0 + gl_WorkGroupID.z, m0 = (pc.tileM0 + gl_WorkGroupID.y) * BM, n0 = (pc.tileN0 + gl_WorkGroupID.x) * BN;
    // Consecutive invocations load along whichever of m/k (k/n) is contiguous in memory.
    bool aAlongK = pc.aCol == 1u, bAlongK = pc.bRow == 1u && pc.bCol != 1u;
    float acc[TM * TN];
    for (uint i = 0u; i < TM * TN; i++) acc[i] = 0.0;
    for (uint t = pc.stepBegin; t < pc.stepEnd; t++) {
        uint r = t / slices, k0 = (t % slices) * BK;
        uint aBase = AT(0, z * pc.aZ + r * pc.aR), bBase = AT(1, z * pc.bZ + r * pc.bR);
        // Stage the slices (zero outside the matrix, so edge tiles need no test in the product loop); the host makes
        // BM·BK and BK·BN multiples of THREADS, so these loops have constant trip counts and unroll.
        for (uint i = 0u; i < BM * BK / THREADS; i++) {
            uint e = tid + i * THREADS;
            uint m = aAlongK ? e / BK : e % BM, k = aAlongK ? e % BK : e / BM;
            bool inside = m0 + m < pc.M && k0 + k < pc.K;
            aTile[k * BM + m] = inside ? a[aBase + (m0 + m) * pc.aRow + (k0 + k) * pc.aCol - pc.aOrigin] : 0.0;
        }
        for (uint i = 0u; i < BK * BN / THREADS; i++) {
            uint e = tid + i * THREADS;
            uint n = bAlongK ? e / BK : e % BN, k = bAlongK ? e % BK : e / BN;
            bool inside = k0 + k < pc.K && n0 + n < pc.N;
            bTile[k * BN + n] = inside ? b[bBase + (k0 + k) * pc.bRow + (n0 + n) * pc.bCol - pc.bOrigin] : 0.0;
        }
        barrier();
        // acc[i, j] += Σ_k aTile[k, ty + i·WM] · bTile[k, tx + j·WN]
        for (uint k = 0u; k < BK; k++) {
            float bk[TN];
            for (uint j = 0u; j < TN; j++) bk[j] = bTile[k * BN + tx + j * WN];
            for (uint i = 0u; i < TM; i++) {
                float ak = aTile[k * BM + ty + i * WM];
                for (uint j = 0u; j < TN; j++) acc[i * TN + j] = fma(ak, bk[j], acc[i * TN + j]);
            }
        }
        barrier();
    }
    // output = (accumulate ? output : 0) + (Σ + bias), in the definition's order
    for (uint i = 0u; i < TM; i++) {
        uint m = m0 + ty + i * WM;
        if (m >= pc.M) continue;
        for (uint j = 0u; j < TN; j++) {
            uint n = n0 + tx + j * WN;
            if (n >= pc.N) continue;
            float sum = acc[i * TN + j];
            if ((pc.flags & 1u) != 0u) sum += bias[AT(2, n)];
            uint o = AT(3, z * pc.outZ + m * pc.outRow + n - pc.outOrigin);
            output_[o] = (pc.flags & 2u) != 0u ? output_[o] + sum : sum;
        }
    }
}
