"""Writes tests/data/diffusion/golden.safetensors, the reference data of tests/test_diffusion.c
(src/diffusion/schedule.c, src/diffusion/ddim.c). Dev-time only:

    /root/sid-ref-venv/bin/python tools/reference/ddim_reference.py [--clip-only]

(--clip-only writes clip.safetensors alone: golden.safetensors's sqrt_ab depends on the wheel's
sqrt, MKL or not, so regenerating it with another PyTorch build changes it.)

Everything comes from diffusers' own classes with SD's schedule (beta_start 0.00085, beta_end
0.012, "scaled_linear", 1000 steps), in float32 on the CPU:

  betas, alphas_cumprod [1000]    DDPMScheduler(...).betas / .alphas_cumprod
  sqrt_ab, sqrt_1m_ab [1000]      alphas_cumprod ** 0.5 and (1 - alphas_cumprod) ** 0.5 as PyTorch's CPU
                                  kernels compute them: with MKL (the PyPI wheels), 182 of SD's 1000
                                  sqrt(ab) are 1 ulp off the correctly rounded value that sid (and
                                  PyTorch on CUDA) computes; the C test bounds that difference
  noise/x0, noise/eps [4,1,3,5]   random inputs; noise/t [4] per-sample timesteps (0, 20, 625, 999)
  noise/xt                        DDPMScheduler.add_noise(x0, eps, t)
  noise/v                         DDPMScheduler.get_velocity(x0, eps, t)
  ts/<spacing>_o<offset>/n<n>     DDIMScheduler(timestep_spacing, steps_offset).set_timesteps(n).timesteps,
                                  for n in TS_COUNTS (diffusers' own length: for some n "trailing"
                                  returns n + 1 timesteps ending in -1, which the C test knows about)
  run/<name>/ts [n]               the timesteps of one DDIM sampling run, eta = 0, clip_sample False
  run/<name>/x  [n+1, 2,1,4,4]    the sample entering each step, then the final sample
  run/<name>/out [n, 2,1,4,4]     the model output used at each step
  run/<name>/x0 [n, 2,1,4,4]      step(...).pred_original_sample at each step
  run/<name>/coef [n, 4]          the step's coefficients as diffusers' step() forms them (with
                                  PyTorch's sqrt): alpha_prod_t**0.5, beta_prod_t**0.5,
                                  alpha_prod_t_prev**0.5, (1 - alpha_prod_t_prev - std_dev_t**2)**0.5;
                                  fed to sid_ddim_step_coeffs they must give x and x0 bit for bit

The "model" of the runs is an arbitrary nonlinear function of (x, t); the C test does not
recompute it but replays `out`, so only the scheduler arithmetic is compared. Every tensor is
float32 (timesteps included: they are small integers, exact in float32).

It also writes tests/data/diffusion/clip.safetensors: DDIMScheduler with clip_sample=True (the
class default, off in SD's configs), on inputs whose x0 predictions reach far outside the clip
range so that most values are clamped:

  step/<name>/x, out [2,1,4,4]    x_t (3 * randn) and a model output (2 * randn)
  step/<name>/x0, prev            step(out, t, x).pred_original_sample / .prev_sample
  step/<name>/meta [5]            t, prev timestep, clip_sample_range, set_alpha_to_one,
                                  prediction (0 epsilon, 1 v_prediction, 2 sample)
  step/<name>/coef [4]            the step's four scalars as step() forms them (see run/ above)
  run/<name>/...                  a whole clipped run, laid out as in golden.safetensors
  clamp/x, clamp/w [16]           values around the range 0.75 (bounds, +-inf, NaN) and weights
  clamp/y, clamp/grad             x.clamp(-0.75, 0.75) and the gradient of (w * y).sum() for x
"""
import os
import sys

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "diffusion", "golden.safetensors")
OUT_CLIP = os.path.join(ROOT, "tests", "data", "diffusion", "clip.safetensors")
SD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
# 16: a tie (62.5-step arange hits .5) that np.round breaks to even; 61, 103: "trailing" yields n + 1
TS_COUNTS = [1, 2, 3, 4, 7, 10, 16, 25, 50, 61, 103, 333, 999]
# name: (spacing, steps_offset, set_alpha_to_one, prediction_type, steps)
RUNS = {
    "sd_leading_10": ("leading", 1, False, "epsilon", 10),
    "sd_leading_25": ("leading", 1, False, "epsilon", 25),
    "sd_leading_50": ("leading", 1, False, "epsilon", 50),
    "trailing_10": ("trailing", 0, True, "epsilon", 10),
    "trailing_25": ("trailing", 0, True, "epsilon", 25),
    "trailing_50": ("trailing", 0, True, "epsilon", 50),
    "trailing_3": ("trailing", 0, True, "epsilon", 3),  # 1000 // 3 steps back while the grid is 333.3 apart
    "linspace_7": ("linspace", 0, False, "epsilon", 7),
    "v_trailing_10": ("trailing", 0, False, "v_prediction", 10),
}


