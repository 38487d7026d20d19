"""The PyTorch CPU side of `llm bench --compare-torch`: the same measurements with what users would pick instead.
Run with Debian's interpreter and python3-torch (+ libopenblas0-pthread): /usr/bin/python3 torch_gpt2_step.py.
Prints one JSON object: matmul GFLOP/s at n^3, ms per GPT-2 training step (forward, backward, AdamW), the peak
resident set (VmHWM, as llm bench reports it) and the OpenBLAS kernel that ran."""
import ctypes, ctypes.util, json, math, os, sys, time
import torch
import torch.nn.functional as F

from torch_common import Gpt, GptBlock, proc_status_mib

n, B, T, steps, layers, heads, C, V, ctx = (int(a) for a in sys.argv[1:10]) if len(sys.argv) > 9 else (1024, 4, 64, 3, 12, 12, 768, 50257, 1024)
threads = int(sys.argv[10]) if len(sys.argv) > 10 else os.cpu_count()
torch.manual_seed(0)
torch.set_num_threads(threads)  # Debian's build starts with 1 OpenMP thread here; use as many as llm bench does

def openblas_core():
    """OpenBLAS's own name for the kernel set it picked (OPENBLAS_CORETYPE overrides it), from the library torch loaded."""
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas") or ""):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            pass
    return "unknown"

def best_time(f, repeats=5):
    f()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
    return best

a, b = torch.randn(n, n), torch.randn(n, n)
best = best_time(lambda: a @ b)
gflops = 2 * n ** 3 / best / 1e9

mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)

class Block(GptBlock):
    def __init__(self):
        super().__init__(C, 4 * C)
    def forward(self, x):
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, heads, C // heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // heads)  # torch 1.13 has no scaled_dot_product_attention
        att = F.softmax(att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.finish(x, (att @ v).transpose(1, 2).reshape(B, T, C))

class GPT(Gpt):
    def __init__(self):
        super().__init__(V, C, ctx, (Block() for _ in range(layers)))
    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))

model = GPT()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
idx, tgt = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
fw, bw, up = [], [], []
for s in range(steps + 1):
    t0 = time.perf_counter(); loss = model(idx, tgt); t1 = time.perf_counter()
    opt.zero_grad(set_to_none=False); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); t2 = time.perf_counter()
    opt.step(); t3 = time.perf_counter()
    if s:
        fw.append(t1 - t0); bw.append(t2 - t1); up.append(t3 - t2)
med = lambda xs: sorted(xs)[len(xs) // 2] * 1000
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "openblas_core": openblas_core(),
                  "matmul_size": n, "matmul_gflops": gflops,
                  "forward_ms": med(fw), "backward_ms": med(bw), "adamw_ms": med(up),
                  "step_ms": med(fw) + med(bw) + med(up), "peak_rss_mib": proc_status_mib("VmHWM")}))
