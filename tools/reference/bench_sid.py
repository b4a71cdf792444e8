"""The PyTorch side of bench/sid_vs_torch.sh: seconds per SiD-LSG iteration (fake update + generator
update, kappa 1.5 everywhere, batch B) on a teacher folder, as sid_reference.py computes it."""
import copy
import os
import sys
import time

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer


def main():
    teacher_dir, B = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(int(os.environ.get("SID_THREADS", os.cpu_count())))
    tok = CLIPTokenizer.from_pretrained(os.path.join(teacher_dir, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(teacher_dir, "text_encoder")).float().eval()
    teacher = UNet2DConditionModel.from_pretrained(os.path.join(teacher_dir, "unet")).float().eval()
    ab = DDPMScheduler.from_pretrained(os.path.join(teacher_dir, "scheduler")).alphas_cumprod.float()
    a_t, s_t = ab.sqrt(), (1 - ab).sqrt()
    for p in list(teacher.parameters()) + list(te.parameters()):
        p.requires_grad_(False)
    fake, gen = copy.deepcopy(teacher), copy.deepcopy(teacher)
    for p in list(fake.parameters()) + list(gen.parameters()):
        p.requires_grad_(True)
    opt_f = torch.optim.Adam(fake.parameters(), lr=1e-5, betas=(0.0, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-5, betas=(0.0, 0.999))
    ids = tok(["a photo of a sneaker"] * B, padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
    uids = tok([""] * B, padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        c, u = te(ids)[0], te(uids)[0]
    k, alpha, S = 1.5, 1.2, teacher.config.sample_size
    per = lambda v, t: v[t].view(-1, 1, 1, 1)

    def guided(net, x, t):
        o = net(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=torch.cat([u, c])).sample
        eu, ec = o.chunk(2)
        return eu + k * (ec - eu)

    def G(z):
        s, a = s_t[625], a_t[625]
        return (s * z - s * gen(s * z, torch.full((B,), 625.0), encoder_hidden_states=c).sample) / a

    def iteration():
        z, eps, t = torch.randn(B, 1, S, S), torch.randn(B, 1, S, S), torch.randint(20, 980, (B,))
        with torch.no_grad():
            xg = G(z)
        x_t = per(a_t, t) * xg + per(s_t, t) * eps
        loss = ((guided(fake, x_t, t.float()) - eps) ** 2).sum() / B
        opt_f.zero_grad(); loss.backward(); opt_f.step()
        for p in fake.parameters():
            p.requires_grad_(False)
        z, eps, t = torch.randn(B, 1, S, S), torch.randn(B, 1, S, S), torch.randint(20, 980, (B,))
        xg = G(z)
        x_t = per(a_t, t) * xg + per(s_t, t) * eps
        yf = (x_t - per(s_t, t) * guided(fake, x_t, t.float())) / per(a_t, t)
        yr = (x_t - per(s_t, t) * guided(teacher, x_t, t.float())) / per(a_t, t)
        w = (xg - yr).abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-5).detach()
        loss = ((yr - yf) * ((yr - xg) - alpha * (yr - yf)) / w).sum() / B
        opt_g.zero_grad(); loss.backward(); opt_g.step()
        for p in fake.parameters():
            p.requires_grad_(True)

    iteration()
    times = []
    for _ in range(4):  # the fastest of 4 timed iterations: noise on a shared machine only adds time
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    print(f"pytorch sid iteration batch {B:3d}: {min(times):.3f} s/iter ({torch.get_num_threads()} threads, cpu {torch.backends.cpu.get_cpu_capability().lower()})")


if __name__ == "__main__":
    main()