# name: (spacing, steps_offset, set_alpha_to_one, prediction_type, steps, step index, clip_sample_range)
CLIP_STEPS = {
    "eps_t999": ("trailing", 0, True, "epsilon", 10, 0, 1.0),      # x0 = (x - 0.998 eps) / 0.068: huge
    "eps_mid": ("leading", 1, False, "epsilon", 10, 5, 1.0),       # t = 401
    "eps_last": ("leading", 1, False, "epsilon", 10, 9, 1.0),      # t = 1 -> final alpha ab[0]
    "eps_last_one": ("trailing", 0, True, "epsilon", 10, 9, 1.0),  # t = 99 -> final alpha 1
    "eps_range_half": ("trailing", 0, True, "epsilon", 25, 12, 0.5),
    "v_mid": ("trailing", 0, True, "v_prediction", 10, 4, 1.0),
    "sample_mid": ("trailing", 0, True, "sample", 10, 4, 1.0),     # eps from the unclamped x0
}
PRED_CODE = {"epsilon": 0, "v_prediction": 1, "sample": 2}
CLIP_RUNS = {
    "clip_trailing_10": ("trailing", 0, True, "epsilon", 10, 1.0),
    "clip_sd_leading_25": ("leading", 1, False, "epsilon", 25, 1.0),
    "clip_v_trailing_10": ("trailing", 0, True, "v_prediction", 10, 1.0),
}


def model(x, t):
    return torch.tanh(1.3 * x) * 0.8 + 0.05 * torch.sin(x * 3.0 + t / 97.0)


def step_coefficients(s, t):
    """The four scalars of DDIMScheduler.step (eta = 0), written as step() writes them."""
    prev = t - s.config.num_train_timesteps // s.num_inference_steps
    a_t = s.alphas_cumprod[t]
    a_prev = s.alphas_cumprod[prev] if prev >= 0 else s.final_alpha_cumprod
    b_t = 1 - a_t
    std = 0.0 * s._get_variance(t, prev) ** 0.5
    return [float(a_t**0.5), float(b_t**0.5), float(a_prev**0.5), float((1 - a_prev - std**2) ** 0.5)]


def clip_reference():
    torch.manual_seed(4321)
    g = {}
    for name, (spacing, offset, one, pred, n, k, rng) in CLIP_STEPS.items():
        s = DDIMScheduler(**SD, timestep_spacing=spacing, steps_offset=offset, set_alpha_to_one=one,
                          prediction_type=pred, clip_sample=True, clip_sample_range=rng)
        s.set_timesteps(n)
        ts = s.timesteps[k]
        x = 3.0 * torch.randn(2, 1, 4, 4)
        out = 2.0 * torch.randn(2, 1, 4, 4)
        r = s.step(out, ts, x, eta=0.0)
        prev = int(ts) - s.config.num_train_timesteps // s.num_inference_steps
        g[f"step/{name}/x"], g[f"step/{name}/out"] = x, out
        g[f"step/{name}/x0"], g[f"step/{name}/prev"] = r.pred_original_sample, r.prev_sample
        g[f"step/{name}/meta"] = torch.tensor([float(ts), prev, rng, float(one), PRED_CODE[pred]])
        g[f"step/{name}/coef"] = torch.tensor(step_coefficients(s, int(ts)), dtype=torch.float32)
    x_init = 1.5 * torch.randn(2, 1, 4, 4)
    for name, (spacing, offset, one, pred, n, rng) in CLIP_RUNS.items():
        s = DDIMScheduler(**SD, timestep_spacing=spacing, steps_offset=offset, set_alpha_to_one=one,
                          prediction_type=pred, clip_sample=True, clip_sample_range=rng)
        s.set_timesteps(n)
        x = x_init.clone()
        xs, outs, x0s, coefs = [x], [], [], []
        for ts in s.timesteps:
            out = 2.0 * model(x, float(ts))  # large enough that early x0 predictions clip
            r = s.step(out, ts, x, eta=0.0)
            x = r.prev_sample
            xs.append(x)
            outs.append(out)
            x0s.append(r.pred_original_sample)
            coefs.append(step_coefficients(s, int(ts)))
        g[f"run/{name}/ts"] = s.timesteps.float()
        g[f"run/{name}/x"] = torch.stack(xs)
        g[f"run/{name}/out"] = torch.stack(outs)
        g[f"run/{name}/x0"] = torch.stack(x0s)
        g[f"run/{name}/coef"] = torch.tensor(coefs, dtype=torch.float32)
    # torch.clamp's forward and backward at the edges: the bounds themselves pass the gradient
    x = torch.tensor([-2.0, -0.75, -0.7499999, 0.0, 0.5, 0.75, 0.7500001, 3.0, float("inf"), float("-inf"),
                      float("nan"), -1e30, 1e-30, -0.25, 0.74, -0.76], requires_grad=True)
    w = torch.randn(16)
    y = x.clamp(-0.75, 0.75)
    (w * y).sum().backward()
    g["clamp/x"], g["clamp/w"], g["clamp/y"], g["clamp/grad"] = x.detach(), w, y.detach(), x.grad
    save_file({k: v.contiguous().float() for k, v in g.items()}, OUT_CLIP)
    print(f"wrote {OUT_CLIP}: {len(g)} tensors")
    for name in CLIP_STEPS:
        x0 = g[f"step/{name}/x0"]
        rng = float(g[f"step/{name}/meta"][2])
        print(f"  step {name}: {int((x0.abs() == rng).sum())} of {x0.numel()} x0 values at the clip bound")
    for name in CLIP_RUNS:
        x0 = g[f"run/{name}/x0"]
        print(f"  run {name}: {int((x0.abs() == 1.0).sum())} of {x0.numel()} x0 values at the clip bound")


