"""PyTorch reference of ST-GCN as CTR-GCN's `model/baseline.py` defines it (the variant whose
parameter count matches the SF-Head paper's ST-GCN row; /work/shared/spec/backbones.md §3).

The same ten blocks and widths as CTR-GCN (ctrgcn.BLOCKS), but a graph unit without any skeleton
prior: each of three subsets has a learnable V×V matrix PA[i], initialised to the identity and
L2-normalised per column (over the input joints, + 1e-4) at every forward. The unit aggregates
first, at C_in (x viewed as (B, C_in·T, V) times PA[i]), then projects with a 1×1 conv per subset;
the subsets are summed, batch-normalised, added to `down` and passed through ReLU. The temporal
unit is one 5×1 conv with the block's stride, then BN.

It exists to produce the parity fixture of make_stgcn_fixture.py. Running this file checks the
state-dict layout and the parameter counts:

    python tests/reference/stgcn.py
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ctrgcn import BLOCKS

SUBSETS = 3
# Added to each column norm of PA, as in the official unit.
NORM_EPS = 1e-4
TEMPORAL_KERNEL = 5

# ---------------------------------------------------------------------------------------------
# Model. Attribute names and registration order fix the state-dict keys and their order: a module
# lists its own parameters, then its buffers, then its children in registration order.


def column_normalised(pa):
    """(S, V, V) → each column divided by its L2 norm over the rows (the input joints) + 1e-4."""
    return pa / (pa.norm(dim=1, keepdim=True) + NORM_EPS)


class GraphUnit(nn.Module):
    """unit_gcn: per subset aggregate with the column-normalised PA[i], then conv_d[i]; sum, BN,
    + down, ReLU. Columns of PA are outputs: out[·, w] = Σ_v x[·, v] · A[v, w]."""

    def __init__(self, c_in, c_out, joints):
        super().__init__()
        self.PA = nn.Parameter(torch.eye(joints).repeat(SUBSETS, 1, 1))
        self.conv_d = nn.ModuleList([nn.Conv2d(c_in, c_out, 1) for _ in range(SUBSETS)])
        if c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        else:
            self.down = None
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        b, c, t, v = x.shape
        a = column_normalised(self.PA)
        flat = x.reshape(b, c * t, v)
        z = None
        for i, conv in enumerate(self.conv_d):
            zi = conv(torch.matmul(flat, a[i]).view(b, c, t, v))
            z = zi if z is None else zi + z
        shortcut = x if self.down is None else self.down(x)
        return F.relu(self.bn(z) + shortcut)


class TemporalUnit(nn.Module):
    """unit_tcn: a k×1 convolution along T (stride s, pad (k−1)/2), then BN. With k = 1 it is
    also the block residual where the shape changes."""

    def __init__(self, c_in, c_out, stride, kernel=TEMPORAL_KERNEL):
        super().__init__()
        pad = (kernel - 1) // 2
        self.conv = nn.Conv2d(c_in, c_out, (kernel, 1), padding=(pad, 0), stride=(stride, 1))
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(nn.Module):
    """out = ReLU(TCN(GCN(x)) + residual(x)); the residual is 0 in l1, the identity where shape
    and stride allow, otherwise a strided 1×1 unit_tcn."""

    def __init__(self, c_in, c_out, stride, joints, has_residual):
        super().__init__()
        self.gcn1 = GraphUnit(c_in, c_out, joints)
        self.tcn1 = TemporalUnit(c_out, c_out, stride)
        self.has_residual = has_residual
        if has_residual and (c_in != c_out or stride != 1):
            self.residual = TemporalUnit(c_in, c_out, stride, kernel=1)
        else:
            self.residual = None

    def forward(self, x):
        y = self.tcn1(self.gcn1(x))
        if self.residual is not None:
            y = y + self.residual(x)
        elif self.has_residual:
            y = y + x
        return F.relu(y)


class STGCN(nn.Module):
    """Input (N, C=3, T, V, M); logits (N, K). data_bn, the blocks and the head are CTR-GCN's."""

    def __init__(self, num_class, joints, num_person, in_channels=3):
        super().__init__()
        self.data_bn = nn.BatchNorm1d(num_person * joints * in_channels)
        for i, (c_in, c_out, stride) in enumerate(BLOCKS, start=1):
            setattr(self, f"l{i}", Block(c_in, c_out, stride, joints, has_residual=i != 1))
        self.fc = nn.Linear(BLOCKS[-1][1], num_class)

    def forward(self, x):
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)  # channel = m·V·C + v·C + c
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)  # row n·M + m
        for i in range(1, len(BLOCKS) + 1):
            x = getattr(self, f"l{i}")(x)
        feat = x.reshape(n, m, x.shape[1], -1).mean(dim=3).mean(dim=1)
        return self.fc(feat)


