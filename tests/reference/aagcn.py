"""PyTorch reference of MS-AAGCN as 2s-AGCN's `model/aagcn.py` defines it with adaptive=True and
attention=True (the variant whose parameter count matches the SF-Head paper's 2s-AGCN row;
/work/shared/spec/backbones.md §4).

The same ten blocks and widths as CTR-GCN (ctrgcn.BLOCKS). The graph unit, per subset i:
θ = conv_a[i](x) and φ = conv_b[i](x) (1×1, C_in → C_out/4), both read as (B, K, V) with
K = (C_out/4)·T; S = tanh(θᵀφ / K), a (B, V, V) matrix; the adjacency PA[i] + α·S (PA learnable,
from the skeleton's three spatial subsets; α one scalar for all subsets) aggregates x viewed as
(B, C_in·T, V); conv_d[i] projects the result. The subsets are summed, batch-normalised, added
to `down` and passed through ReLU; then three gates rescale y ← y·g + y in turn: spatial
(mean over T, Conv1d C → 1 with kernel V (V − 1 if V is even) along the joints, sigmoid),
temporal (mean over V, Conv1d C → 1 with kernel 9 along T, sigmoid) and channel (mean over T
and V, Linear C → C/2, ReLU, Linear C/2 → C, sigmoid). The temporal unit is one 9×1 conv with
the block's stride, then BN.

Plain 2s-AGCN (`model/agcn.py`, `build(dataset, plain=True)`) has the same temporal unit and a
graph unit without attention and without α: its adjacency is A[i] + PA[i] + softmax over the rows
(dim −2) of θᵀφ / K, with A the fixed spatial subsets and PA learnable (officially from 1e-6).

It exists to produce the parity fixture of make_aagcn_fixture.py. Running this file checks the
state-dict layout and the parameter counts:

    python tests/reference/aagcn.py
"""

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ctrgcn import BLOCKS, load_topology, spatial_adjacency

SUBSETS = 3
EMBEDDING_DIVISOR = 4
TEMPORAL_KERNEL = 9
SQUEEZE = 2


def joint_kernel(joints):
    """An odd kernel along the joints that keeps their number."""
    return joints - 1 if joints % 2 == 0 else joints


# ---------------------------------------------------------------------------------------------
# Model. Attribute names and registration order fix the state-dict keys and their order: a module
# lists its own parameters, then its buffers, then its children in registration order.


