#!/usr/bin/env python3
"""clip_ref.py make|generate|vitl OUTDIR — an independent
PyTorch/Pillow reference for orion's vision path (LLaVA-1.5).

Written from the CLIP and ViT papers, Hugging Face's CLIPVisionModel
structure and LLaVA-1.5's code as documented (not from orion's C code):

Preprocessing (LLaVA-1.5 with image_aspect_ratio "pad", CLIPImageProcessor):
  - Image.open(f).convert("RGB");
  - expand2square: a square of side max(w, h) filled with
    tuple(int(x * 255) for x in image_mean), the image pasted at
    ((side - w) // 2, (side - h) // 2);
  - resize to image_size x image_size with Image.BICUBIC (Pillow);
  - rescale: uint8 as float64 times 1/255, cast to float32;
  - normalize in float32: (x - mean) / std; layout (3, H, W).

Vision tower (CLIPVisionModel), in float64 from the f32 weights in the file:
  - patch embedding: conv2d(3 -> E, kernel = stride = P, no bias unless the
    file has one), flattened row-major; class token prepended; learned
    positions added; pre-LayerNorm;
  - pre-LN layers: x + out_proj(attn(LN1(x))), x + fc2(act(fc1(LN2(x))));
    attention: q scaled by d^-0.5, softmax(q k^T) v per head, no mask;
    act: quick GELU x * sigmoid(1.702 x) (CLIP's), or erf GELU;
  - features: hidden_states[-2] (LLaVA's mm_vision_select_layer; or the
    feature_layer the file names), class token dropped ("patch" select);
  - projector (mlp2x_gelu): Linear -> GELU (erf) -> Linear.

The files follow llama.cpp's mmproj layout (convert_image_encoder_to_gguf.py):
mlp.fc1 is written as "ffn_down" and mlp.fc2 as "ffn_up" (the converter's
naming) in one model, by role in the other, so both spellings are tested.

make writes into OUTDIR:
  NAME.gguf, NAME.pix (3*S*S float32: the preprocessed test image),
  NAME.proj (n_patches x n_out float32: projector output for NAME.pix),
  manifest.txt: NAME image_size patch_size n_embd n_head n_layer n_used n_ff n_mm n_out
  images: IMG.png / IMG.jpg, IMG.rgb (H*W*3 uint8 as Pillow decodes it, with
  IMG.hw = "W H"), IMG.r336 (padded + resized to 336, uint8), IMG.pix32
  (pixel_values at 32 px with CLIP's mean/std) — listed in images.txt;
  lm.gguf: a tiny Llama decoder (llama_ref.py's writer) whose n_embd is the
  projector's output, and llava.png, the image the end-to-end test uses.
generate reads OUTDIR/prompt.tok ("n_before n_after" then the ids, int32,
written by the test from orion's tokenizer), runs the reference decoder on
[embed(before), clip_quick(llava.png), embed(after)], and writes gen.tok
(N_GEN greedy ids, int32) and prompt.logits (n_vocab float32 at the prompt's
last position).
vitl writes the same check at the real shape of LLaVA-1.5's encoder (CLIP
ViT-L/14-336, 23 of 24 layers run, projector 1024 -> 4096 -> 4096), one
image (llava.png from make): vitl.gguf (f32, 1.2 GB), vitl.pix, vitl.proj.
Exit status 77: python modules are missing (run scripts/setup.sh).
"""
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:  # pragma: no cover
    sys.stderr.write("clip_ref.py: %s: install python3-torch, python3-numpy and python3-pil "
                     "(run scripts/setup.sh)\n" % e)
    sys.exit(77)

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402
import llama_ref  # noqa: E402

DT = torch.float64
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
N_GEN = 16


