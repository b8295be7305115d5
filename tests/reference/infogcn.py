"""PyTorch reference of InfoGCN as its official `model/infogcn.py`, `model/modules.py` and
`model/ms_tcn.py` define it (/work/shared/spec/backbones.md §5), with its losses (`loss.py`,
`main.py`).

Input transform: per frame, x ← A_vector·x over the joints with A_vector = I − A_outwardᵏ, the
official matrix of `graph/ntu_rgb_d.py` / `graph/ucla.py` (A_outward is the binary matrix of the
`outward` links of InfoGCN's own skeleton tree, rooted at joint 2 on NTU). The engine applies
the k-th mode transform in its feeder, not in the model, so the parity fixture uses k = 8: no
joint lies 8 links away from the root (the trees are at most 7 deep), A_outward⁸ = 0 and the
transform is exactly the identity. Then Linear(3 → 64) per joint, plus the learnable positional
embedding (1, V, 64), then `data_bn`, a BatchNorm1d over M·V·64 channels.

Nine encoding blocks (64, 64, 64, 64→128 stride 2, 128, 128, 128→256 stride 2, 256, 256). The
graph unit (SA_GC) computes, per frame and head h, attention_h = softmax_j(q_i·k_j / √d) from
LayerNorm over the channels and one Linear C → 2·H·d (d = C/8, H = 3); multiplies it elementwise
by the learnable `shared_topology` (H, V, V); aggregates x with it, out[·, i] = Σ_j A[i, j]·x[·, j];
projects with conv_d[h]; sums the heads, then BN, + `down`, ReLU. The temporal unit is CTR-GCN's
MS-TCN (kernel 5, dilations 1 and 2, a max-pool branch and a 1×1 branch, no inner residual) with
a ReLU after the concatenation; the block adds its residual and applies another ReLU.

Head (variational information bottleneck): mean over T, V and M; ReLU(fc); fc_mu and fc_logvar;
in training z = μ + ε·min(exp(noise_ratio·logvar), 100), in evaluation z = μ; decoder(z). Here
ε is an argument of the forward, so that a caller can record it.

Departures from the official code, none of which changes a state-dict key or a float32 value:
- no einops (reshape and permute instead);
- `A_vector` (float64 officially, multiplied with float32 input under apex's casts) takes the
  input's dtype, and the attention's `.float()` cast is dropped, so that the model runs in
  float64;
- `z_prior` stays a plain attribute as officially (it is not in the state dict), made by
  `orthogonal_prior` with an optional generator.

It exists to produce the parity fixture of make_infogcn_fixture.py. Running this file prints the
parameter counts of NTU60, NTU120 and NW-UCLA, each counted on the model itself:

    python tests/reference/infogcn.py
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BASE_CHANNELS = 64
LATENT = 4 * BASE_CHANNELS
NUM_HEAD = 3
NOISE_RATIO = 0.5
Z_PRIOR_GAIN = 3
LAMBDA_MMD = 0.1
LAMBDA_Z_MEAN = 1e-4
SMOOTHING = 0.1
STD_MAX = 100.0
# Blocks l1…l9: (C_in, C_out, temporal stride).
BLOCKS = [
    (64, 64, 1),
    (64, 64, 1),
    (64, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 256, 1),
]

# The official `inward_ori_index` lists (1-based); `outward` links are their reverses. On NTU the
# pairs are (parent, child), on NW-UCLA (child, parent), so A_outward points child → parent on NTU
# and parent → child on NW-UCLA; the official code uses them as they are.
NTU_INWARD = [
    (2, 1), (2, 21), (21, 3), (3, 4),
    (21, 5), (5, 6), (6, 7), (7, 8), (8, 23), (23, 22),
    (21, 9), (9, 10), (10, 11), (11, 12), (12, 25), (25, 24),
    (1, 13), (13, 14), (14, 15), (15, 16),
    (1, 17), (17, 18), (18, 19), (19, 20),
]  # fmt: skip
UCLA_INWARD = [
    (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
]  # fmt: skip

# dataset → (classes, joints, persons, inward links)
DATASETS = {
    "ntu60": (60, 25, 2, NTU_INWARD),
    "ntu120": (120, 25, 2, NTU_INWARD),
    "ucla": (10, 20, 1, UCLA_INWARD),
}


def input_transform(inward, joints, k):
    """I − A_outwardᵏ, float64, as the official `get_A`."""
    a = np.zeros((joints, joints))
    for i, j in inward:
        # tools.get_adjacency_matrix(outward): A[edge] = 1 for each outward edge (j, i).
        a[j - 1, i - 1] = 1.0
    return torch.from_numpy(np.eye(joints) - np.linalg.matrix_power(a, k))


def orthogonal_prior(num_class, gain=Z_PRIOR_GAIN, generator=None):
    """The class prior of the MMD loss: (num_class, 256), orthogonal rows times `gain`."""
    prior = torch.empty(num_class, LATENT)
    nn.init.orthogonal_(prior, gain=gain, generator=generator)
    return prior


# ---------------------------------------------------------------------------------------------
# Model. Attribute names and registration order fix the state-dict keys and their order: a module
# lists its own parameters, then its buffers, then its children in registration order. The
# official initialisation is kept in the constructors.


def conv_init(conv):
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.constant_(conv.bias, 0)


def conv_branch_init(conv, branches):
    o, i, kh = conv.weight.shape[:3]
    nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / (o * i * kh * branches)))
    nn.init.constant_(conv.bias, 0)


def bn_init(bn, scale):
    nn.init.constant_(bn.weight, scale)
    nn.init.constant_(bn.bias, 0)


class UnitTCN(nn.Module):
    """The block residual where the shape changes: conv (k × 1, stride) then BN."""

    def __init__(self, c_in, c_out, kernel_size=1, stride=1):
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(c_in, c_out, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1))
        self.bn = nn.BatchNorm2d(c_out)
        conv_init(self.conv)
        bn_init(self.bn, 1)

    def forward(self, x):
        return self.bn(self.conv(x))


class SelfAttention(nn.Module):
    """Per-frame attention maps (B·T, H, V, V) from LayerNorm and one Linear to Q and K."""

    def __init__(self, c_in, hidden, heads):
        super().__init__()
        self.scale = hidden**-0.5
        self.to_qk = nn.Linear(c_in, 2 * hidden * heads)
        self.n_heads = heads
        self.ln = nn.LayerNorm(c_in)
        nn.init.normal_(self.to_qk.weight, 0, 1)

    def forward(self, x):
        n, _, t, v = x.shape
        y = self.to_qk(self.ln(x.permute(0, 2, 3, 1)))  # (N, T, V, 2·H·d)
        q, k = (u.reshape(n * t, v, self.n_heads, -1).permute(0, 2, 1, 3) for u in y.chunk(2, dim=-1))
        dots = (q @ k.transpose(-1, -2)) * self.scale  # (N·T, H, V, V)
        return dots.softmax(dim=-1)


class SA_GC(nn.Module):
    def __init__(self, c_in, c_out, topology):
        super().__init__()
        self.num_head = topology.shape[0]
        self.shared_topology = nn.Parameter(torch.from_numpy(topology.astype(np.float32)))
        self.conv_d = nn.ModuleList([nn.Conv2d(c_in, c_out, 1) for _ in range(self.num_head)])
        if c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        else:
            self.down = None
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1)
        bn_init(self.bn, 1e-6)
        for conv in self.conv_d:
            conv_branch_init(conv, self.num_head)
        self.attn = SelfAttention(c_in, c_in // 8, self.num_head)

    def forward(self, x):
        n, c, t, v = x.shape
        a = self.attn(x) * self.shared_topology.unsqueeze(0)
        feature = x.permute(0, 2, 3, 1).reshape(n * t, v, c)
        out = None
        for h in range(self.num_head):
            z = (a[:, h] @ feature).reshape(n, t, v, c).permute(0, 3, 1, 2)
            z = self.conv_d[h](z)
            out = z if out is None else z + out
        out = self.bn(out)
        out = out + (x if self.down is None else self.down(x))
        return self.relu(out)


class TemporalConv(nn.Module):
    def __init__(self, c_in, c_out, kernel_size, stride=1, dilation=1):
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(
            c_in, c_out, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1), dilation=(dilation, 1)
        )
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.conv(x))


class MultiScaleTemporalConv(nn.Module):
    """ms_tcn.py's MultiScale_TemporalConv with residual=False: four branches of C/4 channels,
    concatenated, then ReLU. Its own init is PyTorch's default."""

    def __init__(self, c_in, c_out, kernel_size=5, stride=1, dilations=(1, 2)):
        super().__init__()
        branches = len(dilations) + 2
        assert c_out % branches == 0
        bc = c_out // branches
        self.num_branches = branches
        self.branches = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(c_in, bc, 1),
                    nn.BatchNorm2d(bc),
                    nn.ReLU(),
                    TemporalConv(bc, bc, kernel_size, stride, dilation),
                )
                for dilation in dilations
            ]
        )
        self.branches.append(
            nn.Sequential(
                nn.Conv2d(c_in, bc, 1),
                nn.BatchNorm2d(bc),
                nn.ReLU(),
                nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)),
                nn.BatchNorm2d(bc),
            )
        )
        self.branches.append(nn.Sequential(nn.Conv2d(c_in, bc, 1, stride=(stride, 1)), nn.BatchNorm2d(bc)))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(torch.cat([branch(x) for branch in self.branches], dim=1))


