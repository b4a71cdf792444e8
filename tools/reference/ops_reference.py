"""Writes tests/data/ops_torch.safetensors: PyTorch forward outputs and gradients for every op
case of tests/test_ops.c (same names, same parameters), so the C test holds each op equal to
PyTorch as well as to its own double-precision reference.

For case NAME the file holds NAME.in<k> (inputs), NAME.out0 (forward output), NAME.dout0 (the
upstream gradient) and NAME.din<k> (PyTorch's gradient for each differentiable input).
Run: python3 tools/reference/ops_reference.py  (dev-time only; see requirements.txt)
"""
import os
import sys

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from safetensors.torch import save_file

torch.manual_seed(20261126)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def u(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=torch.float64) * (hi - lo) + lo).float()


CASES = {}


def case(name, fn, inputs, diff):
    """fn maps the input tensors to the output; diff marks inputs that get gradients."""
    ins = [x.clone().requires_grad_(bool(d)) for x, d in zip(inputs, diff)]
    out = fn(*ins)
    dout = u(*out.shape)
    out.backward(dout)
    CASES[name] = (inputs, out.detach(), dout, [x.grad if d else None for x, d in zip(ins, diff)])


def linear(name, M, K, N, bias):
    x, w, b = u(M, K), u(N, K), u(N)
    case(name, lambda x, w, b: F.linear(x, w, b if bias else None), [x, w, b], [1, 1, bias])


def conv(name, n, cin, h, w_, cout, k, s, p):
    case(name, lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p),
         [u(n, cin, h, w_), u(cout, cin, k, k), u(cout)], [1, 1, 1])


def groupnorm(name, N, C, HW, G, eps):
    case(name, lambda x, g, b: F.group_norm(x.view(N, C, HW), G, g, b, eps).view(-1),
         [u(N * C * HW), u(C), u(C)], [1, 1, 1])


def layernorm(name, M, C):
    case(name, lambda x, g, b: F.layer_norm(x.view(M, C), (C,), g, b, 1e-5).view(-1),
         [u(M * C), u(C), u(C)], [1, 1, 1])


def attention(name, B, Nq, Nk, H, dh, causal, lim):
    def fn(q, k, v):
        heads = lambda t, n: t.view(B, n, H, dh).transpose(1, 2)
        o = F.scaled_dot_product_attention(heads(q, Nq), heads(k, Nk), heads(v, Nk), is_causal=bool(causal))
        return o.transpose(1, 2).reshape(-1)
    case(name, fn, [u(B * Nq * H * dh, lo=-lim, hi=lim), u(B * Nk * H * dh, lo=-lim, hi=lim),
                    u(B * Nk * H * dh, lo=-lim, hi=lim)], [1, 1, 1])


def reduce(name, kind, N, D):
    fns = {"mse": lambda a, b: ((a - b) ** 2).view(N, D).mean(1),
           "mean_abs": lambda a, b: (a - b).abs().view(N, D).mean(1),
           "dot": lambda a, b: (a * b).view(N, D).sum(1)}
    case(name, fns[kind], [u(N * D), u(N * D)], [1, 1])