DATASETS = {"ntu60": (60, 25, 2), "ntu120": (120, 25, 2), "ucla": (10, 20, 1)}


def build(dataset):
    """The model of one dataset: 'ntu60', 'ntu120' or 'ucla'."""
    num_class, joints, num_person = DATASETS[dataset]
    return STGCN(num_class, joints, num_person)


# ---------------------------------------------------------------------------------------------
# The official initialisation, for the self-check's forward (the fixture uses its own formula,
# make_stgcn_fixture.py):
# - every Conv2d: N(0, √(2 / fan_out)), fan_out = C_out·kh·kw, bias 0; conv_d[i] instead
#   N(0, √(2 / (C_out·C_in·kh·3))), one third of the variance per subset;
# - BN γ = 1, β = 0, except γ = 1e-6 for `gcn1.bn`;
# - fc.weight N(0, √(2 / K)), fc.bias PyTorch's default U(−1/√256, 1/√256); PA = I.


def initialise(model, gen):
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                c_out, c_in, kh, kw = module.weight.shape
                if ".conv_d." in name:
                    std = math.sqrt(2.0 / (c_out * c_in * kh * SUBSETS))
                else:
                    std = math.sqrt(2.0 / (c_out * kh * kw))
                module.weight.normal_(0.0, std, generator=gen)
                module.bias.zero_()
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.bias.zero_()
                module.weight.fill_(1e-6 if name.endswith("gcn1.bn") else 1.0)
        k = model.fc.weight.shape[0]
        model.fc.weight.normal_(0.0, math.sqrt(2.0 / k), generator=gen)
        bound = 1.0 / math.sqrt(model.fc.weight.shape[1])
        model.fc.bias.uniform_(-bound, bound, generator=gen)


# ---------------------------------------------------------------------------------------------


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def expected_keys(num_class, joints, num_person):
    """The state-dict keys and shapes baseline.py's Model has, in order, written out by rule."""
    keys = []

    def bn(prefix, c):
        keys.extend(
            [
                (f"{prefix}.weight", (c,)),
                (f"{prefix}.bias", (c,)),
                (f"{prefix}.running_mean", (c,)),
                (f"{prefix}.running_var", (c,)),
                (f"{prefix}.num_batches_tracked", ()),
            ]
        )

    def conv(prefix, c_out, c_in, k):
        keys.extend([(f"{prefix}.weight", (c_out, c_in, k, 1)), (f"{prefix}.bias", (c_out,))])

    bn("data_bn", num_person * joints * 3)
    for i, (c_in, c_out, stride) in enumerate(BLOCKS, start=1):
        keys.append((f"l{i}.gcn1.PA", (SUBSETS, joints, joints)))
        for s in range(SUBSETS):
            conv(f"l{i}.gcn1.conv_d.{s}", c_out, c_in, 1)
        if c_in != c_out:
            conv(f"l{i}.gcn1.down.0", c_out, c_in, 1)
            bn(f"l{i}.gcn1.down.1", c_out)
        bn(f"l{i}.gcn1.bn", c_out)
        conv(f"l{i}.tcn1.conv", c_out, c_out, TEMPORAL_KERNEL)
        bn(f"l{i}.tcn1.bn", c_out)
        if i != 1 and (c_in != c_out or stride != 1):
            conv(f"l{i}.residual.conv", c_out, c_in, 1)
            bn(f"l{i}.residual.bn", c_out)
    keys.extend([("fc.weight", (num_class, BLOCKS[-1][1])), ("fc.bias", (num_class,))])
    return keys


def self_check():
    counts = {}
    gen = torch.Generator().manual_seed(0)
    for dataset, (num_class, joints, num_person) in DATASETS.items():
        model = build(dataset)
        want = expected_keys(num_class, joints, num_person)
        got = [(k, tuple(t.shape)) for k, t in model.state_dict().items()]
        assert got == want, f"{dataset}: state dict differs from baseline.py's layout"
        counts[dataset] = parameter_count(model)
        initialise(model, gen)
        model.train()
        logits = model(torch.randn(2, 3, 16, joints, num_person, generator=gen))
        assert logits.shape == (2, num_class)
    # NTU120 is the paper's count; NTU60 has 60 × 257 fewer fc values, NW-UCLA (V = 20, M = 1,
    # K = 10) 90 × 2 fewer data_bn values, 10 × 3 × (625 − 400) fewer PA values and 110 × 257 fewer
    # fc values.
    assert counts == {"ntu60": 2_092_902, "ntu120": 2_108_322, "ucla": 2_073_122}, counts
    return counts


if __name__ == "__main__":
    for name, count in self_check().items():
        print(f"{name}: {count:,} parameters")