class EncodingBlock(nn.Module):
    def __init__(self, c_in, c_out, topology, stride=1):
        super().__init__()
        self.agcn = SA_GC(c_in, c_out, topology)
        self.tcn = MultiScaleTemporalConv(c_out, c_out, kernel_size=5, stride=stride, dilations=(1, 2))
        self.relu = nn.ReLU()
        if c_in == c_out and stride == 1:
            self.residual = None
        else:
            self.residual = UnitTCN(c_in, c_out, kernel_size=1, stride=stride)

    def forward(self, x):
        res = x if self.residual is None else self.residual(x)
        return self.relu(self.tcn(self.agcn(x)) + res)


class InfoGCN(nn.Module):
    def __init__(
        self,
        num_class,
        num_point,
        num_person,
        inward,
        k,
        in_channels=3,
        num_head=NUM_HEAD,
        noise_ratio=NOISE_RATIO,
        gain=Z_PRIOR_GAIN,
    ):
        super().__init__()
        topology = np.stack([np.eye(num_point)] * num_head, axis=0)
        c = BASE_CHANNELS
        self.num_class = num_class
        self.num_point = num_point
        self.data_bn = nn.BatchNorm1d(num_person * c * num_point)
        self.noise_ratio = noise_ratio
        self.z_prior = orthogonal_prior(num_class, gain)
        self.A_vector = input_transform(inward, num_point, k)
        self.to_joint_embedding = nn.Linear(in_channels, c)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_point, c))
        for i, (c_in, c_out, stride) in enumerate(BLOCKS, start=1):
            setattr(self, f"l{i}", EncodingBlock(c_in, c_out, topology, stride))
        self.fc = nn.Linear(LATENT, LATENT)
        self.fc_mu = nn.Linear(LATENT, LATENT)
        self.fc_logvar = nn.Linear(LATENT, LATENT)
        self.decoder = nn.Linear(LATENT, num_class)
        relu_gain = nn.init.calculate_gain("relu")
        for linear in (self.fc, self.fc_mu, self.fc_logvar):
            nn.init.xavier_uniform_(linear.weight, gain=relu_gain)
        nn.init.normal_(self.decoder.weight, 0, math.sqrt(2.0 / num_class))
        bn_init(self.data_bn, 1)

    def latent_sample(self, mu, logvar, eps):
        if not self.training:
            return mu
        if eps is None:
            raise ValueError("a training-mode forward needs the latent noise eps (N, 256)")
        std = torch.clamp((logvar * self.noise_ratio).exp(), max=STD_MAX)
        return eps * std + mu

    def forward(self, x, eps=None):
        """x (N, C, T, V, M) → (logits (N, K), z (N, 256)); eps (N, 256) ~ N(0, 1) in training."""
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 2, 3, 1).reshape(n * m * t, v, c)
        x = self.A_vector.to(x) @ x
        x = self.to_joint_embedding(x) + self.pos_embedding[:, : self.num_point]
        x = x.reshape(n, m, t, v, -1).permute(0, 1, 3, 4, 2).reshape(n, -1, t)  # (N, M·V·C, T)
        x = self.data_bn(x)
        x = x.reshape(n, m, v, -1, t).permute(0, 1, 3, 4, 2).reshape(n * m, -1, t, v)
        for i in range(1, len(BLOCKS) + 1):
            x = getattr(self, f"l{i}")(x)
        x = x.reshape(n, m, x.shape[1], -1).mean(3).mean(1)
        x = F.relu(self.fc(x))
        z = self.latent_sample(self.fc_mu(x), self.fc_logvar(x), eps)
        return self.decoder(z), z


