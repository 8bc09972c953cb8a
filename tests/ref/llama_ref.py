#!/usr/bin/env python3
"""llama_ref.py OUTDIR — an independent PyTorch reference for orion's decoder.

Builds small seeded random Llama-family models, writes each as a GGUF v3
file with our own writer (gguf_writer.py), runs a fixed 64-token sequence
through a PyTorch implementation written from the papers (not from orion's
C code), and writes the logits next to the file. test_llm_reference.c then
loads the GGUF files with orion and compares its logits with these.

The reference model, in float64 (weights are the f32 values stored in the
file, so the only differences left are orion's f32 arithmetic):
  - RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * g.
  - Rotary embeddings (Su et al., RoFormer, the complex form of eq. 34, as in
    Meta's Llama reference): the first n_rot dims of each head are read as
    n_rot/2 complex numbers from ADJACENT pairs (x[2i], x[2i+1]) and
    multiplied by exp(i * p * theta_i), theta_i = base^(-2i/n_rot); the
    rest of the head passes through. This is llama.cpp's "normal" rope,
    which GGUF llama files use.
  - Grouped-query attention (Ainslie et al. 2023): n_head query heads share
    n_head_kv key/value heads; query head h reads kv head h // (n_head /
    n_head_kv). Multi-query is n_head_kv = 1.
  - Causal softmax attention scaled by 1/sqrt(head_dim); Mistral's sliding
    window (Jiang et al. 2023): position p attends to t with 0 <= p - t <
    window.
  - SwiGLU feed-forward (Shazeer 2020): W_down (silu(W_gate x) * W_up x).
  - Pre-norm residual blocks, a final RMSNorm and the output head (or the
    token embedding when the head is tied).

Outputs in OUTDIR:
  tokens.bin          64 int32: the sequence (BOS, then seeded random ids)
  NAME.gguf           the model
  NAME.logits         64 x n_vocab float32, row-major: logits at every position
  NAME.kv_f16.logits  the same with keys and values rounded to f16, as an
                      f16 KV cache stores them
  NAME.q8_0.logits,   the same with the weights stored as `orion quantize`
  NAME.q4_0.logits    would (GGUF block formats, reference rounding rule,
                      mixed-precision rule), and the input of every matrix
                      product quantized to 8 bits per block of 32 (int8 dot
                      products), KV cache f32
  mixed.gguf          the gqa shape with a different tensor type per layer
  mixed.logits        its reference (weights as stored, int8 activations for
                      the block types), and mixed.f32.logits (f32 weights)
  manifest.txt        one line per model (mixed apart):
                      NAME n_vocab n_embd n_head n_head_kv n_ff n_layer n_rot
                      freq_base rms_eps sliding_window tied
Exit status 77 means python modules are missing (run scripts/setup.sh).

Before writing, the script checks that the test can tell the right model from
plausible wrong ones (rope on rotate-half pairs, tiled instead of grouped KV
heads, no sliding window, an off-by-one window, the default rope base, rope
over the whole head): each must move some logit by far more than the 1e-4
bar, or the comparison would prove little. The margins go to stdout.
"""
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    sys.stderr.write("llama_ref.py: %s: install python3-torch and python3-numpy "
                     "(run scripts/setup.sh)\n" % e)
    sys.exit(77)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402

N_TOKENS = 64
N_VOCAB = 320
DT = torch.float64


class Config:
    def __init__(self, name, n_head=8, n_head_kv=2, n_embd=64, n_ff=96, n_layer=3, n_rot=None,
                 freq_base=10000.0, rms_eps=1e-5, window=0, tied=False, seed=1):
        self.name, self.n_head, self.n_head_kv, self.n_embd = name, n_head, n_head_kv, n_embd
        self.n_ff, self.n_layer, self.freq_base, self.rms_eps = n_ff, n_layer, freq_base, rms_eps
        self.window, self.tied, self.seed = window, tied, seed
        self.head_dim = n_embd // n_head
        self.n_rot = n_rot if n_rot is not None else self.head_dim
        self.n_vocab = N_VOCAB