def main():
    clip_reference()
    if "--clip-only" in sys.argv[1:]:
        return
    torch.manual_seed(1234)
    g = {}
    ddpm = DDPMScheduler(**SD, clip_sample=False)
    g["betas"] = ddpm.betas.clone()
    g["alphas_cumprod"] = ddpm.alphas_cumprod.clone()
    g["sqrt_ab"] = ddpm.alphas_cumprod ** 0.5
    g["sqrt_1m_ab"] = (1 - ddpm.alphas_cumprod) ** 0.5

    x0 = torch.randn(4, 1, 3, 5)
    eps = torch.randn(4, 1, 3, 5)
    t = torch.tensor([0, 20, 625, 999], dtype=torch.long)
    g["noise/x0"], g["noise/eps"], g["noise/t"] = x0, eps, t.float()
    g["noise/xt"] = ddpm.add_noise(x0, eps, t)
    g["noise/v"] = ddpm.get_velocity(x0, eps, t)

    for spacing, offset in (("leading", 1), ("leading", 0), ("trailing", 0), ("linspace", 0)):
        for n in TS_COUNTS:
            s = DDIMScheduler(**SD, timestep_spacing=spacing, steps_offset=offset)
            s.set_timesteps(n)
            g[f"ts/{spacing}_o{offset}/n{n}"] = s.timesteps.float()

    x_init = torch.randn(2, 1, 4, 4)
    for name, (spacing, offset, one, pred, n) in RUNS.items():
        s = DDIMScheduler(**SD, timestep_spacing=spacing, steps_offset=offset, set_alpha_to_one=one,
                          prediction_type=pred, clip_sample=False)
        s.set_timesteps(n)
        x = x_init.clone()
        xs, outs, x0s, coefs = [x], [], [], []
        for ts in s.timesteps:
            out = model(x, float(ts))
            r = s.step(out, ts, x, eta=0.0)
            x = r.prev_sample
            xs.append(x)
            outs.append(out)
            x0s.append(r.pred_original_sample)
            coefs.append(step_coefficients(s, int(ts)))
        g[f"run/{name}/ts"] = s.timesteps.float()
        g[f"run/{name}/x"] = torch.stack(xs)
        g[f"run/{name}/out"] = torch.stack(outs)
        g[f"run/{name}/x0"] = torch.stack(x0s)
        g[f"run/{name}/coef"] = torch.tensor(coefs, dtype=torch.float32)

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file({k: v.contiguous().float() for k, v in g.items()}, OUT)
    ac = g["alphas_cumprod"]
    print(f"wrote {OUT}: {len(g)} tensors")
    exact = torch.sqrt(ac.double()).float()
    print("PyTorch CPU sqrt(ab) != correctly rounded:", int((g["sqrt_ab"] != exact).sum()), "of 1000")
    print("alphas_cumprod[0, 499, 999] =", ", ".join(repr(float(ac[i])) for i in (0, 499, 999)))
    for n in (61, 103):
        ts = g[f"ts/trailing_o0/n{n}"]
        print(f"trailing n={n}: {len(ts)} timesteps, last {int(ts[-1])}")


if __name__ == "__main__":
    main()
