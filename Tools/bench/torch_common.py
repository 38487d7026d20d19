"""What torch_gpt2_step.py and torch_decode.py share: GPT-2's modules in plain torch (each script writes its own
forward: a training step over the whole batch, or decoding with a KV cache) and the peak-memory reading."""
import torch.nn as nn
import torch.nn.functional as F


def proc_status_mib(field):
    """A kB field of /proc/self/status (VmRSS, VmHWM: the peak resident set, as llm bench reports it) in MiB (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) / 1024


class GptBlock(nn.Module):
    """A GPT-2 block's parameters (nn.Linear: y = x·Wᵀ + b); the attention is the subclass's forward."""
    def __init__(self, C, ffn):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, ffn), nn.Linear(ffn, C)

    def finish(self, x, y):
        """After attention y [B, T, C]: the projection and the residual, then the MLP with its residual."""
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    """Token and position embeddings, the blocks (made after them, so the seeded initialisation is in that order),
    the final LayerNorm; the head is wte's transpose (tied)."""
    def __init__(self, V, C, ctx, blocks):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(ctx, C)
        self.h = nn.ModuleList(blocks)
        self.ln_f = nn.LayerNorm(C)