def main():
    linear("linear 5x7->3 bias", 5, 7, 3, 1)
    linear("linear 1x33->17 no bias", 1, 33, 17, 0)
    linear("linear 67x19->23 bias", 67, 19, 23, 1)
    conv("conv2d 3x3 s1 p1 n=2", 2, 3, 7, 9, 4, 3, 1, 1)
    conv("conv2d 3x3 s1 p1 n=1", 1, 5, 6, 5, 3, 3, 1, 1)
    conv("conv2d 3x3 s1 p1 n=3", 3, 2, 5, 4, 2, 3, 1, 1)
    conv("conv2d 5x5 s1 p2 (shifted-plane path)", 2, 2, 6, 7, 3, 5, 1, 2)
    conv("conv2d 3x3 s1 p1 one column", 2, 2, 5, 1, 2, 3, 1, 1)
    conv("conv2d 3x3 s1 p0 (per-line path)", 2, 2, 6, 5, 3, 3, 1, 0)
    conv("conv2d 3x3 s2 p1 odd", 2, 3, 7, 8, 5, 3, 2, 1)
    conv("conv2d 3x3 s2 p0 (vae enc)", 2, 2, 9, 9, 3, 3, 2, 0)
    conv("conv2d 3x3 direct kernel 8->16 ch, 24 wide (16- and 8-pixel tiles)", 2, 8, 4, 24, 16, 3, 1, 1)
    conv("conv2d 3x3 direct forward, im2col input gradient (3->8 ch)", 2, 3, 3, 16, 8, 3, 1, 1)
    conv("conv2d 5x5 p2 direct kernel 8->8 ch", 1, 8, 3, 8, 8, 5, 1, 2)
    conv("conv2d 1x1", 3, 5, 6, 5, 2, 1, 1, 0)
    conv("conv2d 1x1 n=1", 1, 4, 3, 7, 6, 1, 1, 0)
    groupnorm("groupnorm G=3 eps1e-5", 2, 6, 5, 3, 1e-5)
    groupnorm("groupnorm G=1 eps1e-6", 3, 4, 7, 1, 1e-6)
    groupnorm("groupnorm G=C", 2, 5, 9, 5, 1e-5)
    layernorm("layernorm 4x7", 4, 7)
    layernorm("layernorm 3x64", 3, 64)
    case("silu", F.silu, [u(37, lo=-4, hi=4)], [1])
    case("gelu (erf)", lambda x: F.gelu(x), [u(37, lo=-4, hi=4)], [1])
    case("quick_gelu", lambda x: x * torch.sigmoid(1.702 * x), [u(37, lo=-4, hi=4)], [1])

    def geglu(x):
        a, g = x.view(3, 10).chunk(2, dim=-1)
        return (a * F.gelu(g)).reshape(-1)
    case("geglu 3x5", geglu, [u(30, lo=-3, hi=3)], [1])
    case("softmax 4x9", lambda x: F.softmax(x.view(4, 9), dim=-1).reshape(-1), [u(36, lo=-3, hi=3)], [1])
    attention("attention self 2x13 h2 d8", 2, 13, 13, 2, 8, 0, 1.5)
    attention("attention cross 2x9->11 h3 d5", 2, 9, 11, 3, 5, 0, 1.5)
    attention("attention causal 1x17 h2 d4", 1, 17, 17, 2, 4, 1, 1.5)
    attention("attention tiled 70x300 h1 d4", 1, 70, 300, 1, 4, 0, 1.0)
    attention("attention tiled causal 1x130 h2 d3", 1, 130, 130, 2, 3, 1, 1.0)
    case("upsample2x", lambda x: F.interpolate(x.view(1, 3, 4, 5), scale_factor=2, mode="nearest").reshape(-1),
         [u(60)], [1])
    case("concat channels", lambda a, b: torch.cat([a.view(2, 3, 5), b.view(2, 2, 5)], dim=1).reshape(-1),
         [u(30), u(20)], [1, 1])
    case("transpose NCL<->NLC", lambda x: x.view(2, 37, 35).transpose(1, 2).reshape(-1), [u(2 * 37 * 35)], [1])
    case("add", lambda a, b: a + b, [u(29), u(29)], [1, 1])
    case("scale", lambda x: -1.75 * x, [u(29)], [1])
    case("mul", lambda a, b: a * b, [u(29), u(29)], [1, 1])
    case("channel bias (temb)", lambda x, b: (x.view(2, 3, 7) + b.view(2, 3, 1)).reshape(-1), [u(42), u(6)], [1, 1])
    # diffusers' own function, forward only in float32 (its gradient in t is what our backward computes)
    case("timestep embedding flip odd",
         lambda t: get_timestep_embedding(t, 9, flip_sin_to_cos=True, downscale_freq_shift=0).reshape(-1),
         [u(3, lo=0, hi=999)], [1])
    case("timestep embedding shift1",
         lambda t: get_timestep_embedding(t, 8, flip_sin_to_cos=False, downscale_freq_shift=1).reshape(-1),
         [u(4, lo=0, hi=50)], [1])
    ids = torch.tensor([0, 3, 6, 3, 1, 2, 2, 6, 0, 5]).view(2, 5)
    case("token+position embedding", lambda tok, pos: (F.embedding(ids, tok.view(7, 4)) + pos.view(1, 5, 4)).reshape(-1),
         [u(28), u(20)], [1, 1])
    reduce("mse per sample", "mse", 3, 11)
    reduce("mean |a-b| per sample", "mean_abs", 3, 11)
    reduce("dot per sample", "dot", 3, 11)

    # SiD-LSG arithmetic (appended, so the cases above keep their random inputs)
    case("cfg combine kappa 4.5", lambda uc, c: uc + 4.5 * (c - uc), [u(29), u(29)], [1, 1])

    def per_sample(name, fn, N, D, lo, hi):
        case(name, lambda x, e, a, s: fn(x.view(N, D), e.view(N, D), a.view(N, 1), s.view(N, 1)).reshape(-1),
             [u(N * D, lo=lo, hi=hi), u(N * D, lo=lo, hi=hi), u(N, lo=lo, hi=hi), u(N, lo=lo, hi=hi)], [1, 1, 0, 0])
    per_sample("add noise per sample", lambda x, e, a, s: a * x + s * e, 3, 11, -1, 1)
    per_sample("x0 from eps per sample", lambda x, e, a, s: (x - s * e) / a, 3, 11, 0.4, 1.2)
    case("clamp [-0.5, 0.6]", lambda x: torch.clamp(x, -0.5, 0.6), [u(37)], [1])
    case("dsm loss", lambda eh, e: 0.25 * ((eh.double() - e.double()) ** 2).sum().float().reshape(1),
         [u(33), u(33)], [1, 0])

    def sid_loss(xg, yr, yf, alpha=1.2, scale=0.25, N=3, D=11):
        xg, yr, yf = xg.view(N, D), yr.view(N, D), yf.view(N, D)
        w = (xg - yr).abs().double().mean(1).clamp(min=1e-5).detach()
        dd = yr - yf
        e = (yr - xg) - alpha * dd
        return (scale * ((dd.double() * e.double()).sum(1) / w).sum()).float().reshape(1)
    case("sid generator loss alpha 1.2", sid_loss, [u(33), u(33), u(33)], [1, 1, 1])

    # Inception's ops (appended after the rest for the same reason)
    def conv_rect(name, n, cin, h, w_, cout, kh, kw, s, ph, pw):
        case(name, lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=(ph, pw)),
             [u(n, cin, h, w_), u(cout, cin, kh, kw), u(cout)], [1, 1, 1])
    conv_rect("conv2d 1x7 p(0,3) same size", 2, 3, 5, 9, 4, 1, 7, 1, 0, 3)
    conv_rect("conv2d 7x1 p(3,0) same size", 2, 3, 9, 5, 4, 7, 1, 1, 3, 0)
    conv_rect("conv2d 1x3 p(0,1) 8 wide", 2, 4, 3, 8, 8, 1, 3, 1, 0, 1)
    conv_rect("conv2d 3x1 p(1,0) 8 wide", 2, 4, 3, 8, 8, 3, 1, 1, 1, 0)
    conv_rect("conv2d 2x3 s2 p(1,0) (general path)", 2, 3, 7, 8, 3, 2, 3, 2, 1, 0)

    def pool(name, nc, h, w_, k, s, p, kind, count_pad):
        def fn(x):
            x = x.view(1, nc, h, w_)
            y = (F.max_pool2d(x, k, s, p) if kind == "max"
                 else F.avg_pool2d(x, k, s, p, count_include_pad=bool(count_pad)))
            return y.reshape(-1)
        case(name, fn, [u(nc * h * w_)], [1])
    pool("max pool 3x3 s2 (Inception stem)", 3, 9, 8, 3, 2, 0, "max", 0)
    pool("max pool 3x3 s1 p1", 2, 5, 6, 3, 1, 1, "max", 0)
    pool("avg pool 3x3 s1 p1 without padding", 2, 5, 6, 3, 1, 1, "avg", 0)
    pool("avg pool 3x3 s1 p1 with padding", 2, 5, 4, 3, 1, 1, "avg", 1)
    pool("global avg pool 4x4", 3, 4, 4, 4, 1, 0, "avg", 1)

    # SiLU(group norm), the ResNet blocks' fused op (appended for the same reason)
    def groupnorm_silu(name, N, C, HW, G, eps):
        case(name, lambda x, g, b: F.silu(F.group_norm(x.view(N, C, HW), G, g, b, eps)).view(-1),
             [u(N * C * HW, lo=-3, hi=3), u(C), u(C)], [1, 1, 1])
    groupnorm_silu("groupnorm+silu G=3", 2, 6, 5, 3, 1e-5)
    groupnorm_silu("groupnorm+silu G=1 eps1e-6", 3, 4, 7, 1, 1e-6)
    conv("conv2d 1x1 8->12 ch, 16 wide", 2, 8, 3, 16, 12, 1, 1, 0)
    # the Winograd path's plane shapes (appended for the same reason)
    conv("conv2d 3x3 winograd 8->8 ch, 32 wide", 2, 8, 2, 32, 8, 3, 1, 1)
    conv("conv2d 3x3 winograd 5->12 ch, 16x6", 2, 5, 6, 16, 12, 3, 1, 1)
    conv("conv2d 3x3 winograd 12->9 ch, 8x8", 2, 12, 8, 8, 9, 3, 1, 1)
    conv("conv2d 3x3 winograd 1->16 ch, 8x4", 2, 1, 4, 8, 16, 3, 1, 1)
    conv("conv2d 3x3 winograd 9->8 ch, 16x2", 3, 9, 2, 16, 8, 3, 1, 1)
    conv("conv2d 3x3 winograd 16->5 ch, 8x8", 3, 16, 8, 8, 5, 3, 1, 1)
    conv("conv2d 3x3 winograd 24->6 ch, 16x4", 2, 24, 4, 16, 6, 3, 1, 1)

    tensors = {}
    for name, (inputs, out, dout, grads) in CASES.items():
        for k, x in enumerate(inputs):
            tensors[f"{name}.in{k}"] = x.clone().contiguous()
            if grads[k] is not None:
                tensors[f"{name}.din{k}"] = grads[k].clone().contiguous()
        tensors[f"{name}.out0"] = out.reshape(-1).clone()
        tensors[f"{name}.dout0"] = dout.reshape(-1).clone()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    path = os.path.join(root, "tests", "data", "ops_torch.safetensors")
    save_file(tensors, path, metadata={"torch": torch.__version__, "generator": "tools/reference/ops_reference.py"})
    print(f"wrote {len(CASES)} cases, {len(tensors)} tensors to {os.path.relpath(path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
