"""PyTorch reference of BlockGCN as its official `model/BlockGCN.py`, `graph/ntu_rgb_d.py`,
`graph/ucla.py` and `graph/tools.py` define it (/work/shared/spec/backbones.md §7), with the
persistent-homology branch of pytorch-topological (`VietorisRipsComplex(dim=0)`, `make_tensor`,
`StructureElementLayer`) written out here, because that package is not a dependency.

Input. The forward takes the RAW joints x (N, 3, T, V, M), as the test-mode feeder crops and
resizes them, and derives both official inputs itself:
- `data`, for the embedding: on NTU the joint feeder's spine-relative transform, every joint
  minus joint 21 (index 20) per frame and person, joint 21 keeping its absolute trajectory
  (`feeder_ntu.py`); on NW-UCLA no transform (`feeder_ucla.py` returns the same array twice);
- `joint` = x, for the topology branch.
Then Linear(3 → 128) per joint, plus the learnable positional embedding (1, V, 128), then
`data_bn`, a BatchNorm1d over M·V·128 channels.

Ten blocks (128, 128, 128, 128, 128→256 stride 2, 256, 256, 256→256 stride 2, 256, 256); before
block i the topology feature t_{i−1}(a) is added to the block input, broadcast over (T, V). The
graph unit (BlockGC) has H = 8 channel groups; for each subset s: W = fc1[s] / (‖column‖₂ + 1e-4)
plus P / (‖column‖₂ + 1e-4), P = rpe[s][:, hops] the (H, V, V) gather of the hop-distance table;
each group's channels are aggregated with its own V×V matrix, out[·, w] = Σ_v x[·, v]·W[h, v, w];
then the grouped 1×1 conv fc2[s] (groups 8). The subsets are summed, then BN, + `down`, ReLU.
`hops` are the shortest-path lengths on BlockGCN's skeleton (its NTU hand links differ from
CTR-GCN's), computed by the official loop. The temporal unit is CTR-GCN's MS-TCN (kernel 5,
dilations 1 and 2, a max-pool branch and a 1×1 branch, no inner residual); the block adds its
residual and applies a ReLU. Head: mean over T·V and M, `fc`.

Topology branch (`Topo`), once per batch: the joints averaged over persons, the V×V matrix of
‖mean_t (x_v − x_w)‖₂, divided by its batch-global range (the minimum is the diagonal's 0); its V
rows are V points in R^V. Their 0-dim Vietoris–Rips persistence (Euclidean) has V − 1 finite bars
(0, d), d the edge lengths of a minimum spanning tree, and one infinite bar, which
`VietorisRipsComplex` drops unless `keep_infinite_features=True` (the default is False, and
`Topo` passes only `dim=0`). `deaths` returns them sorted ascending (ripser's order differs;
the layer sums over bars). No gradient reaches the joints (they are data), so the deaths are
constants of the step. `StructureElementLayer(64)`: for element k,
f_k = Σ_bars exp(−[s_k0²·(c_k0 − birth)² + s_k1²·(c_k1 − death)²]) with the layer's third
column, (2·dim − dim)², zero for dimension-0 bars. Ripser omits zero-length bars (two equal
rows), which make_tensor would pad with NaN and the layer's nansum count as exp(0) = 1; with
distinct rows there are always V − 1 bars, and this reference requires that.

TopoTrans t_i: `x.repeat(2, 1)` → Linear(64 → C) → BatchNorm1d → ReLU. The block input is ordered
(n, m): row r = n·M + m. `topology="official"` keeps the repeat, so row r gets sample (r mod N)'s
features (another sample's whenever N > 1); `topology="aligned"` gives row r its own sample's,
r // M. On NW-UCLA (M = 1) both are the identity, as the official comment for UCLA asks.

Departures from the official code, none of which changes a state-dict key or a value beyond
rounding: no einops (reshape and permute instead); the features are put in row order once,
before the ten TopoTrans, instead of by each (the same rows, so the same BN1d statistics); the
persistence is computed by Prim's algorithm in the model's dtype instead of ripser (the multiset
of MST edge lengths is the same for every minimum spanning tree), and make_tensor's cast of the
deaths to float32 is dropped, so that the model runs in float64; the forward takes x alone (the
official `y` is returned unused).

It exists to produce the parity fixture of make_blockgcn_fixture.py. Running this file prints the
parameter counts of NTU60, NTU120 and NW-UCLA, each counted on the model itself:

    python tests/reference/blockgcn.py
"""

