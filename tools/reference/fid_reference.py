"""Writes the FID reference data that tests/test_inception.c reads, under tests/data/fid/:

  inception_keys.txt   every tensor name and shape of pytorch-fid's FID Inception-v3 state dict
                       (fid_inception_v3's architecture built without its download: "name [d0, d1]")
  inception_golden.safetensors
                       pool3 features [N, 2048] of that network (pytorch-fid's FIDInceptionA/C/E_1/E_2
                       blocks, eval mode) for hashed inputs: `features.S299` for 2 images of 299 px,
                       `features.S139` for 1 image of 139 px (the network without pytorch-fid's resize,
                       which the protocol does not use: its images are already 299 px)
  frechet_golden.safetensors
                       two fixed feature sets `a` [200, 24] and `b` [150, 24] (correlated, shifted),
                       and in the metadata `fid`, the distance as the protocol computes it
                       (scipy.linalg.sqrtm of the covariance product, real part), and `fid_singular`
                       for sets with fewer samples than features (`a_small` [10, 24], `b_small`
                       [12, 24]: singular covariances, where the protocol adds 1e-6 I when sqrtm is
                       not finite)

The weights are not stored: every tensor is filled from a hash of its name and the element index
(fnv1a64 of the name, splitmix64 of seed + (i + 1) * golden ratio, top 24 bits / 2^24 = u in
[0, 1), then conv weights (2u - 1) sqrt(6 / fan_in), bn.weight 0.8 + 0.4u, bn.running_var 0.5 + u,
bn.bias and bn.running_mean 0.2u - 0.1, all computed in double and rounded to float32), which the
C test reproduces bit for bit; the inputs likewise (255u, name "input.S299" / "input.S139"). The
network is fed (x - 128) / 128 as the protocol (clean-fid's TF-ported Inception) normalises.
Run: /root/sid-ref-venv/bin/python tools/reference/fid_reference.py   (dev-time only)
"""
import os
import sys

import numpy as np
import scipy.linalg
import torch
from pytorch_fid.inception import (FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2,
                                   _inception_v3)
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hashed import hashed_uniform  # noqa: E402





def hashed_tensor(name, shape):
    n = int(np.prod(shape))
    u = hashed_uniform(name, n)
    if name.endswith("conv.weight"):
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 * u - 1.0) * np.sqrt(6.0 / fan_in)
    elif name.endswith("bn.weight"):
        v = 0.8 + 0.4 * u
    elif name.endswith("bn.running_var"):
        v = 0.5 + u
    elif name.endswith("bn.bias") or name.endswith("bn.running_mean"):
        v = 0.2 * u - 0.1
    else:
        raise ValueError(name)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def fid_inception():
    """pytorch-fid's fid_inception_v3() without the weight download."""
    net = _inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net.eval()


def pool3(net, x):
    """pytorch-fid's InceptionV3 blocks 0-3 (its forward without resize and normalisation)."""
    mp = torch.nn.functional.max_pool2d
    x = net.Conv2d_2b_3x3(net.Conv2d_2a_3x3(net.Conv2d_1a_3x3(x)))
    x = mp(x, kernel_size=3, stride=2)
    x = mp(net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
    for name in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                 "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
        x = getattr(net, name)(x)
    return torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def protocol_fid(a, b):
    """clean-fid's frechet_distance on numpy float64 statistics (np.cov: divide by N - 1)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    out = os.path.join(root, "tests", "data", "fid")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    net = fid_inception()
    sd = net.state_dict()
    with open(os.path.join(out, "inception_keys.txt"), "w") as f:
        for k, v in sd.items():
            f.write(f"{k} [{', '.join(str(d) for d in v.shape)}]\n")
    filled = {k: hashed_tensor(k, tuple(v.shape)) for k, v in sd.items()
              if not k.endswith("num_batches_tracked") and not k.startswith("fc.")}
    missing, unexpected = net.load_state_dict(filled, strict=False)
    assert all(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in missing), missing
    assert not unexpected
    golden = {}
    with torch.no_grad():
        for S, N in [(299, 2), (139, 1)]:
            x = torch.from_numpy((255.0 * hashed_uniform(f"input.S{S}", N * 3 * S * S)).astype(np.float32))
            x = x.view(N, 3, S, S)
            golden[f"features.S{S}"] = pool3(net, (x - 128) / 128).contiguous()
            f = golden[f"features.S{S}"]
            print(f"S={S}: features mean {f.mean():.4f} max {f.abs().max():.4f}")

    rng = np.random.default_rng(20261203)
    mix = rng.standard_normal((24, 24)) / 5
    a = rng.standard_normal((200, 24)) @ (np.eye(24) + mix)
    b = rng.standard_normal((150, 24)) @ (np.eye(24) + mix.T) * 1.3 + 0.25
    a, b = a.astype(np.float32), b.astype(np.float32)
    a_small, b_small = a[:10], b[:12]
    frechet = {"a": torch.from_numpy(a), "b": torch.from_numpy(b),
               "a_small": torch.from_numpy(a_small), "b_small": torch.from_numpy(b_small)}
    meta = {"torch": torch.__version__, "scipy": scipy.__version__, "generator": "tools/reference/fid_reference.py"}
    save_file(golden, os.path.join(out, "inception_golden.safetensors"), metadata=meta)
    # the distances in full double precision, as metadata strings (safetensors readers here take no F64)
    meta["fid"] = repr(protocol_fid(a.astype(np.float64), b.astype(np.float64)))
    meta["fid_singular"] = repr(protocol_fid(a_small.astype(np.float64), b_small.astype(np.float64)))
    print("fid", meta["fid"], "fid_singular", meta["fid_singular"])
    save_file(frechet, os.path.join(out, "frechet_golden.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
