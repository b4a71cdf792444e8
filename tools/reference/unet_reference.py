"""Writes tests/data/unet/<name>/: tiny random UNet2DConditionModel folders saved by diffusers
(config.json + diffusion_pytorch_model.safetensors, weights in float16 to keep the files small)
and golden.safetensors with inputs, the forward output, an upstream gradient, the input and
context gradients and a sample of weight gradients, all computed by diffusers in float32 from
the float16-rounded weights.

Run: /path/to/venv/bin/python tools/reference/unet_reference.py   (dev-time only)
"""
import os

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

CONFIGS = {
    # SD1.5's block structure (4 levels, cross-attention in the first three, 2 layers per block,
    # 1x1-conv projections, one head count everywhere) at small widths
    "sd15_tiny": dict(block_out_channels=(8, 16, 16, 16), layers_per_block=2, norm_num_groups=4,
                      down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                      up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                      attention_head_dim=2, cross_attention_dim=12, in_channels=4, out_channels=4, sample_size=16),
    # SD2.x style: linear projections, per-level head list, 2 transformer layers per block
    "sd2_linear": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                       down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=[2, 4],
                       use_linear_projection=True, transformer_layers_per_block=2, cross_attention_dim=20,
                       in_channels=3, out_channels=2, sample_size=8, freq_shift=1, flip_sin_to_cos=False),
}

WEIGHT_GRADS = ["conv_in.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
                "down_blocks.0.resnets.0.conv1.weight", "down_blocks.0.resnets.0.time_emb_proj.weight",
                "down_blocks.0.attentions.0.proj_in.weight", "down_blocks.0.attentions.0.norm.weight",
                "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
                "down_blocks.0.attentions.0.transformer_blocks.0.norm3.bias",
                "mid_block.attentions.0.transformer_blocks.0.attn2.to_v.weight",
                "mid_block.resnets.1.norm2.weight", "up_blocks.0.resnets.0.conv_shortcut.weight",
                "up_blocks.1.resnets.2.conv2.bias", "up_blocks.0.upsamplers.0.conv.weight",
                "conv_norm_out.weight", "conv_out.weight", "conv_out.bias"]


def main():
    for name, cfg in CONFIGS.items():
        torch.manual_seed(1234)
        unet = UNet2DConditionModel(**cfg).float().eval()
        with torch.no_grad():  # random, not zero-initialised, outputs; then round to what the f16 file holds
            for p in unet.parameters():
                p.add_(torch.randn_like(p) * 0.05)
                p.copy_(p.half().float())
        out_dir = os.path.join(ROOT, "tests", "data", "unet", name)
        os.makedirs(out_dir, exist_ok=True)
        unet.to(torch.float16).save_pretrained(out_dir, safe_serialization=True)
        unet.to(torch.float32)
        B, S, M = 2, cfg["sample_size"], 5
        x = torch.randn(B, cfg["in_channels"], S, S, requires_grad=True)
        t = torch.tensor([999.0, 37.0])
        ctx = torch.randn(B, M, cfg["cross_attention_dim"], requires_grad=True)
        out = unet(x, t, encoder_hidden_states=ctx).sample
        dout = torch.randn_like(out)
        out.backward(dout)
        golden = {"x": x.detach(), "t": t, "ctx": ctx.detach(), "out": out.detach(), "dout": dout,
                  "dx": x.grad, "dctx": ctx.grad}
        params = dict(unet.named_parameters())
        for w in WEIGHT_GRADS:
            if w in params:
                golden["grad." + w] = params[w].grad.clone()
        save_file({k: v.contiguous() for k, v in golden.items()}, os.path.join(out_dir, "golden.safetensors"),
                  metadata={"diffusers": __import__("diffusers").__version__, "torch": torch.__version__})
        n = sum(p.numel() for p in unet.parameters())
        print(f"{name}: {n} parameters, {len(golden)} golden tensors -> {os.path.relpath(out_dir, ROOT)}")


if __name__ == "__main__":
    main()