import math

import numpy as np
import torch
from torch import nn

EMBED = 128
HEADS = 8
SUBSETS = 3
TOPO_ELEMENTS = 64
SPINE = 20  # joint 21, NTU's spine-shoulder joint
# Blocks l1…l10: (C_in, C_out, temporal stride).
BLOCKS = [
    (128, 128, 1),
    (128, 128, 1),
    (128, 128, 1),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 256, 1),
    (256, 256, 2),
    (256, 256, 1),
    (256, 256, 1),
]
TOPOLOGIES = ("official", "aligned")

# The official `inward_ori_index` lists (1-based). BlockGCN's NTU hands link 22 and 23 to 8 and
# 24 and 25 to 12, where CTR-GCN chains 22–23–8 and 24–25–12.
NTU_INWARD = [
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 8), (23, 8), (24, 12), (25, 12),
]  # fmt: skip
UCLA_INWARD = [
    (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
]  # fmt: skip
# (classes, joints, persons, inward links, spine-relative input)
DATASETS = {
    "ntu60": (60, 25, 2, NTU_INWARD, True),
    "ntu120": (120, 25, 2, NTU_INWARD, True),
    "ucla": (10, 20, 1, UCLA_INWARD, False),
}


# ---------------------------------------------------------------------------------------------
# The graph (graph/tools.py) and the hop distances (unit_gcn.__init__).


def edge2mat(links, num_node):
    a = np.zeros((num_node, num_node))
    for i, j in links:
        a[j, i] = 1
    return a


def normalize_digraph(a):
    degree = a.sum(0)
    inverse = np.where(degree > 0, 1.0 / np.where(degree > 0, degree, 1.0), 0.0)
    return a * inverse[None, :]


def spatial_graph(num_node, inward_ori_index):
    """A (3, V, V): identity, normalised inward, normalised outward."""
    inward = [(i - 1, j - 1) for i, j in inward_ori_index]
    outward = [(j, i) for i, j in inward]
    identity = edge2mat([(i, i) for i in range(num_node)], num_node)
    inward, outward = (normalize_digraph(edge2mat(links, num_node)) for links in (inward, outward))
    return np.stack([identity, inward, outward])


def hop_distances(a):
    """The official k-hop loop: reachability within i links, then each ring weighted by i."""
    v = a.shape[-1]
    h1 = a.sum(0)
    h1[h1 != 0] = 1
    h = [np.eye(v), h1] + [None] * (v - 2)
    for i in range(2, v):
        h[i] = h[i - 1] @ h1.T
        h[i][h[i] != 0] = 1
    hops = 0 * h[0]
    for i in range(v - 1, 0, -1):
        if np.any(h[i] - h[i - 1]):
            h[i] = h[i] - h[i - 1]
            hops += i * h[i]
    return torch.tensor(hops).long()


# ---------------------------------------------------------------------------------------------
# Official initialisations (the fixture overwrites every value by its formula).


def conv_init(conv):
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.constant_(conv.bias, 0)


def bn_init(bn, scale):
    nn.init.constant_(bn.weight, scale)
    nn.init.constant_(bn.bias, 0)


def weights_init(m):
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")
        nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.BatchNorm2d):
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


# ---------------------------------------------------------------------------------------------
# Temporal units (official names, so the state-dict keys are the official ones).


class TemporalConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1):
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1), dilation=(dilation, 1)
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class UnitTCN(nn.Module):
    """The strided 1×1 residual of blocks 5 and 8."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1):
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        conv_init(self.conv)
        bn_init(self.bn, 1)

    def forward(self, x):
        return self.bn(self.conv(x))


class MultiScaleTemporalConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=5, stride=1, dilations=(1, 2)):
        super().__init__()
        branch = out_channels // (len(dilations) + 2)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, branch, 1),
                nn.BatchNorm2d(branch),
                nn.ReLU(),
                TemporalConv(branch, branch, kernel_size, stride, dilation),
            )
            for dilation in dilations
        )
        self.branches.append(
            nn.Sequential(
                nn.Conv2d(in_channels, branch, 1),
                nn.BatchNorm2d(branch),
                nn.ReLU(),
                nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)),
                nn.BatchNorm2d(branch),
            )
        )
        self.branches.append(
            nn.Sequential(nn.Conv2d(in_channels, branch, 1, stride=(stride, 1)), nn.BatchNorm2d(branch))
        )
        self.apply(weights_init)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], dim=1)


# ---------------------------------------------------------------------------------------------
# The graph unit and the block.


def column_norm(w):
    """‖w[..., :, w]‖₂ over the rows, + 1e-4 (unit_gcn.L2_norm)."""
    return torch.linalg.vector_norm(w, 2, dim=-2, keepdim=True) + 1e-4


class UnitGCN(nn.Module):
    def __init__(self, in_channels, out_channels, a):
        super().__init__()
        v = a.shape[-1]
        self.num_heads = HEADS if in_channels > HEADS else 1
        eye = torch.eye(v).expand(SUBSETS, self.num_heads, v, v)
        self.fc1 = nn.Parameter(eye.clone())
        self.fc2 = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 1, groups=self.num_heads) for _ in range(SUBSETS)
        )
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.down = None
        self.bn = nn.BatchNorm2d(out_channels)
        self.hops = hop_distances(a)
        self.rpe = nn.Parameter(torch.zeros(SUBSETS, self.num_heads, int(self.hops.max()) + 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1)
        # The official code sets bn to 1e-6 and then resets every BN to 1 twice more.

    def forward(self, x):
        n, c, t, v = x.shape
        pos_emb = self.rpe[:, :, self.hops]  # (S, H, V, V)
        x_in = x.reshape(n, self.num_heads, c // self.num_heads, t, v)
        y = None
        for i in range(SUBSETS):
            w1 = self.fc1[i] / column_norm(self.fc1[i]) + pos_emb[i] / column_norm(pos_emb[i])
            z = torch.einsum("nhctv,hvw->nhctw", x_in, w1).reshape(n, c, t, v)
            z = self.fc2[i](z)
            y = z if y is None else z + y
        y = self.bn(y)
        y = y + (x if self.down is None else self.down(x))
        return torch.relu(y)


class TCNGCNUnit(nn.Module):
    def __init__(self, in_channels, out_channels, a, stride=1):
        super().__init__()
        self.gcn1 = UnitGCN(in_channels, out_channels, a)
        self.tcn1 = MultiScaleTemporalConv(out_channels, out_channels, stride=stride)
        if in_channels == out_channels and stride == 1:
            self.residual = None
        else:
            self.residual = UnitTCN(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x):
        res = x if self.residual is None else self.residual(x)
        return torch.relu(self.tcn1(self.gcn1(x)) + res)


# ---------------------------------------------------------------------------------------------
# The topology branch.


def normalised_distances(joint):
    """(N, C, T, V, M) → (N, V, V): ‖mean_t mean_m (x_v − x_w)‖₂ over the batch-global range."""
    x = joint.permute(0, 4, 1, 2, 3).mean(1)  # (N, C, T, V)
    x = (x.unsqueeze(-1) - x.unsqueeze(-2)).mean(-3)  # (N, C, V, V)
    x = torch.linalg.vector_norm(x, 2, dim=1)
    return (x - x.min()) / (x.max() - x.min())


def deaths(points):
    """The finite 0-dim Vietoris–Rips bars of each cloud of `points` (N, P, D): the P − 1 edge
    lengths of a Euclidean minimum spanning tree (Prim), ascending, in `points`' dtype."""
    d = torch.sqrt(((points.unsqueeze(2) - points.unsqueeze(1)) ** 2).sum(-1))  # (N, P, P)
    out = []
    for dist in d.detach():
        p = dist.shape[0]
        inside = torch.zeros(p, dtype=torch.bool)
        inside[0] = True
        best = dist[0].clone()
        edges = []
        for _ in range(p - 1):
            j = int(torch.where(inside, torch.inf, best).argmin())
            edges.append(best[j])
            inside[j] = True
            best = torch.minimum(best, dist[j])
        lengths = torch.stack(edges).sort().values
        assert (lengths > 0).all(), "two joints have identical distance profiles: ripser drops zero bars"
        out.append(lengths)
    return torch.stack(out)


