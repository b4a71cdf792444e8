"""One SiD-LSG iteration in PyTorch on a teacher folder, from fixed inputs, for the C parity test.

Writes tests/data/sid/golden.safetensors: for each case (kappa in {1, 2} x alpha in {1, 1.2}) the
inputs of one fake-score round and one generator round (prompt indices, z, eps, t), the losses,
a sample of the fake net's and the generator's gradients (fixed random indices) with their norms,
and the same sample of the weights after each Adam step. Follows the reference loop as docs/sid.md
describes it: psi first (kappa1, epsilon MSE / b), then theta (kappa2 on psi, kappa4 on
the teacher, gradients through both frozen nets' inputs, w_n stop-gradient), Adam betas (0, 0.999).

With --clip-sample it writes tests/data/sid/golden_clip.safetensors instead: one case (kappa 2,
alpha 1.2) with the scheduler's clip_sample semantics (DDPMScheduler's default when a config lacks
the key): every x0 prediction (the generator's output, y_fake and y_real) clamped to [-1, 1], as
the scheduler's pred_original_sample is.

Run: /path/to/venv/bin/python tools/reference/sid_reference.py [--clip-sample] [teacher_dir]   (dev-time only)
"""
import copy
import os
import sys

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
torch.backends.cuda.matmul.allow_tf32 = False


