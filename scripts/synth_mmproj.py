#!/usr/bin/env python3
"""synth_mmproj.py OUT.gguf [SEED] — writes a LLaVA-1.5 projector file
(llama.cpp's mmproj layout, as tests/ref/clip_ref.py documents) at the real
CLIP ViT-L/14-336 shape with seeded random weights, for measuring speed and
memory without downloading a model: 24 layers, 1024 hidden, 16 heads, 4096
FFN, 336 px, patch 14 (576 patches), quick GELU, projector 1024 -> 4096 ->
4096. Matrices are N(0, 0.02^2) in f32 (the patch convolution in f16, as
llama.cpp's converter stores it), LayerNorm weights 1, biases 0. Make the
other types with `orion quantize OUT.gguf OUT-q4_0.gguf --type q4_0`.
The file is about 1.2 GB: write it outside the repository (/tmp).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import gguf_writer as gw  # noqa: E402

E, F, H, L, S, P, M, O = 1024, 4096, 16, 24, 336, 14, 4096, 4096


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: synth_mmproj.py OUT.gguf [SEED]\n")
        return 2
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) == 3 else 1)
    f = gw.Writer()
    for k, t, v in (("general.architecture", gw.STRING, "clip"), ("general.name", gw.STRING, "synth-vit-l-14-336"),
                    ("clip.has_text_encoder", gw.BOOL, False), ("clip.has_vision_encoder", gw.BOOL, True),
                    ("clip.has_llava_projector", gw.BOOL, True), ("clip.projector_type", gw.STRING, "mlp"),
                    ("clip.vision.image_size", gw.U32, S), ("clip.vision.patch_size", gw.U32, P),
                    ("clip.vision.embedding_length", gw.U32, E), ("clip.vision.feed_forward_length", gw.U32, F),
                    ("clip.vision.projection_dim", gw.U32, 768), ("clip.vision.attention.head_count", gw.U32, H),
                    ("clip.vision.attention.layer_norm_epsilon", gw.F32, 1e-5), ("clip.vision.block_count", gw.U32, L),
                    ("clip.use_gelu", gw.BOOL, False)):
        f.add(k, t, v)
    f.add("clip.vision.image_mean", gw.ARRAY, [0.48145466, 0.4578275, 0.40821073], gw.F32)
    f.add("clip.vision.image_std", gw.ARRAY, [0.26862954, 0.26130258, 0.27577711], gw.F32)

    def mat(name, *shape, ttype=gw.TENSOR_F32):
        a = (rng.standard_normal(shape, dtype=np.float32) * 0.02)
        data = a.astype("<f2" if ttype == gw.TENSOR_F16 else "<f4").tobytes()
        f.add_tensor(name, list(reversed(shape)), data, ttype)

    def const(name, n, v):
        f.add_tensor(name, [n], np.full(n, v, dtype="<f4").tobytes())

    mat("v.patch_embd.weight", E, 3, P, P, ttype=gw.TENSOR_F16)
    mat("v.class_embd", E)
    mat("v.position_embd.weight", (S // P) ** 2 + 1, E)
    const("v.pre_ln.weight", E, 1.0)
    const("v.pre_ln.bias", E, 0.0)
    for layer in range(L):
        b = "v.blk.%d." % layer
        for n in ("attn_q", "attn_k", "attn_v", "attn_out"):
            mat(b + n + ".weight", E, E)
            const(b + n + ".bias", E, 0.0)
        for n in ("ln1", "ln2"):
            const(b + n + ".weight", E, 1.0)
            const(b + n + ".bias", E, 0.0)
        mat(b + "ffn_down.weight", F, E)  # fc1, in llama.cpp's naming
        const(b + "ffn_down.bias", F, 0.0)
        mat(b + "ffn_up.weight", E, F)    # fc2
        const(b + "ffn_up.bias", E, 0.0)
    mat("mm.0.weight", M, E)
    const("mm.0.bias", M, 0.0)
    mat("mm.2.weight", O, M)
    const("mm.2.bias", O, 0.0)
    f.write(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