def build(dataset, k):
    """The model of one dataset: 'ntu60', 'ntu120' or 'ucla', with the k-th mode input transform."""
    num_class, joints, persons, inward = DATASETS[dataset]
    return InfoGCN(num_class, joints, persons, inward, k)


# ---------------------------------------------------------------------------------------------
# Losses (loss.py; the weights of main.py's sum, args.py's defaults).


def label_smoothing_cross_entropy(logits, y, smoothing=SMOOTHING):
    """Batch mean of (1 − s)·(−log p_y) + s·mean_c(−log p_c)."""
    logprobs = F.log_softmax(logits, dim=-1)
    nll = -logprobs.gather(dim=-1, index=y.unsqueeze(1)).squeeze(1)
    smooth = -logprobs.mean(dim=-1)
    return ((1.0 - smoothing) * nll + smoothing * smooth).mean()


def get_mmd_loss(z, z_prior, y, num_cls):
    """(MSE between the class means of z and their priors over the classes present, ‖mean_n z‖₂,
    the class means), as loss.py's get_mmd_loss. The official code also averages the absent
    classes (NaN) and then drops them; only present classes are averaged here."""
    present = [c for c in range(num_cls) if (y == c).any()]
    z_mean = torch.stack([z[y == c].mean(dim=0) for c in present])
    l2_z_mean = torch.linalg.norm(z.mean(dim=0), ord=2)
    mmd = F.mse_loss(z_mean, z_prior[present].to(z))
    return mmd, l2_z_mean, z_mean


def losses(logits, z, y, z_prior):
    """The training loss and its terms: total = ce + 0.1·mmd + 1e-4·‖mean z‖₂."""
    ce = label_smoothing_cross_entropy(logits, y)
    mmd, l2_z_mean, _ = get_mmd_loss(z, z_prior, y, logits.shape[1])
    total = ce + LAMBDA_MMD * mmd + LAMBDA_Z_MEAN * l2_z_mean
    return {"total": total, "ce": ce, "mmd": mmd, "l2_z_mean": l2_z_mean}


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    for dataset in DATASETS:
        print(f"infogcn {dataset}: {parameter_count(build(dataset, 1)):,} parameters")