class StructureElementLayer(nn.Module):
    def __init__(self, n_elements):
        super().__init__()
        self.centres = nn.Parameter(torch.rand(n_elements, 2))
        self.sharpness = nn.Parameter(torch.ones(n_elements, 2) * 3)

    def forward(self, death):
        """(N, B) deaths of birth-0 bars → (N, n_elements)."""
        c0, c1 = self.centres[:, 0, None], self.centres[:, 1, None]  # (K, 1)
        s0, s1 = self.sharpness[:, 0, None] ** 2, self.sharpness[:, 1, None] ** 2
        birth = torch.zeros_like(death)
        e = s0 * (c0 - birth.unsqueeze(1)) ** 2 + s1 * (c1 - death.unsqueeze(1)) ** 2  # (N, K, B)
        return torch.exp(-e).sum(2)


class Topo(nn.Module):
    def __init__(self):
        super().__init__()
        self.pl = StructureElementLayer(TOPO_ELEMENTS)

    def forward(self, joint):
        return self.pl(deaths(normalised_distances(joint)))


class TopoTrans(nn.Module):
    def __init__(self, out_dim):
        super().__init__()
        self.mlp = nn.Linear(TOPO_ELEMENTS, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, a):
        """(N·M, 64) features, already in batch-row order → (N·M, C, 1, 1)."""
        return torch.relu(self.bn(self.mlp(a)))[:, :, None, None]


# ---------------------------------------------------------------------------------------------
# The network.


class BlockGCN(nn.Module):
    def __init__(self, num_class, num_point, num_person, inward, spine_relative, topology):
        super().__init__()
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, not {topology!r}")
        a = spatial_graph(num_point, inward)
        self.num_class = num_class
        self.num_point = num_point
        self.num_person = num_person
        self.spine_relative = spine_relative
        self.topology = topology
        self.data_bn = nn.BatchNorm1d(num_person * EMBED * num_point)
        self.to_joint_embedding = nn.Linear(3, EMBED)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_point, EMBED))
        for i, (c_in, c_out, stride) in enumerate(BLOCKS):
            setattr(self, f"l{i + 1}", TCNGCNUnit(c_in, c_out, a, stride))
        for i, (c_in, _, _) in enumerate(BLOCKS):
            setattr(self, f"t{i}", TopoTrans(c_in))
        self.topo = Topo()
        self.fc = nn.Linear(BLOCKS[-1][1], num_class)
        nn.init.normal_(self.fc.weight, 0, math.sqrt(2.0 / num_class))
        bn_init(self.data_bn, 1)

    def embedding_input(self, x):
        """The joint feeder's `data`: on NTU spine-relative, joint 21 keeping its trajectory."""
        if not self.spine_relative:
            return x
        data = x - x[:, :, :, SPINE : SPINE + 1]
        data[:, :, :, SPINE] = x[:, :, :, SPINE]
        return data

    def topo_rows(self, features):
        """(N, 64) → (N·M, 64), row r = n·M + m: sample r mod N's ("official") or r // M's."""
        m = self.num_person
        return features.repeat(m, 1) if self.topology == "official" else features.repeat_interleave(m, 0)

    def forward(self, x):
        n, c, t, v, m = x.shape
        a = self.topo_rows(self.topo(x))
        x = self.embedding_input(x).permute(0, 4, 2, 3, 1).reshape(n * m * t, v, c)
        x = self.to_joint_embedding(x) + self.pos_embedding[:, : self.num_point]
        x = x.reshape(n, m, t, v, EMBED).permute(0, 1, 3, 4, 2).reshape(n, m * v * EMBED, t)
        x = self.data_bn(x)
        x = x.reshape(n, m, v, EMBED, t).permute(0, 1, 3, 4, 2).reshape(n * m, EMBED, t, v)
        for i in range(len(BLOCKS)):
            x = getattr(self, f"l{i + 1}")(x + getattr(self, f"t{i}")(a))
        x = x.reshape(n, m, x.shape[1], -1).mean(3).mean(1)
        return self.fc(x)


def build(dataset, topology="official"):
    """The model of one dataset: 'ntu60', 'ntu120' or 'ucla'."""
    num_class, joints, persons, inward, spine_relative = DATASETS[dataset]
    return BlockGCN(num_class, joints, persons, inward, spine_relative, topology)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    for dataset in DATASETS:
        print(f"blockgcn {dataset}: {parameter_count(build(dataset)):,} parameters")