CONFIGS = [
    Config("gqa"),                                    # 8 query heads over 2 KV heads
    Config("mqa", n_head_kv=1, seed=2),               # multi-query
    Config("mha", n_head_kv=8, seed=3),               # plain multi-head
    Config("rope500k", freq_base=500000.0, rms_eps=1e-6, seed=4),  # Llama 3's base
    Config("mistral", window=16, seed=5),             # sliding window 16 < 64 tokens
    Config("tied", tied=True, seed=6),                # no output.weight
    Config("hd16", n_head=4, n_head_kv=2, n_rot=8, seed=7),  # head 16, rope on 8 of 16 dims
    # awkward sizes: head 12, n_ff 100 (ffn_down rows of 100 stay f16 when quantized)
    Config("odd", n_embd=96, n_head=8, n_head_kv=4, n_ff=100, seed=8),
]
MIXED = Config("mixed", seed=9)  # per-layer tensor types (see main)


# ---- the model ------------------------------------------------------------------

def make_weights(c):
    """Seeded random weights, rounded to float32 (what the file stores)."""
    g = torch.Generator().manual_seed(1000 + c.seed)

    def mat(n_out, n_in, scale):
        return (torch.randn(n_out, n_in, generator=g, dtype=DT) * scale).float()

    def norm(n):
        return (1.0 + 0.2 * torch.randn(n, generator=g, dtype=DT)).float()

    E, F, hd = c.n_embd, c.n_ff, c.head_dim
    # a tied embedding is also the output head: scaled like one
    w = {"token_embd": mat(c.n_vocab, E, 0.08 if c.tied else 0.5), "output_norm": norm(E)}
    if not c.tied:
        w["output"] = mat(c.n_vocab, E, 0.08)
    for l in range(c.n_layer):
        # q and k larger than the rest so attention is peaked (scores of a few
        # units), which makes rope and masking errors visible in the logits
        w["blk.%d.attn_norm" % l] = norm(E)
        w["blk.%d.attn_q" % l] = mat(c.n_head * hd, E, 0.15)
        w["blk.%d.attn_k" % l] = mat(c.n_head_kv * hd, E, 0.15)
        w["blk.%d.attn_v" % l] = mat(c.n_head_kv * hd, E, 0.08)
        w["blk.%d.attn_output" % l] = mat(E, c.n_head * hd, 0.08)
        w["blk.%d.ffn_norm" % l] = norm(E)
        w["blk.%d.ffn_gate" % l] = mat(F, E, 0.08)
        w["blk.%d.ffn_up" % l] = mat(F, E, 0.08)
        w["blk.%d.ffn_down" % l] = mat(E, F, 0.08)
    return w