class GraphUnit(nn.Module):
    """unit_gcn with the adaptive graph and the STC attention. Columns of the adjacency are
    outputs: out[·, w] = Σ_u x[·, u] · A[u, w]."""

    def __init__(self, c_in, c_out, adjacency):
        super().__init__()
        joints = adjacency.shape[-1]
        inter = c_out // EMBEDDING_DIVISOR
        self.conv_d = nn.ModuleList([nn.Conv2d(c_in, c_out, 1) for _ in range(SUBSETS)])
        self.PA = nn.Parameter(adjacency.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.conv_a = nn.ModuleList([nn.Conv2d(c_in, inter, 1) for _ in range(SUBSETS)])
        self.conv_b = nn.ModuleList([nn.Conv2d(c_in, inter, 1) for _ in range(SUBSETS)])
        self.conv_ta = nn.Conv1d(c_out, 1, TEMPORAL_KERNEL, padding=TEMPORAL_KERNEL // 2)
        k = joint_kernel(joints)
        self.conv_sa = nn.Conv1d(c_out, 1, k, padding=(k - 1) // 2)
        self.fc1c = nn.Linear(c_out, c_out // SQUEEZE)
        self.fc2c = nn.Linear(c_out // SQUEEZE, c_out)
        if c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        else:
            self.down = None
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        b, c, t, v = x.shape
        flat = x.reshape(b, c * t, v)
        z = None
        for i in range(SUBSETS):
            theta = self.conv_a[i](x).permute(0, 3, 1, 2).reshape(b, v, -1)  # (B, V, K)
            phi = self.conv_b[i](x).reshape(b, -1, v)  # (B, K, V)
            s = torch.tanh(torch.matmul(theta, phi) / theta.shape[-1])
            a = self.PA[i] + s * self.alpha
            zi = self.conv_d[i](torch.matmul(flat, a).view(b, c, t, v))
            z = zi if z is None else zi + z
        shortcut = x if self.down is None else self.down(x)
        y = F.relu(self.bn(z) + shortcut)
        gate = torch.sigmoid(self.conv_sa(y.mean(-2)))  # (B, 1, V)
        y = y * gate.unsqueeze(-2) + y
        gate = torch.sigmoid(self.conv_ta(y.mean(-1)))  # (B, 1, T)
        y = y * gate.unsqueeze(-1) + y
        gate = torch.sigmoid(self.fc2c(F.relu(self.fc1c(y.mean(-1).mean(-1)))))  # (B, C)
        return y * gate.unsqueeze(-1).unsqueeze(-1) + y


class PlainGraphUnit(nn.Module):
    """agcn.py's unit_gcn: the adjacency A[i] + PA[i] + softmax_u(θᵀφ / K); no attention."""

    def __init__(self, c_in, c_out, adjacency):
        super().__init__()
        inter = c_out // EMBEDDING_DIVISOR
        self.PA = nn.Parameter(torch.full_like(adjacency, 1e-6))
        self.register_buffer("fixed", adjacency.clone(), persistent=False)
        self.conv_a = nn.ModuleList([nn.Conv2d(c_in, inter, 1) for _ in range(SUBSETS)])
        self.conv_b = nn.ModuleList([nn.Conv2d(c_in, inter, 1) for _ in range(SUBSETS)])
        self.conv_d = nn.ModuleList([nn.Conv2d(c_in, c_out, 1) for _ in range(SUBSETS)])
        if c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        else:
            self.down = None
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        b, c, t, v = x.shape
        adjacency = self.fixed + self.PA
        flat = x.reshape(b, c * t, v)
        z = None
        for i in range(SUBSETS):
            theta = self.conv_a[i](x).permute(0, 3, 1, 2).reshape(b, v, -1)  # (B, V, K)
            phi = self.conv_b[i](x).reshape(b, -1, v)  # (B, K, V)
            s = torch.softmax(torch.matmul(theta, phi) / theta.shape[-1], dim=-2)
            zi = self.conv_d[i](torch.matmul(flat, s + adjacency[i]).view(b, c, t, v))
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

    def __init__(self, c_in, c_out, stride, adjacency, has_residual, plain=False):
        super().__init__()
        self.gcn1 = (PlainGraphUnit if plain else GraphUnit)(c_in, c_out, adjacency)
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


class AAGCN(nn.Module):
    """Input (N, C=3, T, V, M); logits (N, K). data_bn, the blocks and the head are CTR-GCN's."""

    def __init__(self, num_class, adjacency, num_person, in_channels=3, plain=False):
        super().__init__()
        joints = adjacency.shape[-1]
        self.data_bn = nn.BatchNorm1d(num_person * joints * in_channels)
        for i, (c_in, c_out, stride) in enumerate(BLOCKS, start=1):
            block = Block(c_in, c_out, stride, adjacency, has_residual=i != 1, plain=plain)
            setattr(self, f"l{i}", block)
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


DATASETS = {"ntu60": (60, "ntu25", 2), "ntu120": (120, "ntu25", 2), "ucla": (10, "ucla20", 1)}


def build(dataset, plain=False):
    """The model of one dataset: 'ntu60', 'ntu120' or 'ucla'; plain 2s-AGCN with `plain`."""
    num_class, skeleton, num_person = DATASETS[dataset]
    adjacency = torch.from_numpy(spatial_adjacency(load_topology(skeleton)))
    return AAGCN(num_class, adjacency, num_person, plain=plain)


# ---------------------------------------------------------------------------------------------
# The official initialisation, for the self-check's forward (the fixture uses its own formula,
# make_aagcn_fixture.py):
# - every Conv2d: N(0, √(2 / fan_out)), fan_out = C_out·kh·kw, bias 0; conv_d[i] instead
#   N(0, √(2 / (C_out·C_in·kh·3))), one third of the variance per subset;
# - conv_sa xavier_normal (fan_in C·k, fan_out k), conv_ta zero, fc1c kaiming_normal (fan in),
#   fc2c zero, their biases zero; α = 0, PA the spatial subsets;
# - BN γ = 1, β = 0, except γ = 1e-6 for `gcn1.bn`;
# - fc.weight N(0, √(2 / K)), fc.bias PyTorch's default U(−1/√256, 1/√256).


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
            elif isinstance(module, PlainGraphUnit):
                module.PA.fill_(1e-6)
            elif isinstance(module, GraphUnit):
                c_out, c, k = module.conv_sa.weight.shape
                std = math.sqrt(2.0 / (c * k + c_out * k))
                module.conv_sa.weight.normal_(0.0, std, generator=gen)
                module.fc1c.weight.normal_(0.0, math.sqrt(2.0 / c), generator=gen)
                for layer in (module.conv_sa, module.fc1c):
                    layer.bias.zero_()
                for layer in (module.conv_ta, module.fc2c):
                    layer.weight.zero_()
                    layer.bias.zero_()
        k = model.fc.weight.shape[0]
        model.fc.weight.normal_(0.0, math.sqrt(2.0 / k), generator=gen)
        bound = 1.0 / math.sqrt(model.fc.weight.shape[1])
        model.fc.bias.uniform_(-bound, bound, generator=gen)


# ---------------------------------------------------------------------------------------------


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def expected_keys(num_class, joints, num_person, plain=False):
    """The state-dict keys and shapes aagcn.py's (agcn.py's with `plain`) Model has, in order,
    written out by rule."""
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

    def linear(prefix, c_out, c_in, kernel=None):
        shape = (c_out, c_in) if kernel is None else (c_out, c_in, kernel)
        keys.extend([(f"{prefix}.weight", shape), (f"{prefix}.bias", (c_out,))])

    bn("data_bn", num_person * joints * 3)
    for i, (c_in, c_out, stride) in enumerate(BLOCKS, start=1):
        unit = f"l{i}.gcn1"
        keys.append((f"{unit}.PA", (SUBSETS, joints, joints)))
        if plain:
            convs = (("conv_a", c_out // 4), ("conv_b", c_out // 4), ("conv_d", c_out))
        else:
            keys.append((f"{unit}.alpha", (1,)))
            convs = (("conv_d", c_out), ("conv_a", c_out // 4), ("conv_b", c_out // 4))
        for name, width in convs:
            for s in range(SUBSETS):
                conv(f"{unit}.{name}.{s}", width, c_in, 1)
        if not plain:
            linear(f"{unit}.conv_ta", 1, c_out, TEMPORAL_KERNEL)
            linear(f"{unit}.conv_sa", 1, c_out, joint_kernel(joints))
            linear(f"{unit}.fc1c", c_out // 2, c_out)
            linear(f"{unit}.fc2c", c_out, c_out // 2)
        if c_in != c_out:
            conv(f"{unit}.down.0", c_out, c_in, 1)
            bn(f"{unit}.down.1", c_out)
        bn(f"{unit}.bn", c_out)
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
    for (dataset, (num_class, _, num_person)), plain in itertools.product(DATASETS.items(), (False, True)):
        model = build(dataset, plain)
        joints = model.l1.gcn1.PA.shape[-1]
        want = expected_keys(num_class, joints, num_person, plain)
        got = [(k, tuple(t.shape)) for k, t in model.state_dict().items()]
        assert got == want, f"{dataset}: state dict differs from the official layout"
        counts[("agcn" if plain else "aagcn", dataset)] = parameter_count(model)
        initialise(model, gen)
        model.train()
        logits = model(torch.randn(2, 3, 16, joints, num_person, generator=gen))
        assert logits.shape == (2, num_class)
    # NTU120 is the paper's count; NTU60 has 60 × 257 fewer fc values; NW-UCLA (V = 20, M = 1,
    # K = 10) has 110 × 257 fewer fc values, 90 × 2 fewer data_bn values, 10 × 3 × (625 − 400)
    # fewer PA values and, with a joint kernel of 19 instead of 25, 6 × 1,408 fewer conv_sa
    # values (1,408 the sum of the ten widths).
    # Plain 2s-AGCN: 3,484,930 at NTU120 (backbones spec §4); the same fc, data_bn and PA
    # differences for the other two.
    assert counts == {
        ("aagcn", "ntu60"): 3_781_668,
        ("aagcn", "ntu120"): 3_797_088,
        ("aagcn", "ucla"): 3_753_440,
        ("agcn", "ntu60"): 3_469_510,
        ("agcn", "ntu120"): 3_484_930,
        ("agcn", "ucla"): 3_449_730,
    }, counts
    return counts


if __name__ == "__main__":
    for (model, dataset), count in self_check().items():
        print(f"{model} {dataset}: {count:,} parameters")