def main():
    args = [a for a in sys.argv[1:] if a != "--clip-sample"]
    clip = "--clip-sample" in sys.argv[1:]
    teacher_dir = args[0] if args else os.path.join(ROOT, "tests", "data", "sid", "teacher")
    cases = [(2.0, 1.2)] if clip else [(1.0, 1.0), (1.0, 1.2), (2.0, 1.0), (2.0, 1.2)]
    x0 = (lambda v: v.clamp(-1.0, 1.0)) if clip else (lambda v: v)
    prompts = [l.rstrip("\n") for l in open(os.path.join(ROOT, "data", "prompts", "fmnist_train.txt"))
               if l.strip() and not l.startswith("#")]
    tok = CLIPTokenizer.from_pretrained(os.path.join(teacher_dir, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(teacher_dir, "text_encoder")).float().eval()
    teacher = UNet2DConditionModel.from_pretrained(os.path.join(teacher_dir, "unet")).float().eval()
    sched = DDPMScheduler.from_pretrained(os.path.join(teacher_dir, "scheduler"))
    ab = sched.alphas_cumprod.float()
    a_t, s_t = ab.sqrt(), (1 - ab).sqrt()
    for p in list(teacher.parameters()) + list(te.parameters()):
        p.requires_grad_(False)

    def embed(idx):
        texts = [prompts[i] if i >= 0 else "" for i in idx]
        ids = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return te(ids)[0]

    m, S, t0, B = 4, 32, 625, 4
    g = torch.Generator().manual_seed(1234)
    out = {}
    n_sample = 4000
    for case, (kappa, alpha) in enumerate(cases):
        fake, gen = copy.deepcopy(teacher), copy.deepcopy(teacher)
        for p in list(fake.parameters()) + list(gen.parameters()):
            p.requires_grad_(True)
        uncond = embed([-1] * m)

        def guided(net, x_t, t, c, k):
            if k == 1.0:
                return net(x_t, t, encoder_hidden_states=c).sample
            o = net(torch.cat([x_t, x_t]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, c])).sample
            u, cc = o.chunk(2)
            return u + k * (cc - u)

        def G(z, c):
            a, s = a_t[t0], s_t[t0]
            eps = gen(s * z, torch.full((z.shape[0],), float(t0)), encoder_hidden_states=c).sample
            return x0((s * z - s * eps) / a)

        def draw():
            idx = torch.randint(0, len(prompts), (m,), generator=g)
            z = torch.randn(m, 1, S, S, generator=g)
            eps = torch.randn(m, 1, S, S, generator=g)
            t = torch.randint(20, 980, (m,), generator=g)
            return idx, z, eps, t

        per = lambda v, t: v[t].view(-1, 1, 1, 1)
        # ---- phase 1: the fake score network
        idx, z, eps, t = draw()
        c = embed(idx.tolist())
        with torch.no_grad():
            xg = G(z, c)
        x_t = per(a_t, t) * xg + per(s_t, t) * eps
        ehat = guided(fake, x_t, t.float(), c, kappa)
        loss_fake = ((ehat - eps) ** 2).sum() / B
        loss_fake.backward()
        fake_grads = torch.cat([p.grad.flatten() for p in fake.parameters()])
        opt_f = torch.optim.Adam(fake.parameters(), lr=1e-4, betas=(0.0, 0.999), eps=1e-8)
        opt_f.step()
        fake_after = torch.cat([p.detach().flatten() for p in fake.parameters()])
        for p in fake.parameters():
            p.requires_grad_(False)
        pre = f"case{case}."
        out.update({pre + "f.prompt": idx.int(), pre + "f.z": z, pre + "f.eps": eps, pre + "f.t": t.int(),
                    pre + "f.loss": loss_fake.detach().reshape(1)})
        # ---- phase 2: the generator
        idx, z, eps, t = draw()
        c = embed(idx.tolist())
        xg = G(z, c)
        x_t = per(a_t, t) * xg + per(s_t, t) * eps
        yf = x0((x_t - per(s_t, t) * guided(fake, x_t, t.float(), c, kappa)) / per(a_t, t))
        yr = x0((x_t - per(s_t, t) * guided(teacher, x_t, t.float(), c, kappa)) / per(a_t, t))
        w = (xg - yr).abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-5).detach()
        loss_gen = ((yr - yf) * ((yr - xg) - alpha * (yr - yf)) / w).sum() / B
        loss_gen.backward()
        gen_grads = torch.cat([p.grad.flatten() for p in gen.parameters()])
        opt_g = torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.0, 0.999), eps=1e-8)
        opt_g.step()
        gen_after = torch.cat([p.detach().flatten() for p in gen.parameters()])
        out.update({pre + "g.prompt": idx.int(), pre + "g.z": z, pre + "g.eps": eps, pre + "g.t": t.int(),
                    pre + "g.loss": loss_gen.detach().reshape(1)})
        # the same fixed random sample of parameters (in diffusers' named_parameters order = sid's)
        n = fake_grads.numel()
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(case))[:n_sample]
        names = [k for k, _ in teacher.named_parameters()]
        out.update({pre + "pick": pick.int(), pre + "fake.grad": fake_grads[pick], pre + "fake.after": fake_after[pick],
                    pre + "gen.grad": gen_grads[pick], pre + "gen.after": gen_after[pick],
                    pre + "fake.grad_norm": fake_grads.norm().reshape(1), pre + "gen.grad_norm": gen_grads.norm().reshape(1)})
        # Adam's first step is lr * sign(g): where |g| is within rounding of 0 (float gradients here
        # differ from sid's by up to a few 1e-6 of the largest) rounding alone picks the sign, and a
        # flipped step changes the fake net the generator round sees. The parameters below 1e-5 of
        # the largest gradient and their values after the step, so the test can take PyTorch's.
        tiny = torch.nonzero(fake_grads.abs() <= 1e-5 * fake_grads.abs().max()).flatten()
        out.update({pre + "fake.tiny": tiny.int(), pre + "fake.tiny_after": fake_after[tiny]})
        print(f"case {case}: kappa {kappa} alpha {alpha}: loss_fake {loss_fake.item():.6g} loss_gen {loss_gen.item():.6g} "
              f"|g_fake| {fake_grads.norm():.4g} |g_gen| {gen_grads.norm():.4g}")
    out["kappa"] = torch.tensor([k for k, _ in cases])
    out["alpha"] = torch.tensor([a for _, a in cases])
    name = "golden_clip.safetensors" if clip else "golden.safetensors"
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(ROOT, "tests", "data", "sid", name),
              metadata={"param_names": ",".join(names)})


if __name__ == "__main__":
    main()
