#!/usr/bin/env python3
"""llava_hf_ref.py make OUTDIR TOKENIZER.model | llava_hf_ref.py generate OUTDIR VARIANT
— small seeded Hugging Face LLaVA directories (LlavaForConditionalGeneration,
the llava-1.5-hf layout) and what they compute, for tests/test_convert_llava.c.

Each directory holds config.json (text_config, vision_config, the feature
selection and projector keys), safetensors written by our own writer (no
safetensors or transformers package), preprocessor_config.json and the
tokenizer.model given. Two variants:

  old: transformers < 4.52 names (language_model.model.*,
       language_model.lm_head, vision_tower.vision_model.*,
       multi_modal_projector.*), one model.safetensors in f32; a Llama text
       model with a partial text_config (rms_norm_eps left to LlamaConfig's
       default 1e-6, vocab_size only at the top level, as older LLaVA
       configs have it); CLIP's quick GELU; vision_feature_layer -2 of 3
       layers; CLIP's mean and std.
  new: transformers >= 4.52 names (model.language_model.*, lm_head,
       model.vision_tower.*, model.multi_modal_projector.*), two f16 shards
       with model.safetensors.index.json; a Mistral text model (BakLLaVA);
       erf GELU in the tower; vision_feature_layer [2] of 4 layers (two
       layers never run); mean and std 0.5.

What they compute is written from the HF weights, in float64 PyTorch,
independently of orion's converter:
  - the projector output for llava.png: LLaVA's pad-to-square + bicubic
    preprocessing and the CLIP tower from clip_ref.py (clip_forward, fed the
    HF tensors by name) -> VARIANT.proj (n_patches x n_out float32);
  - (generate) the decoder as transformers' LlamaForCausalLM computes it:
    rotary embeddings on HF's rotate-half layout (q and k as stored in the
    checkpoint, no permutation), GQA, SwiGLU, RMSNorm; run on
    [embed(text before <image>), image rows, embed(text after)] with the
    token ids orion's tokenizer gave (OUTDIR/prompt.tok: n_before n_after
    ids, int32), 16 greedy tokens -> gen.tok, logits after the prompt ->
    prompt.logits.
Exit status 77: python modules are missing.
"""
import json
import math
import os
import shutil
import struct
import sys

try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:  # pragma: no cover
    sys.stderr.write("llava_hf_ref.py: %s: install python3-torch, python3-numpy and python3-pil\n" % e)
    sys.exit(77)

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref  # noqa: E402

DT = torch.float64
N_GEN = 16
VOCAB = 32064  # llava-1.5-hf: 32000 pieces + <image>, <pad> and padding


class Variant:
    def __init__(self, name, new_names, dtype, text_arch, quick, n_layer, feature_layer, mean, std, seed):
        self.name, self.new_names, self.dtype, self.text_arch = name, new_names, dtype, text_arch
        self.quick, self.n_layer, self.feature_layer, self.mean, self.std = quick, n_layer, feature_layer, mean, std
        self.seed = seed
        # the vision tower
        self.S, self.P, self.E, self.H, self.F = 32, 8, 64, 4, 96
        # the text model
        self.tE, self.tH, self.tKV, self.tF, self.tL = 64, 4, 2, 96, 2
        self.rms_eps = 1e-6 if text_arch == "llama" else 1e-5
        self.theta = 10000.0 if text_arch == "llama" else 1000000.0
        fl = feature_layer[0] if isinstance(feature_layer, list) else feature_layer
        self.n_used = fl if fl >= 0 else n_layer + 1 + fl


VARIANTS = [
    Variant("old", False, "F32", "llama", True, 3, -2, clip_ref.CLIP_MEAN, clip_ref.CLIP_STD, 1),
    Variant("new", True, "F16", "mistral", False, 4, [2], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 2),
]


# ---- weights, named as the checkpoint names them -------------------------------------------