def rmsnorm(x, g, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g


def rope(x, pos, n_rot, base, layout="adjacent"):
    """x: (T, heads, hd). Rotates the first n_rot dims of each head."""
    T, H, hd = x.shape
    half = n_rot // 2
    theta = base ** (-2.0 * torch.arange(half, dtype=DT) / n_rot)           # (half)
    rot = torch.polar(torch.ones(T, half, dtype=DT), pos[:, None] * theta)  # (T, half)
    xr = x[..., :n_rot]
    if layout == "adjacent":  # (x[2i], x[2i+1]) is one complex number
        z = torch.view_as_complex(xr.reshape(T, H, half, 2).contiguous())
        out = torch.view_as_real(z * rot[:, None, :]).reshape(T, H, n_rot)
    else:                     # rotate-half (NeoX) pairs (x[i], x[i + n_rot/2]): a wrong layout
        z = torch.complex(xr[..., :half], xr[..., half:])
        z = z * rot[:, None, :]
        out = torch.cat([z.real, z.imag], -1)
    return torch.cat([out, x[..., n_rot:]], -1)


# ---- quantized variants (GGUF block formats, from their definitions) --------------

def _round_away(v):
    """C's roundf: halves away from zero."""
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def quantize_codes(w, qtype):
    """w (f32, rows a multiple of 32) in a GGUF block type, by the reference
    rule of the format (ggml's quantize_row_*_ref):
      q8_0: d = max|x| / 127, q = roundf(x / d) in [-127, 127]; w = d * q
      q4_0: m = the x of largest magnitude (its sign kept), d = m / -8,
            q = min(15, (int)(x / d + 8.5)); w = d * (q - 8)
    The scale is computed in f32 and stored as f16. Returns (codes, d) per
    block of 32: codes (n_blocks, 32) as float, d (n_blocks, 1) as f16."""
    x = w.float().reshape(-1, 32)
    if qtype == "q8_0":
        d = x.abs().max(1, keepdim=True).values / 127.0
        inv = torch.where(d != 0, 1.0 / torch.where(d != 0, d, torch.ones_like(d)), torch.zeros_like(d))
        q = _round_away(x * inv)
    else:
        m = x.gather(1, x.abs().argmax(1, keepdim=True))
        d = m / -8.0
        inv = torch.where(d != 0, 1.0 / torch.where(d != 0, d, torch.ones_like(d)), torch.zeros_like(d))
        q = torch.clamp(torch.trunc(x * inv + 8.5), max=15.0)
    return q, d.half()


def quantize_weight(w, qtype):
    """w through a GGUF block type and back (what a file of that type holds)."""
    q, d = quantize_codes(w, qtype)
    if qtype == "q4_0":
        q = q - 8.0
    return (q.to(DT) * d.to(DT)).reshape(w.shape).float()


def pack_blocks(w, qtype):
    """The bytes of w in a GGUF block type: per 32 weights, f16 d then
    q8_0: 32 int8; q4_0: 16 bytes, byte j = q[j] | q[j + 16] << 4."""
    q, d = quantize_codes(w, qtype)
    dh = d.numpy().view("<u2").astype(np.uint16)
    if qtype == "q8_0":
        body = q.to(torch.int8).numpy().view(np.uint8)
    else:
        qi = q.to(torch.uint8).numpy()
        body = (qi[:, :16] | (qi[:, 16:] << 4)).astype(np.uint8)
    return np.concatenate([dh.view(np.uint8).reshape(-1, 2), body], axis=1).tobytes()


def quantize_model(c, w, qtype):
    """The model as `orion quantize` stores it at qtype, by the mixed-
    precision rule of docs/quantization.md: matrices at qtype, except
    token_embd and output at q8_0 when qtype is smaller, and matrices whose
    rows are not a multiple of 32 at f16; 1-D norms stay f32. Returns the
    weights and the names of those stored in a block type."""
    out, blocked = {}, set()
    for k, v in w.items():
        if v.dim() == 1:
            out[k] = v
        elif v.shape[1] % 32 != 0:
            out[k] = v.half().float()
        else:
            out[k] = quantize_weight(v, "q8_0" if k in ("token_embd", "output") else qtype)
            blocked.add(k)
    return out, blocked


def quantize_act(x):
    """Activations as the int8 dot products see them: per block of 32,
    d = max|x| / 127 (f32) and q = round-to-nearest(x / d); the block's
    values become d * q."""
    shape = x.shape
    b = x.float().reshape(-1, 32)
    d = b.abs().max(1, keepdim=True).values / 127.0
    inv = torch.where(d != 0, 1.0 / torch.where(d != 0, d, torch.ones_like(d)), torch.zeros_like(d))
    q = torch.round(torch.clamp(b * inv, -127.0, 127.0))
    return (q.to(DT) * d.to(DT)).reshape(shape)


# ---- the forward pass -------------------------------------------------------------

def forward(c, w, tokens, rope_layout="adjacent", kv_map="grouped", window=None, freq_base=None, n_rot=None,
            kv_f16=False, quant_act=()):
    """Logits (T, n_vocab) for tokens at positions 0..T-1, in float64.
    kv_f16: keys (after rope) and values rounded to f16, as a KV cache of
    f16 holds them. quant_act: names of the weights whose products take
    their input quantized to 8 bits per block of 32 (what multiplying
    weights stored in a block type does).
    The other keyword arguments make deliberately wrong variants (see main)."""
    window = c.window if window is None else window
    freq_base = c.freq_base if freq_base is None else freq_base
    n_rot = c.n_rot if n_rot is None else n_rot
    W = {k: v.to(DT) for k, v in w.items()}
    T, H, KV, hd = len(tokens), c.n_head, c.n_head_kv, c.head_dim
    pos = torch.arange(T, dtype=DT)

    def lin(x, name):  # x @ W[name]^T: (T, n_in) -> (T, n_out)
        return (quantize_act(x) if name in quant_act else x) @ W[name].T

    x = W["token_embd"][torch.tensor(tokens)]                      # (T, E)
    t = torch.arange(T)
    allowed = t[None, :] <= t[:, None]                             # (query, key)
    if window > 0:
        allowed &= (t[:, None] - t[None, :]) < window
    for l in range(c.n_layer):
        p = "blk.%d." % l
        h = rmsnorm(x, W[p + "attn_norm"], c.rms_eps)
        q = lin(h, p + "attn_q").view(T, H, hd)
        k = lin(h, p + "attn_k").view(T, KV, hd)
        v = lin(h, p + "attn_v").view(T, KV, hd)
        q = rope(q, pos, n_rot, freq_base, rope_layout)
        k = rope(k, pos, n_rot, freq_base, rope_layout)
        if kv_f16:
            k, v = k.float().half().to(DT), v.float().half().to(DT)
        if kv_map == "grouped":   # query head h -> kv head h // (H / KV)
            k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        else:                     # h -> h % KV: a wrong mapping
            k, v = k.repeat(1, H // KV, 1), v.repeat(1, H // KV, 1)
        s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        s = s.masked_fill(~allowed[None], float("-inf"))
        a = torch.softmax(s, -1)
        o = torch.einsum("hts,shd->thd", a, v).reshape(T, H * hd)
        x = x + lin(o, p + "attn_output")
        h = rmsnorm(x, W[p + "ffn_norm"], c.rms_eps)
        x = x + lin(torch.nn.functional.silu(lin(h, p + "ffn_gate")) * lin(h, p + "ffn_up"), p + "ffn_down")
    x = rmsnorm(x, W["output_norm"], c.rms_eps)
    return lin(x, "token_embd" if c.tied else "output")


# ---- the file --------------------------------------------------------------------

def vocab():
    """<unk>, <s>, </s>, the 256 byte pieces, then plain pieces up to N_VOCAB."""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    words = ["\u2581the", "\u2581a", "\u2581and", "\u2581to", "\u2581of", "\u2581in", "\u2581is",
             "\u2581it", "\u2581was", "\u2581on"]
    i = 0
    while len(toks) < N_VOCAB:
        toks.append(words[i] if i < len(words) else "\u2581w%d" % i)
        types.append(1)
        i += 1
    scores = [0.0] * 259 + [-float(i) for i in range(N_VOCAB - 259)]
    return toks, scores, types


GGUF_TYPE = {"f32": gw.TENSOR_F32, "f16": gw.TENSOR_F16, "q8_0": 8, "q4_0": 2}


def write_gguf(path, c, w, tensor_types=None):
    """tensor_types: tensor name (without .weight) -> "f16", "q8_0" or
    "q4_0"; f32 for the others."""
    tensor_types = tensor_types or {}
    f = gw.Writer()
    f.add("general.architecture", gw.STRING, "llama")
    f.add("general.name", gw.STRING, "orion-ref-" + c.name)
    f.add("llama.context_length", gw.U32, N_TOKENS)
    f.add("llama.embedding_length", gw.U32, c.n_embd)
    f.add("llama.feed_forward_length", gw.U32, c.n_ff)
    f.add("llama.attention.head_count", gw.U32, c.n_head)
    f.add("llama.attention.head_count_kv", gw.U32, c.n_head_kv)
    f.add("llama.block_count", gw.U32, c.n_layer)
    f.add("llama.rope.dimension_count", gw.U32, c.n_rot)
    f.add("llama.rope.freq_base", gw.F32, c.freq_base)
    f.add("llama.attention.layer_norm_rms_epsilon", gw.F32, c.rms_eps)
    if c.window:
        f.add("llama.attention.sliding_window", gw.U32, c.window)
    toks, scores, types = vocab()
    f.add("tokenizer.ggml.model", gw.STRING, "llama")
    f.add("tokenizer.ggml.tokens", gw.ARRAY, toks, gw.STRING)
    f.add("tokenizer.ggml.scores", gw.ARRAY, scores, gw.F32)
    f.add("tokenizer.ggml.token_type", gw.ARRAY, types, gw.I32)
    f.add("tokenizer.ggml.bos_token_id", gw.U32, 1)
    f.add("tokenizer.ggml.eos_token_id", gw.U32, 2)
    f.add("tokenizer.ggml.unknown_token_id", gw.U32, 0)

    def tensor(name, t):  # GGUF ne is the PyTorch shape reversed
        ty = tensor_types.get(name, "f32")
        if ty == "f32":
            data = t.contiguous().numpy().astype("<f4").tobytes()
        elif ty == "f16":
            data = t.contiguous().numpy().astype("<f2").tobytes()
        else:
            data = pack_blocks(t, ty)
        f.add_tensor(name + ".weight", list(reversed(t.shape)), data, GGUF_TYPE[ty])

    tensor("token_embd", w["token_embd"])
    tensor("output_norm", w["output_norm"])
    if not c.tied:
        tensor("output", w["output"])
    for l in range(c.n_layer):
        for part in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
                     "ffn_up", "ffn_down"):
            tensor("blk.%d.%s" % (l, part), w["blk.%d.%s" % (l, part)])
    f.write(path)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: llama_ref.py OUTDIR\n")
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(20240601)
    tokens = [1] + torch.randint(0, N_VOCAB, (N_TOKENS - 1,), generator=g).tolist()
    with open(os.path.join(out, "tokens.bin"), "wb") as f:
        f.write(struct.pack("<%di" % N_TOKENS, *tokens))
    manifest = []
    for c in CONFIGS:
        w = make_weights(c)
        logits = forward(c, w, tokens)
        # the test must be able to see plausible mistakes
        wrong = {"rotate-half rope": forward(c, w, tokens, rope_layout="half")}
        if c.n_head_kv not in (1, c.n_head):
            wrong["tiled kv heads"] = forward(c, w, tokens, kv_map="tiled")
        if c.window:
            wrong["no window"] = forward(c, w, tokens, window=0)
            wrong["window + 1"] = forward(c, w, tokens, window=c.window + 1)
        if c.freq_base != 10000.0:
            wrong["rope base 10000"] = forward(c, w, tokens, freq_base=10000.0)
        if c.n_rot != c.head_dim:
            wrong["rope on the whole head"] = forward(c, w, tokens, n_rot=c.head_dim)
        margins = []
        for what, lg in wrong.items():
            d = (lg - logits).abs().max().item()
            margins.append("%s %.2f" % (what, d))
            if d < 1e-2:
                sys.stderr.write("llama_ref.py: %s: '%s' changes logits by only %.2e\n" % (c.name, what, d))
                return 1
        print("llama_ref.py: %-8s logits max %.2f; a wrong model moves them by: %s" % (
            c.name, logits.abs().max().item(), ", ".join(margins)))
        write_gguf(os.path.join(out, c.name + ".gguf"), c, w)
        variants = {"": logits, ".kv_f16": forward(c, w, tokens, kv_f16=True)}
        for qtype in ("q8_0", "q4_0"):
            wq, blocked = quantize_model(c, w, qtype)
            variants["." + qtype] = forward(c, wq, tokens, quant_act=blocked)
        for suffix, lg in variants.items():
            with open(os.path.join(out, c.name + suffix + ".logits"), "wb") as f:
                f.write(lg.float().numpy().astype("<f4").tobytes())
        manifest.append("%s %d %d %d %d %d %d %d %.1f %g %d %d" % (
            c.name, c.n_vocab, c.n_embd, c.n_head, c.n_head_kv, c.n_ff, c.n_layer, c.n_rot, c.freq_base,
            c.rms_eps, c.window, int(c.tied)))
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")

    # A file whose layers use different types, as llama.cpp's per-tensor
    # overrides can make: layer 0 q8_0, layer 1 f16, layer 2 q4_0, the
    # embedding f16, the head q8_0. mixed.logits: the reference with the
    # weights as stored (int8 activations for the block types);
    # mixed.f32.logits: with the f32 weights they came from.
    c = MIXED
    w = make_weights(c)
    layer_type = ["q8_0", "f16", "q4_0"]
    types = {"token_embd": "f16", "output": "q8_0"}
    for l in range(c.n_layer):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            types["blk.%d.%s" % (l, part)] = layer_type[l % 3]
    stored = {k: (v if types.get(k, "f32") == "f32" else v.half().float() if types[k] == "f16"
                  else quantize_weight(v, types[k])) for k, v in w.items()}
    write_gguf(os.path.join(out, "mixed.gguf"), c, w, types)
    blocked = {k for k, t in types.items() if t in ("q8_0", "q4_0")}
    for suffix, lg in ((".logits", forward(c, stored, tokens, quant_act=blocked)),
                       (".f32.logits", forward(c, w, tokens))):
        with open(os.path.join(out, "mixed" + suffix), "wb") as f:
            f.write(lg.float().numpy().astype("<f4").tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