class ClipConfig:
    def __init__(self, name, image_size=32, patch=8, n_embd=64, n_head=4, n_ff=96, n_layer=3, n_mm=80,
                 n_out=64, quick=True, feature_layer=None, legacy_ffn_names=True, patch_bias=False, seed=1,
                 fan_in_scale=False):
        self.name, self.image_size, self.patch, self.n_embd, self.n_head = name, image_size, patch, n_embd, n_head
        self.n_ff, self.n_layer, self.n_mm, self.n_out, self.quick = n_ff, n_layer, n_mm, n_out, quick
        self.feature_layer, self.legacy, self.patch_bias, self.seed = feature_layer, legacy_ffn_names, patch_bias, seed
        # real widths: matrix scales times sqrt(64 / fan_in), so activations
        # stay of the size they have in the small models
        self.fan_in_scale = fan_in_scale
        self.n_used = feature_layer if feature_layer is not None else n_layer - 1
        self.n_patches = (image_size // patch) ** 2


# CLIP ViT-L/14 at 336 px with LLaVA-1.5 7B's projector (1024 -> 4096 -> 4096)
VITL = ClipConfig("vitl", image_size=336, patch=14, n_embd=1024, n_head=16, n_ff=4096, n_layer=24, n_mm=4096,
                  n_out=4096, seed=3, fan_in_scale=True)

CONFIGS = [
    ClipConfig("clip_quick"),  # CLIP ViT: quick GELU, select layer -2, converter's FFN names
    ClipConfig("clip_gelu", image_size=36, patch=6, n_embd=48, n_head=3, n_ff=128, n_layer=4, n_mm=96,
               quick=False, feature_layer=3, legacy_ffn_names=False, patch_bias=True, seed=2),
]


# ---- preprocessing ------------------------------------------------------------------

def expand2square(img, fill):
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), fill)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def llava_square_resized(img, size, mean):
    fill = tuple(int(x * 255) for x in mean)
    return expand2square(img.convert("RGB"), fill).resize((size, size), Image.BICUBIC)