def make_weights(v):
    """HF name (old layout) -> float32 tensor; values already rounded to
    the stored dtype so the reference sees what the file holds."""
    g = torch.Generator().manual_seed(9000 + v.seed)

    def t(*shape, scale=0.1):
        x = (torch.randn(*shape, generator=g, dtype=DT) * scale).float()
        return x.half().float() if v.dtype == "F16" else x

    def ln(n):
        w = (1.0 + 0.2 * torch.randn(n, generator=g, dtype=DT)).float()
        return (w.half().float() if v.dtype == "F16" else w), t(n, scale=0.1)

    E, F, P = v.E, v.F, v.P
    w = {}
    vt = "vision_tower.vision_model."
    w[vt + "embeddings.patch_embedding.weight"] = t(E, 3, P, P, scale=0.15)
    w[vt + "embeddings.class_embedding"] = t(E, scale=0.5)
    w[vt + "embeddings.position_embedding.weight"] = t((v.S // P) ** 2 + 1, E, scale=0.3)
    w[vt + "pre_layrnorm.weight"], w[vt + "pre_layrnorm.bias"] = ln(E)
    for l in range(v.n_layer):
        p = vt + "encoder.layers.%d." % l
        for n in ("q", "k", "v", "out"):
            w[p + "self_attn.%s_proj.weight" % n] = t(E, E, scale=0.25 if n in ("q", "k") else 0.12)
            w[p + "self_attn.%s_proj.bias" % n] = t(E, scale=0.1)
        w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"] = ln(E)
        w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"] = ln(E)
        w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"] = t(F, E, scale=0.15), t(F, scale=0.1)
        w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"] = t(E, F, scale=0.12), t(E, scale=0.1)
    w[vt + "post_layernorm.weight"], w[vt + "post_layernorm.bias"] = ln(E)
    w["multi_modal_projector.linear_1.weight"] = t(v.tE, E, scale=0.12)
    w["multi_modal_projector.linear_1.bias"] = t(v.tE, scale=0.1)
    w["multi_modal_projector.linear_2.weight"] = t(v.tE, v.tE, scale=0.12)
    w["multi_modal_projector.linear_2.bias"] = t(v.tE, scale=0.1)
    lm = "language_model.model."
    hd = v.tE // v.tH
    w[lm + "embed_tokens.weight"] = t(VOCAB, v.tE, scale=0.5)
    for l in range(v.tL):
        p = lm + "layers.%d." % l
        w[p + "self_attn.q_proj.weight"] = t(v.tH * hd, v.tE, scale=0.2)
        w[p + "self_attn.k_proj.weight"] = t(v.tKV * hd, v.tE, scale=0.2)
        w[p + "self_attn.v_proj.weight"] = t(v.tKV * hd, v.tE, scale=0.15)
        w[p + "self_attn.o_proj.weight"] = t(v.tE, v.tH * hd, scale=0.15)
        w[p + "mlp.gate_proj.weight"] = t(v.tF, v.tE, scale=0.15)
        w[p + "mlp.up_proj.weight"] = t(v.tF, v.tE, scale=0.15)
        w[p + "mlp.down_proj.weight"] = t(v.tE, v.tF, scale=0.15)
        w[p + "input_layernorm.weight"] = ln(v.tE)[0]
        w[p + "post_attention_layernorm.weight"] = ln(v.tE)[0]
    w[lm + "norm.weight"] = ln(v.tE)[0]
    w["language_model.lm_head.weight"] = t(VOCAB, v.tE, scale=0.3)
    return w


def checkpoint_name(v, name):
    if not v.new_names:
        return name
    if name == "language_model.lm_head.weight":
        return "lm_head.weight"
    for old, new in (("language_model.model.", "model.language_model."), ("vision_tower.", "model.vision_tower."),
                     ("multi_modal_projector.", "model.multi_modal_projector.")):
        if name.startswith(old):
            return new + name[len(old):]
    raise ValueError(name)


# ---- files ------------------------------------------------------------------------------------

def write_safetensors(path, tensors, dtype):
    """u64 header size, JSON header padded with spaces to 8 bytes, data."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        b = t.numpy().astype("<f2" if dtype == "F16" else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def write_dir(d, v, w, tokenizer):
    os.makedirs(d, exist_ok=True)
    text = {"model_type": v.text_arch, "hidden_size": v.tE, "intermediate_size": v.tF,
            "num_hidden_layers": v.tL, "num_attention_heads": v.tH, "num_key_value_heads": v.tKV,
            "max_position_embeddings": 256, "torch_dtype": "float16"}
    if v.text_arch == "mistral":
        text.update({"rms_norm_eps": v.rms_eps, "rope_theta": v.theta, "sliding_window": 4096, "vocab_size": VOCAB})
    vision = {"model_type": "clip_vision_model", "hidden_size": v.E, "intermediate_size": v.F,
              "num_hidden_layers": v.n_layer, "num_attention_heads": v.H, "image_size": v.S, "patch_size": v.P,
              "projection_dim": 32, "hidden_act": "quick_gelu" if v.quick else "gelu", "layer_norm_eps": 1e-5}
    cfg = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "ignore_index": -100,
           "image_token_index": 32000, "pad_token_id": 32001, "projector_hidden_act": "gelu",
           "text_config": text, "vision_config": vision, "vision_feature_layer": v.feature_layer,
           "vision_feature_select_strategy": "default", "tie_word_embeddings": False}
    if v.text_arch == "llama":
        cfg["vocab_size"] = VOCAB  # older configs: only at the top level
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "preprocessor_config.json"), {
        "crop_size": {"height": v.S, "width": v.S}, "do_center_crop": True, "do_normalize": True,
        "do_rescale": True, "do_resize": True, "image_mean": v.mean, "image_std": v.std,
        "image_processor_type": "CLIPImageProcessor", "resample": 3, "rescale_factor": 1 / 255,
        "size": {"shortest_edge": v.S}})
    shutil.copyfile(tokenizer, os.path.join(d, "tokenizer.model"))
    named = [(checkpoint_name(v, n), t) for n, t in w.items()]
    if not v.new_names:
        write_safetensors(os.path.join(d, "model.safetensors"), named, v.dtype)
        return
    half = len(named) // 2
    shards = [("model-00001-of-00002.safetensors", named[:half]), ("model-00002-of-00002.safetensors", named[half:])]
    weight_map = {}
    for fname, part in shards:
        write_safetensors(os.path.join(d, fname), part, v.dtype)
        for n, _ in part:
            weight_map[n] = fname
    write_json(os.path.join(d, "model.safetensors.index.json"), {"metadata": {}, "weight_map": weight_map})


# ---- what the model computes -------------------------------------------------------------------

def projector_output(v, w, img):
    """clip_ref's tower and projector, fed the checkpoint's tensors."""
    c = clip_ref.ClipConfig(v.name, image_size=v.S, patch=v.P, n_embd=v.E, n_head=v.H, n_ff=v.F,
                            n_layer=v.n_layer, n_mm=v.tE, n_out=v.tE, quick=v.quick, feature_layer=v.n_used)
    vt = "vision_tower.vision_model."
    cw = {"patch": w[vt + "embeddings.patch_embedding.weight"], "cls": w[vt + "embeddings.class_embedding"],
          "pos": w[vt + "embeddings.position_embedding.weight"], "pre_w": w[vt + "pre_layrnorm.weight"],
          "pre_b": w[vt + "pre_layrnorm.bias"]}
    for l in range(v.n_layer):
        p, q = vt + "encoder.layers.%d." % l, "%d." % l
        for n, hf in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
            cw[q + n] = w[p + "self_attn.%s.weight" % hf]
            cw[q + n + "_b"] = w[p + "self_attn.%s.bias" % hf]
        for n, hf in (("ln1", "layer_norm1"), ("ln2", "layer_norm2")):
            cw[q + n + "_w"], cw[q + n + "_b"] = w[p + hf + ".weight"], w[p + hf + ".bias"]
        for n in ("fc1", "fc2"):
            cw[q + n], cw[q + n + "_b"] = w[p + "mlp.%s.weight" % n], w[p + "mlp.%s.bias" % n]
    cw["mm0"], cw["mm0_b"] = w["multi_modal_projector.linear_1.weight"], w["multi_modal_projector.linear_1.bias"]
    cw["mm2"], cw["mm2_b"] = w["multi_modal_projector.linear_2.weight"], w["multi_modal_projector.linear_2.bias"]
    pix = clip_ref.pixel_values(img, v.S, v.mean, v.std)
    return clip_ref.clip_forward(c, cw, pix)


def rmsnorm(x, g, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def decoder_logits(v, w, x):
    """transformers' Llama/Mistral forward on input rows x (T, E) -> (T, vocab)."""
    W = {k: t.to(DT) for k, t in w.items() if k.startswith("language_model.")}
    T, H, KV = x.shape[0], v.tH, v.tKV
    hd = v.tE // H
    inv_freq = 1.0 / (v.theta ** (torch.arange(0, hd, 2, dtype=DT) / hd))
    freqs = torch.arange(T, dtype=DT)[:, None] * inv_freq[None]
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]   # (T, 1, hd)
    causal = torch.arange(T)[None, :] <= torch.arange(T)[:, None]
    for l in range(v.tL):
        p = "language_model.model.layers.%d." % l
        h = rmsnorm(x, W[p + "input_layernorm.weight"], v.rms_eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, H, hd)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV, hd)
        val = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV, hd)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, val = k.repeat_interleave(H // KV, 1), val.repeat_interleave(H // KV, 1)
        s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        a = torch.softmax(s.masked_fill(~causal[None], float("-inf")), -1)
        x = x + torch.einsum("hts,shd->thd", a, val).reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], v.rms_eps)
        g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T)
        x = x + (g * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["language_model.model.norm.weight"], v.rms_eps)
    return x @ W["language_model.lm_head.weight"].T


