"""PyTorch CPU's side of `llm bench --compare-torch` for decoding and attention (run by Debian's /usr/bin/python3).
1. Greedy decoding at batch 1 of a GPT-2-shaped model in plain torch (float32, torch.inference_mode): a prompt of
   `prompt` random tokens, then `new` tokens, with a preallocated KV cache and without one (the whole context every
   step). Reported as llm bench does: the first token's time is the prefill, tokens/s counts the tokens after it.
2. Causal attention forward+backward alone at q, k, v [B, NH, T, hs]: the plain explicit softmax(QK^T/sqrt(d))V,
   which keeps the probabilities [B, NH, T, T] for backward, and F.scaled_dot_product_attention where this torch has
   it (2.0+). Best of 3 after a warm-up; peak memory as the VmHWM rise above the resident set at the start (the peak is
   reset through /proc/self/clear_refs before each variant).
Arguments: layers heads C V ctx ffn prompt new attB attT attNH atths threads (prompt or new 0: no decode; attT 0: no attention).
Prints one JSON object."""
import gc, json, math, sys, time
import torch
import torch.nn.functional as F

from torch_common import Gpt, GptBlock, proc_status_mib as status

L, NH, C, V, ctx, FFN, prompt_len, new, aB, aT, aNH, ahs, threads = (int(a) for a in sys.argv[1:14]) if len(sys.argv) > 13 \
    else (12, 12, 768, 50257, 1024, 3072, 64, 64, 1, 2048, 12, 64, 2)
torch.manual_seed(0)
torch.set_num_threads(threads)

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

def attention(B, T, H, hs):
    result = {}
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    def plain(q, k, v):
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)   # [B, H, T, T], kept for backward
        return att @ v
    variants = [("plain", plain)]
    if hasattr(F, "scaled_dot_product_attention"):
        variants.append(("sdpa", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)))
    else:
        result["sdpa"] = None
        result["sdpa_note"] = f"torch {torch.__version__} has no F.scaled_dot_product_attention (2.0+)"
    for name, f in variants:
        q, k, v = (torch.randn(B, H, T, hs, requires_grad=True) for _ in range(3))
        dy = torch.randn(B, H, T, hs)
        gc.collect()
        reset_peak()
        start = status("VmRSS")
        fw, bw = float("inf"), float("inf")
        for r in range(4):  # r = 0 warms up
            for t in (q, k, v):
                t.grad = None
            t0 = time.perf_counter(); y = f(q, k, v); t1 = time.perf_counter()
            y.backward(dy); t2 = time.perf_counter()
            del y
            if r:
                fw, bw = min(fw, t1 - t0), min(bw, t2 - t1)
        result[name] = {"forward_ms": fw * 1000, "backward_ms": bw * 1000, "total_ms": (fw + bw) * 1000,
                        "peak_delta_mib": status("VmHWM") - start, "probs_mib": 4.0 * B * H * T * T / 2 ** 20 if name == "plain" else 0.0}
        del q, k, v, dy
    return result

class Block(GptBlock):
    def __init__(self):
        super().__init__(C, FFN)
        self.hs = C // NH
    def forward(self, x, cache, pos):
        """x [1, T, C]; cache (k, v) [1, NH, ctx, hs] preallocated, filled up to pos, or None (no cache)."""
        T = x.shape[1]
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(1, T, NH, self.hs).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            cache[0][:, :, pos:pos + T] = k; cache[1][:, :, pos:pos + T] = v
            k, v = cache[0][:, :, :pos + T], cache[1][:, :, :pos + T]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hs))
        if T > 1:   # causal among the new tokens; a single new token sees every cached one
            S = k.shape[2]
            m = torch.ones(T, S, dtype=torch.bool).tril(S - T)
            att = att.masked_fill(~m, float("-inf"))
        return self.finish(x, (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(1, T, C))

class GPT(Gpt):
    def __init__(self):
        super().__init__(V, C, ctx, (Block() for _ in range(L)))
    def forward(self, idx, caches, pos):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + T))
        for blk, cache in zip(self.h, caches or [None] * L):
            x = blk(x, cache, pos)
        return self.ln_f(x[:, -1]) @ self.wte.weight.t()   # the last position's logits [1, V]: the tied head

def decode(model, prompt, n, cached):
    """Returns (prefill ms, tokens/s after the first token)."""
    hs = C // NH
    caches = [(torch.zeros(1, NH, ctx, hs), torch.zeros(1, NH, ctx, hs)) for _ in range(L)] if cached else None
    ids = prompt.clone()
    t0 = time.perf_counter()
    first = None
    pos = 0
    step = ids
    for i in range(n):
        logits = model(step, caches, pos) if cached else model(ids[:, -ctx:], None, 0)
        nxt = logits.argmax(-1, keepdim=True)
        if cached:
            pos += step.shape[1]
            step = nxt
        ids = torch.cat([ids, nxt], dim=1)
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return first * 1000, (n - 1) / (total - first) if n > 1 else n / total

out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "decode": None, "attention": None}
if aT > 0:   # first, while the process is small: its VmHWM rise is the attention's own
    out["attention"] = attention(aB, aT, aNH, ahs)
    gc.collect()
if prompt_len > 0 and new > 0:
    with torch.inference_mode():
        model = GPT().eval()
        P = sum(p.numel() for p in model.parameters())   # the tied head is wte: counted once
        prompt = torch.randint(0, V, (1, prompt_len))
        decode(model, prompt, min(2, new), True); decode(model, prompt, min(2, new), False)   # warm-up
        cp, ct = decode(model, prompt, new, True)
        up, ut = decode(model, prompt, new, False)
        out["decode"] = {"parameters": P, "prompt": prompt_len, "new_tokens": new, "cached_prefill_ms": cp, "cached_tokens_per_s": ct,
                         "uncached_prefill_ms": up, "uncached_tokens_per_s": ut}
print(json.dumps(out))