def pixel_values(img, size, mean, std):
    a = np.asarray(llava_square_resized(img, size, mean))           # (H, W, 3) uint8
    a = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    a = (a - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return a.transpose(2, 0, 1).copy()                               # (3, H, W) float32


def write_png(path, a, interlace):
    """Our own PNG writer (Pillow writes neither Adam7 nor 16-bit RGB):
    a (H, W, 3) uint8 or uint16, filter 0 on every row."""
    import zlib
    h, w, _ = a.shape
    depth = 16 if a.dtype == np.uint16 else 8
    be = a.astype(">u2") if depth == 16 else a

    def rows(sub):
        return b"".join(b"\0" + r.tobytes() for r in sub)
    if not interlace:
        raw = rows(be)
    else:  # Adam7: (x0, y0, dx, dy) per pass
        raw = b""
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                               (0, 1, 1, 2)):
            sub = be[y0::dy, x0::dx]
            if sub.size:
                raw += rows(sub)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, int(interlace))) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_images(rng):
    """name -> PIL image to save, extension and save options."""
    def noise(w, h, mode="RGB"):
        c = {"RGB": 3, "RGBA": 4, "CMYK": 4, "L": 1}[mode]
        base = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        # smooth gradients plus noise: resampling errors show on both
        yy, xx = np.mgrid[0:h, 0:w]
        grad = ((xx * 255 // max(w - 1, 1) + yy * 97 // max(h - 1, 1)) % 256).astype(np.uint8)
        base[..., 0] = (base[..., 0] // 4 + grad * 3 // 4).astype(np.uint8)
        a = base[..., 0] if mode == "L" else base
        return Image.fromarray(a, mode)
    imgs = {
        "wide": (noise(45, 30), "png", {}),          # pad rows, downscale to 32, upscale to 336
        "tall": (noise(17, 40), "png", {}),          # pad columns
        "big": (noise(700, 500), "png", {}),         # downscale with antialias
        "square": (noise(336, 336), "png", {}),      # 336: no resize at 336
        "tiny": (noise(1, 1), "png", {}),
        "rgba": (noise(23, 19, "RGBA"), "png", {}),  # alpha dropped
        "grey": (noise(20, 25, "L"), "png", {}),
        "palette": (noise(30, 30).convert("P", palette=Image.ADAPTIVE, colors=16), "png", {}),
        "photo": (noise(64, 48), "jpg", {"quality": 90}),
        "greyjpg": (noise(40, 24, "L"), "jpg", {"quality": 85}),
        "progressive": (noise(50, 34), "jpg", {"quality": 80, "progressive": True}),
        "cmyk": (noise(26, 21, "CMYK"), "jpg", {"quality": 90}),  # Adobe-inverted CMYK, as Photoshop writes
        "lossy": (noise(37, 29), "webp", {"quality": 80}),          # VP8, odd sizes: chroma upsampling edges
        "lossless": (noise(31, 22), "webp", {"lossless": True}),    # VP8L
        "alphawebp": (noise(19, 24, "RGBA"), "webp", {"quality": 90}),  # VP8X + ALPH: alpha dropped
    }
    return imgs


# ---- the vision tower ------------------------------------------------------------------

def make_clip_weights(c):
    g = torch.Generator().manual_seed(7000 + c.seed)

    def t(*shape, scale=0.1):
        if c.fan_in_scale and len(shape) >= 2:
            scale *= math.sqrt(64 / float(np.prod(shape[1:])))
        return (torch.randn(*shape, generator=g, dtype=DT) * scale).float()

    def ln(n):
        return (1.0 + 0.2 * torch.randn(n, generator=g, dtype=DT)).float(), t(n, scale=0.1)

    E, F, P = c.n_embd, c.n_ff, c.patch
    w = {"patch": t(E, 3, P, P, scale=0.15), "cls": t(E, scale=0.5), "pos": t(c.n_patches + 1, E, scale=0.3)}
    if c.patch_bias:
        w["patch_b"] = t(E, scale=0.2)
    w["pre_w"], w["pre_b"] = ln(E)
    for l in range(c.n_layer):
        p = "%d." % l
        for n in ("q", "k", "v", "o"):
            # q and k larger so that attention is peaked and errors show
            w[p + n] = t(E, E, scale=0.25 if n in "qk" else 0.12)
            w[p + n + "_b"] = t(E, scale=0.1)
        w[p + "ln1_w"], w[p + "ln1_b"] = ln(E)
        w[p + "ln2_w"], w[p + "ln2_b"] = ln(E)
        w[p + "fc1"], w[p + "fc1_b"] = t(F, E, scale=0.15), t(F, scale=0.1)
        w[p + "fc2"], w[p + "fc2_b"] = t(E, F, scale=0.12), t(E, scale=0.1)
    w["mm0"], w["mm0_b"] = t(c.n_mm, E, scale=0.12), t(c.n_mm, scale=0.1)
    w["mm2"], w["mm2_b"] = t(c.n_out, c.n_mm, scale=0.12), t(c.n_out, scale=0.1)
    return w


def layer_norm(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * g + b


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def clip_forward(c, w, pixels, select=None, act=None, drop_cls=True):
    """pixels (3, S, S) -> projector output (n_patches, n_out), float64.
    select, act, drop_cls: deliberately wrong variants (see main)."""
    W = {k: v.to(DT) for k, v in w.items()}
    E, H = c.n_embd, c.n_head
    d = E // H
    x = torch.nn.functional.conv2d(torch.as_tensor(pixels, dtype=DT)[None], W["patch"], W.get("patch_b"),
                                   stride=c.patch)                  # (1, E, S/P, S/P)
    x = x.flatten(2).transpose(1, 2)[0]                             # (NP, E), row-major patches
    x = torch.cat([W["cls"][None], x], 0) + W["pos"]                # (R, E)
    x = layer_norm(x, W["pre_w"], W["pre_b"])
    quick = c.quick if act is None else act == "quick"
    hidden = [x]
    for l in range(c.n_layer):
        p = "%d." % l
        h = layer_norm(x, W[p + "ln1_w"], W[p + "ln1_b"])
        R = h.shape[0]
        q = ((h @ W[p + "q"].T + W[p + "q_b"]) * d ** -0.5).view(R, H, d).transpose(0, 1)
        k = (h @ W[p + "k"].T + W[p + "k_b"]).view(R, H, d).transpose(0, 1)
        v = (h @ W[p + "v"].T + W[p + "v_b"]).view(R, H, d).transpose(0, 1)
        a = torch.softmax(q @ k.transpose(1, 2), -1) @ v            # (H, R, d)
        x = x + a.transpose(0, 1).reshape(R, E) @ W[p + "o"].T + W[p + "o_b"]
        h = layer_norm(x, W[p + "ln2_w"], W[p + "ln2_b"])
        h = h @ W[p + "fc1"].T + W[p + "fc1_b"]
        h = h * torch.sigmoid(1.702 * h) if quick else gelu_erf(h)
        x = x + h @ W[p + "fc2"].T + W[p + "fc2_b"]
        hidden.append(x)
    feats = hidden[c.n_used if select is None else select]
    if drop_cls:
        feats = feats[1:]
    h = gelu_erf(feats @ W["mm0"].T + W["mm0_b"])
    return h @ W["mm2"].T + W["mm2_b"]


def write_clip(path, c, w):
    f = gw.Writer()
    f.add("general.architecture", gw.STRING, "clip")
    f.add("general.name", gw.STRING, "orion-ref-" + c.name)
    f.add("clip.has_text_encoder", gw.BOOL, False)
    f.add("clip.has_vision_encoder", gw.BOOL, True)
    f.add("clip.has_llava_projector", gw.BOOL, True)
    f.add("clip.projector_type", gw.STRING, "mlp")
    f.add("clip.vision.image_size", gw.U32, c.image_size)
    f.add("clip.vision.patch_size", gw.U32, c.patch)
    f.add("clip.vision.embedding_length", gw.U32, c.n_embd)
    f.add("clip.vision.feed_forward_length", gw.U32, c.n_ff)
    f.add("clip.vision.projection_dim", gw.U32, 768)
    f.add("clip.vision.attention.head_count", gw.U32, c.n_head)
    f.add("clip.vision.attention.layer_norm_epsilon", gw.F32, 1e-5)
    f.add("clip.vision.block_count", gw.U32, c.n_layer)
    f.add("clip.vision.image_mean", gw.ARRAY, CLIP_MEAN, gw.F32)
    f.add("clip.vision.image_std", gw.ARRAY, CLIP_STD, gw.F32)
    if c.feature_layer is not None:
        f.add("clip.vision.feature_layer", gw.ARRAY, [c.feature_layer], gw.I32)
    f.add("clip.use_gelu", gw.BOOL, not c.quick)

    def tensor(name, t):
        f.add_tensor(name, list(reversed(t.shape)), t.contiguous().numpy().astype("<f4").tobytes())

    tensor("v.patch_embd.weight", w["patch"])  # 4-D, ne = [P, P, 3, E]
    if c.patch_bias:
        tensor("v.patch_embd.bias", w["patch_b"])
    tensor("v.class_embd", w["cls"])
    tensor("v.position_embd.weight", w["pos"])
    tensor("v.pre_ln.weight", w["pre_w"])
    tensor("v.pre_ln.bias", w["pre_b"])
    up, down = ("ffn_down", "ffn_up") if c.legacy else ("ffn_up", "ffn_down")  # names of fc1, fc2
    for l in range(c.n_layer):
        p, b = "%d." % l, "v.blk.%d." % l
        for n, gn in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_out")):
            tensor(b + gn + ".weight", w[p + n])
            tensor(b + gn + ".bias", w[p + n + "_b"])
        tensor(b + "ln1.weight", w[p + "ln1_w"])
        tensor(b + "ln1.bias", w[p + "ln1_b"])
        tensor(b + "ln2.weight", w[p + "ln2_w"])
        tensor(b + "ln2.bias", w[p + "ln2_b"])
        tensor(b + up + ".weight", w[p + "fc1"])
        tensor(b + up + ".bias", w[p + "fc1_b"])
        tensor(b + down + ".weight", w[p + "fc2"])
        tensor(b + down + ".bias", w[p + "fc2_b"])
    tensor("mm.0.weight", w["mm0"])
    tensor("mm.0.bias", w["mm0_b"])
    tensor("mm.2.weight", w["mm2"])
    tensor("mm.2.bias", w["mm2_b"])
    f.write(path)


# ---- the decoder, from input vectors ------------------------------------------------------

LM = llama_ref.Config("llava_lm", n_head=4, n_head_kv=2, n_embd=64, n_ff=96, n_layer=2, seed=11)


def decoder_logits(c, w, x):
    """llama_ref.forward's model (RMSNorm, adjacent-pair rope, GQA, SwiGLU)
    with the input rows given instead of looked up: x (T, E) -> (T, n_vocab)."""
    W = {k: v.to(DT) for k, v in w.items()}
    T, H, KV, hd = x.shape[0], c.n_head, c.n_head_kv, c.head_dim
    pos = torch.arange(T, dtype=DT)
    t = torch.arange(T)
    causal = t[None, :] <= t[:, None]
    for l in range(c.n_layer):
        p = "blk.%d." % l
        h = llama_ref.rmsnorm(x, W[p + "attn_norm"], c.rms_eps)
        q = llama_ref.rope((h @ W[p + "attn_q"].T).view(T, H, hd), pos, c.n_rot, c.freq_base)
        k = llama_ref.rope((h @ W[p + "attn_k"].T).view(T, KV, hd), pos, c.n_rot, c.freq_base)
        v = (h @ W[p + "attn_v"].T).view(T, KV, hd)
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        a = torch.softmax(s.masked_fill(~causal[None], float("-inf")), -1)
        x = x + torch.einsum("hts,shd->thd", a, v).reshape(T, H * hd) @ W[p + "attn_output"].T
        h = llama_ref.rmsnorm(x, W[p + "ffn_norm"], c.rms_eps)
        x = x + (torch.nn.functional.silu(h @ W[p + "ffn_gate"].T) * (h @ W[p + "ffn_up"].T)) @ W[p + "ffn_down"].T
    return llama_ref.rmsnorm(x, W["output_norm"], c.rms_eps) @ W["output"].T


# ---- main ----------------------------------------------------------------------------------

def write_f32(path, a):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def make(out):
    rng = np.random.default_rng(20240607)
    names = []
    for name, (img, ext, opts) in test_images(rng).items():
        path = os.path.join(out, name + "." + ext)
        img.save(path, **opts)
        dec = Image.open(path).convert("RGB")
        with open(os.path.join(out, name + ".rgb"), "wb") as f:
            f.write(np.asarray(dec).tobytes())
        with open(os.path.join(out, name + ".hw"), "w") as f:
            f.write("%d %d\n" % dec.size)
        with open(os.path.join(out, name + ".r336"), "wb") as f:
            f.write(np.asarray(llava_square_resized(dec, 336, CLIP_MEAN)).tobytes())
        write_f32(os.path.join(out, name + ".pix32"), pixel_values(dec, 32, CLIP_MEAN, CLIP_STD))
        names.append(name + "." + ext)
    a = rng.integers(0, 65536, size=(21, 33, 3), dtype=np.uint16)
    write_png(os.path.join(out, "interlaced.png"), (a >> 8).astype(np.uint8), True)
    write_png(os.path.join(out, "rgb16.png"), a, False)
    for name in ("interlaced", "rgb16"):
        dec = Image.open(os.path.join(out, name + ".png")).convert("RGB")
        with open(os.path.join(out, name + ".rgb"), "wb") as f:
            f.write(np.asarray(dec).tobytes())
        with open(os.path.join(out, name + ".hw"), "w") as f:
            f.write("%d %d\n" % dec.size)
        with open(os.path.join(out, name + ".r336"), "wb") as f:
            f.write(np.asarray(llava_square_resized(dec, 336, CLIP_MEAN)).tobytes())
        write_f32(os.path.join(out, name + ".pix32"), pixel_values(dec, 32, CLIP_MEAN, CLIP_STD))
        names.append(name + ".png")
    with open(os.path.join(out, "images.txt"), "w") as f:
        f.write("\n".join(names) + "\n")

    # an animated WebP (two frames): refused, not decoded as its first frame
    frames = [Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)) for _ in range(2)]
    frames[0].save(os.path.join(out, "anim.webp"), save_all=True, append_images=frames[1:], duration=100, loop=0)

    llava_img = test_images(np.random.default_rng(5))["wide"][0]
    llava_img.save(os.path.join(out, "llava.png"))
    manifest = []
    for c in CONFIGS:
        w = make_clip_weights(c)
        pix = pixel_values(Image.open(os.path.join(out, "llava.png")), c.image_size, CLIP_MEAN, CLIP_STD)
        proj = clip_forward(c, w, pix)
        wrong = {"last layer": clip_forward(c, w, pix, select=c.n_layer if c.n_used != c.n_layer else c.n_used - 1),
                 "other GELU": clip_forward(c, w, pix, act="erf" if c.quick else "quick"),
                 "class token kept": clip_forward(c, w, pix, drop_cls=False)[:-1]}
        margins = []
        for what, o in wrong.items():
            dd = (o - proj).abs().max().item()
            margins.append("%s %.3f" % (what, dd))
            if dd < 1e-2:
                sys.stderr.write("clip_ref.py: %s: '%s' changes the output by only %.2e\n" % (c.name, what, dd))
                return 1
        print("clip_ref.py: %-10s output max %.2f; a wrong model moves it by: %s" % (
            c.name, proj.abs().max().item(), ", ".join(margins)))
        write_clip(os.path.join(out, c.name + ".gguf"), c, w)
        write_f32(os.path.join(out, c.name + ".pix"), pix)
        write_f32(os.path.join(out, c.name + ".proj"), proj.float().numpy())
        manifest.append("%s %d %d %d %d %d %d %d %d %d" % (c.name, c.image_size, c.patch, c.n_embd, c.n_head,
                                                           c.n_layer, c.n_used, c.n_ff, c.n_mm, c.n_out))
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    llama_ref.write_gguf(os.path.join(out, "lm.gguf"), LM, llama_ref.make_weights(LM))
    return 0


def generate(out):
    with open(os.path.join(out, "prompt.tok"), "rb") as f:
        data = f.read()
    nb, na = struct.unpack("<2i", data[:8])
    ids = list(struct.unpack("<%di" % (nb + na), data[8:8 + 4 * (nb + na)]))
    c = CONFIGS[0]
    pix = pixel_values(Image.open(os.path.join(out, "llava.png")), c.image_size, CLIP_MEAN, CLIP_STD)
    img = clip_forward(c, make_clip_weights(c), pix)
    w = llama_ref.make_weights(LM)
    emb = w["token_embd"].to(DT)
    x = torch.cat([emb[torch.tensor(ids[:nb], dtype=torch.long)], img,
                   emb[torch.tensor(ids[nb:], dtype=torch.long)]], 0)
    gen = []
    logits0 = None
    for _ in range(N_GEN):
        lg = decoder_logits(LM, w, x)[-1]
        if logits0 is None:
            logits0 = lg
        nxt = int(torch.argmax(lg))
        gen.append(nxt)
        x = torch.cat([x, emb[nxt][None]], 0)
    with open(os.path.join(out, "gen.tok"), "wb") as f:
        f.write(struct.pack("<%di" % N_GEN, *gen))
    write_f32(os.path.join(out, "prompt.logits"), logits0.float().numpy())
    print("clip_ref.py: greedy from %d + %d image + %d positions: %s" % (nb, img.shape[0], na, gen))
    return 0


def vitl(out):
    """The real ViT-L/14-336 shape, one image: vitl.gguf (f32, 1.2 GB),
    vitl.pix and vitl.proj (576 x 4096) from llava.png (written by make)."""
    c = VITL
    w = make_clip_weights(c)
    pix = pixel_values(Image.open(os.path.join(out, "llava.png")), c.image_size, CLIP_MEAN, CLIP_STD)
    proj = clip_forward(c, w, pix)
    write_clip(os.path.join(out, "vitl.gguf"), c, w)
    write_f32(os.path.join(out, "vitl.pix"), pix)
    write_f32(os.path.join(out, "vitl.proj"), proj.float().numpy())
    print("clip_ref.py: vitl: %d patches x %d, output max %.2f" % (proj.shape[0], proj.shape[1],
                                                                   proj.abs().max().item()))
    return 0


def main():
    modes = {"make": make, "generate": generate, "vitl": vitl}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        sys.stderr.write("usage: clip_ref.py make|generate|vitl OUTDIR\n")
        return 2
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1 if sys.argv[1] != "vitl" else max(1, min(4, os.cpu_count() or 1)))
    return modes[sys.argv[1]](out)


if __name__ == "__main__":
    sys.exit(main())