def write_f32(path, a):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def llava_image():
    rng = np.random.default_rng(31)
    h, w = 30, 45
    yy, xx = np.mgrid[0:h, 0:w]
    a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    a[..., 0] = (a[..., 0] // 4 + ((xx * 255 // (w - 1) + yy * 97 // (h - 1)) % 256) * 3 // 4).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def make(out, tokenizer):
    llava_image().save(os.path.join(out, "llava.png"))
    img = Image.open(os.path.join(out, "llava.png"))
    for v in VARIANTS:
        w = make_weights(v)
        write_dir(os.path.join(out, v.name), v, w, tokenizer)
        proj = projector_output(v, w, img)
        # a converter that kept the last layer, or applied post_layernorm,
        # or used the other tower's GELU, must be caught by the 1e-4 bar
        wrong = projector_output(Variant(v.name, v.new_names, v.dtype, v.text_arch, not v.quick, v.n_layer,
                                         v.feature_layer, v.mean, v.std, v.seed), w, img)
        d = (wrong - proj).abs().max().item()
        if d < 1e-2:
            sys.stderr.write("llava_hf_ref.py: %s: the other GELU moves the output by only %.2e\n" % (v.name, d))
            return 1
        write_f32(os.path.join(out, v.name + ".proj"), proj.float().numpy())
        print("llava_hf_ref.py: %s: projector output %s, max %.2f (the other GELU moves it by %.2f)" % (
            v.name, tuple(proj.shape), proj.abs().max().item(), d))
    return 0


def generate(out, name):
    v = next(x for x in VARIANTS if x.name == name)
    with open(os.path.join(out, "prompt.tok"), "rb") as f:
        data = f.read()
    nb, na = struct.unpack("<2i", data[:8])
    ids = list(struct.unpack("<%di" % (nb + na), data[8:8 + 4 * (nb + na)]))
    w = make_weights(v)
    img = projector_output(v, w, Image.open(os.path.join(out, "llava.png")))
    emb = w["language_model.model.embed_tokens.weight"].to(DT)
    x = torch.cat([emb[torch.tensor(ids[:nb], dtype=torch.long)], img,
                   emb[torch.tensor(ids[nb:], dtype=torch.long)]], 0)
    gen, logits0 = [], None
    for _ in range(N_GEN):
        lg = decoder_logits(v, w, x)[-1]
        if logits0 is None:
            logits0 = lg
        nxt = int(torch.argmax(lg))
        gen.append(nxt)
        x = torch.cat([x, emb[nxt][None]], 0)
    with open(os.path.join(out, "gen.tok"), "wb") as f:
        f.write(struct.pack("<%di" % N_GEN, *gen))
    write_f32(os.path.join(out, "prompt.logits"), logits0.float().numpy())
    print("llava_hf_ref.py: %s: greedy after %d + %d image + %d positions: %s" % (name, nb, img.shape[0], na, gen))
    return 0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("make", "generate"):
        sys.stderr.write("usage: llava_hf_ref.py make OUTDIR TOKENIZER.model | generate OUTDIR VARIANT\n")
        return 2
    torch.set_num_threads(1)
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    return make(out, sys.argv[3]) if sys.argv[1] == "make" else generate(out, sys.argv[3])


if __name__ == "__main__":
    sys.exit(main())
