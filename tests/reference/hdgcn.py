"""PyTorch reference of HD-GCN as its official `model/HDGCN.py`, `graph/tools.py` and
`graph/ntu_rgb_d_hierarchy.py` define it (/work/shared/spec/backbones.md §6), without einops.

The hierarchy. The joints are split into 7 groups by hop distance from a centre of mass (CoM):
for NTU the official `get_groups` lists for CoM 21 (the default), 1 and 2; for NW-UCLA, which the
official code has no hierarchy for, the groups by hop distance from joint 3 (shoulder centre) on
the NW-UCLA skeleton (`graph/ucla20.toml`), the last group taking every joint at hop ≥ 6 as the
NTU CoM-1 list does. Level l (6 of them) has three (V, V) matrices, built as
`get_hierarchical_graph(V, get_edgeset(...))`: the self-links of groups l ∪ l+1; the links from
group l to l+1; those from l+1 to l. `edge2mat` puts a link (i, j) at A[j, i] and
`normalize_digraph` divides each column by its sum (the self-links are not normalised). The
stack is the learnable `PA` (6, 3, V, V) of every block; the aggregation is
z[n, c, t, v] = Σ_u x[n, c, t, u] · PA[l, s, v, u] (rows are outputs).

The graph unit (HD_Gconv), inter = C_out / 4: per level, `conv_down.{l}` (1×1, BN, ReLU), then
per subset `conv.{l}.{s}` (aggregation, 1×1, BN) and `conv.{l}.3`, an EdgeConv with k = 5 on
the same input: the mean over T, the 5 nearest joints in feature space (top-k of
−‖x_v − x_w‖² from a Gram matrix, self included), [x_nbr − x_ctr, x_ctr], a 1×1 conv without
bias, BN, LeakyReLU(0.2), the max over the neighbours, broadcast over T. The four outputs are
concatenated (C_out channels) and stacked over the levels (N, C_out, 6, T, V). Block 1 sums the
levels; blocks 2–10 weight them with AHA: the max over T, `conv_down` (1×1 to C/4, BN, ReLU),
the mean of level l over the joints of groups l ∪ l+1, an EdgeConv with k = 3 over the 6 level
nodes, `aggregate` (Conv1d 1×1 to C), a sigmoid, the weighted sum over the levels. Then `bn`
(γ = 1e-6 officially), + `down`, ReLU. The temporal unit is CTR-GCN's MS-TCN whose temporal
convs have no bias of their own but a `bias` parameter (1, C, 1, 1) added before their BN; the
block adds its residual (none in block 1, `residual_conv` in the strided blocks 5 and 8) and
applies a ReLU. Head: mean over T·V and M, `fc`.

The state dict is the official one, with its quirk: `HD_Gconv.__init__` assigns each level's
ModuleList to `self.conv_d` before appending it to `self.conv`, so `gcn1.conv_d.*` is a second
name of the last level's `gcn1.conv.5.*` (same tensors; `parameters()` counts them once). The
alias is kept here so that the keys are the official checkpoint's; `aliases(model)` lists them.

Departures from the official code, none of which changes a state-dict key or a value beyond
rounding: no einops (reshape and permute instead); no in-place ReLU or `+=`; AHA and the graph
take the dataset's own groups (officially AHA always reads NTU's, which fails on 20 joints); each
EdgeConv keeps the indices it picked last (`last_idx`), which the fixture script compares
between float64 and float32 runs.

It exists to produce the parity fixture of make_hdgcn_fixture.py. Running this file prints the
parameter counts of NTU60, NTU120 and NW-UCLA (CoM 21 and joint 3), each counted on the model,
checks NTU120's against the spec's 1,675,400, and checks that the `[[hdgcn]]` hierarchies of
graph/ntu25.toml and graph/ucla20.toml, which the engine reads, are these groups:

    python tests/reference/hdgcn.py
"""

import math
import tomllib
from collections import deque
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
BASE = 64
# Blocks l1…l10: (C_in, C_out, temporal stride).
BLOCKS = [
    (3, 64, 1),
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
GRAPH_K = 5  # neighbours of a joint in the graph unit's EdgeConv
LEVEL_K = 3  # neighbours of a level in AHA's EdgeConv

# The official get_groups('NTU', CoM) lists (1-based).
NTU_GROUPS = {
    21: [[21], [2, 3, 5, 9], [4, 6, 10, 1], [7, 11, 13, 17], [8, 12, 14, 18], [22, 23, 24, 25, 15, 19], [16, 20]],
    1: [[1], [2, 13, 17], [14, 18, 21], [3, 5, 9, 15, 19], [4, 6, 10, 16, 20], [7, 11], [8, 12, 22, 23, 24, 25]],
    2: [[2], [1, 21], [13, 17, 3, 5, 9], [14, 18, 4, 6, 10], [15, 19, 7, 11], [16, 20, 8, 12], [22, 23, 24, 25]],
}
# NW-UCLA's inward links (graph/ucla20.toml, 1-based) and its centre, the shoulder centre.
UCLA_INWARD = [
    (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
]  # fmt: skip
UCLA_CENTRE = 3
GROUPS = 7
# (classes, joints, persons)
DATASETS = {"ntu60": (60, 25, 2), "ntu120": (120, 25, 2), "ucla": (10, 20, 1)}


# ---------------------------------------------------------------------------------------------
# The hierarchy (graph/tools.py).


def hop_groups(links, num_node, centre, groups=GROUPS):
    """1-based joints by hop distance from `centre`, ascending; the last group takes every hop
    ≥ groups − 1."""
    neighbours = {j: set() for j in range(1, num_node + 1)}
    for i, j in links:
        neighbours[i].add(j)
        neighbours[j].add(i)
    hops = {centre: 0}
    queue = deque([centre])
    while queue:
        j = queue.popleft()
        for k in sorted(neighbours[j]):
            if k not in hops:
                hops[k] = hops[j] + 1
                queue.append(k)
    assert len(hops) == num_node, "the skeleton is not connected"
    return [sorted(j for j, h in hops.items() if min(h, groups - 1) == g) for g in range(groups)]


def get_groups(dataset, com):
    if dataset == "ucla":
        assert com == UCLA_CENTRE, f"NW-UCLA's hierarchy is centred on joint {UCLA_CENTRE}, not {com}"
        return hop_groups(UCLA_INWARD, 20, UCLA_CENTRE)
    if com not in NTU_GROUPS:
        raise ValueError(f"NTU CoM {com}: the official lists are for 21, 1 and 2")
    return [list(g) for g in NTU_GROUPS[com]]


def edge2mat(links, num_node):
    a = np.zeros((num_node, num_node))
    for i, j in links:
        a[j, i] = 1
    return a


def normalize_digraph(a):
    degree = a.sum(0)
    dn = np.zeros((a.shape[1], a.shape[1]))
    for i in range(a.shape[1]):
        if degree[i] > 0:
            dn[i, i] = degree[i] ** (-1)
    return a @ dn


def get_edgeset(groups):
    """Per level: [self-links, forward links, reverse links] of 0-based joints, as the official
    get_edgeset orders them (its reverse list is built from the last level down)."""
    groups = [[j - 1 for j in g] for g in groups]
    identity, forward, reverse = [], [], []
    for i in range(len(groups) - 1):
        identity.append([(j, j) for j in groups[i] + groups[i + 1]])
        forward.append([(j, k) for j in groups[i] for k in groups[i + 1]])
        reverse.append([(j, k) for j in groups[-1 - i] for k in groups[-2 - i]])
    return [[identity[i], forward[i], reverse[-1 - i]] for i in range(len(groups) - 1)]


def get_hierarchical_graph(num_node, edges):
    """(L, 3, V, V): per level the self-links and the normalised forward and reverse links."""
    a = []
    for self_links, forward, reverse in edges:
        a.append(
            np.stack(
                [
                    edge2mat(self_links, num_node),
                    normalize_digraph(edge2mat(forward, num_node)),
                    normalize_digraph(edge2mat(reverse, num_node)),
                ]
            )
        )
    return np.stack(a)


def graph(dataset, com):
    joints = DATASETS[dataset][1]
    return get_hierarchical_graph(joints, get_edgeset(get_groups(dataset, com)))


# ---------------------------------------------------------------------------------------------
# Official initialisations (the fixture overwrites every value by its formula).


def conv_init(conv):
    if conv.weight is not None:
        nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.constant_(conv.bias, 0)


def bn_init(bn, scale):
    nn.init.constant_(bn.weight, scale)
    nn.init.constant_(bn.bias, 0)


def weights_init(m):
    name = m.__class__.__name__
    if "Conv" in name:
        if hasattr(m, "weight"):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        if getattr(m, "bias", None) is not None and isinstance(m.bias, torch.Tensor):
            nn.init.constant_(m.bias, 0)
    elif "BatchNorm" in name:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


# ---------------------------------------------------------------------------------------------
# Temporal units (official names, so the state-dict keys are the official ones).


class TemporalConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1):
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            (kernel_size, 1),
            padding=(pad, 0),
            stride=(stride, 1),
            dilation=(dilation, 1),
            bias=False,
        )
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x) + self.bias)


class MultiScaleTemporalConv(nn.Module):
    """Kernel 5, dilations 1 and 2, a max-pool branch and a 1×1 branch; no inner residual."""

    def __init__(self, in_channels, out_channels, stride=1, kernel_size=5, dilations=(1, 2)):
        super().__init__()
        branch = out_channels // (len(dilations) + 2)
        self.branches = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(in_channels, branch, 1),
                    nn.BatchNorm2d(branch),
                    nn.ReLU(),
                    TemporalConv(branch, branch, kernel_size, stride=stride, dilation=d),
                )
                for d in dilations
            ]
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


class ResidualConv(nn.Module):
    """The strided 1×1 residual of blocks 5 and 8 (official `residual_conv`)."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (1, 1), stride=(stride, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        conv_init(self.conv)
        bn_init(self.bn, 1)

    def forward(self, x):
        return self.bn(self.conv(x))


# ---------------------------------------------------------------------------------------------
# The graph unit.


class EdgeConv(nn.Module):
    def __init__(self, in_channels, out_channels, k):
        super().__init__()
        self.k = k
        self.conv = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(negative_slope=0.2),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1)
        self.last_idx = None

    def knn(self, x):
        """(N, C, V) → the (N, V, k) indices of each node's k nearest, by the official arithmetic."""
        inner = -2 * torch.matmul(x.transpose(2, 1), x)
        xx = torch.sum(x**2, dim=1, keepdim=True)
        pairwise = -xx - inner - xx.transpose(2, 1)
        return pairwise.topk(k=self.k, dim=-1)[1]

    def forward(self, x):
        """(N, C, T, V) → (N, C_out, T, V) from the mean over T; (N, C, L) → (N, C_out, L)."""
        frames = x.shape[2] if x.dim() == 4 else None
        if frames is not None:
            x = x.mean(dim=-2)
        n, c, v = x.shape
        idx = self.knn(x)
        self.last_idx = idx.detach()
        nodes = x.permute(0, 2, 1)  # (N, V, C)
        flat = (idx + torch.arange(n).view(-1, 1, 1) * v).reshape(-1)
        neighbours = nodes.reshape(n * v, c)[flat].view(n, v, self.k, c)
        centres = nodes.unsqueeze(2).expand(-1, -1, self.k, -1)
        feature = torch.cat((neighbours - centres, centres), dim=3).permute(0, 3, 1, 2)  # (N, 2C, V, k)
        y = self.conv(feature).max(dim=-1)[0]
        return y if frames is None else y.unsqueeze(2).expand(-1, -1, frames, -1)


class AHA(nn.Module):
    """Attention-guided hierarchy aggregation over the levels."""

    def __init__(self, in_channels, groups):
        super().__init__()
        groups = [[j - 1 for j in g] for g in groups]
        self.num_layers = len(groups) - 1
        self.layers = [groups[i] + groups[i + 1] for i in range(self.num_layers)]
        inter = in_channels // 4
        self.conv_down = nn.Sequential(nn.Conv2d(in_channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU())
        self.edge_conv = EdgeConv(inter, inter, k=LEVEL_K)
        self.aggregate = nn.Conv1d(inter, in_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        n, c, levels, _, _ = x.shape
        x_t = self.conv_down(x.max(dim=-2)[0])  # (N, C/4, L, V)
        sampled = torch.cat(
            [x_t[:, :, i, self.layers[i]].mean(dim=-1, keepdim=True) for i in range(self.num_layers)], dim=2
        )
        att = self.aggregate(self.edge_conv(sampled)).view(n, c, levels, 1, 1)
        return (x * self.sigmoid(att)).sum(dim=2)


class HDGconv(nn.Module):
    def __init__(self, in_channels, out_channels, a, groups, att, residual=True):
        super().__init__()
        self.num_layers, self.num_subset = a.shape[:2]
        self.att = att
        inter = out_channels // (self.num_subset + 1)
        self.PA = nn.Parameter(torch.from_numpy(a.astype(np.float32)))
        self.conv_down = nn.ModuleList()
        self.conv = nn.ModuleList()
        for _ in range(self.num_layers):
            self.conv_down.append(nn.Sequential(nn.Conv2d(in_channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU()))
            level = nn.ModuleList(
                [nn.Sequential(nn.Conv2d(inter, inter, 1), nn.BatchNorm2d(inter)) for _ in range(self.num_subset)]
            )
            level.append(EdgeConv(inter, inter, k=GRAPH_K))
            self.conv.append(level)
        # The official loop leaves its last level registered under this second name too.
        self.conv_d = self.conv[-1]
        if att:
            self.aha = AHA(out_channels, groups)
        if residual and in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.down = None
        self.residual = residual
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1)
        bn_init(self.bn, 1e-6)

    def forward(self, x):
        out = []
        for i in range(self.num_layers):
            x_down = self.conv_down[i](x)
            y = [
                self.conv[i][j](torch.einsum("nctu,vu->nctv", x_down, self.PA[i, j])) for j in range(self.num_subset)
            ]
            y.append(self.conv[i][-1](x_down))
            out.append(torch.cat(y, dim=1))
        out = torch.stack(out, dim=2)  # (N, C, L, T, V)
        out = self.aha(out) if self.att else out.sum(dim=2)
        out = self.bn(out)
        if self.residual:
            out = out + (self.down(x) if self.down is not None else x)
        return self.relu(out)


class TCNGCNUnit(nn.Module):
    def __init__(self, in_channels, out_channels, a, groups, stride=1, residual=True, att=True):
        super().__init__()
        self.gcn1 = HDGconv(in_channels, out_channels, a, groups, att)
        self.tcn1 = MultiScaleTemporalConv(out_channels, out_channels, stride=stride)
        self.relu = nn.ReLU()
        self.has_residual = residual
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = ResidualConv(in_channels, out_channels, stride)
        else:
            self.residual = None

    def forward(self, x):
        y = self.tcn1(self.gcn1(x))
        if self.has_residual:
            y = y + (self.residual(x) if self.residual is not None else x)
        return self.relu(y)


class HDGCN(nn.Module):
    def __init__(self, num_class, num_point, num_person, a, groups, in_channels=3):
        super().__init__()
        self.num_point = num_point
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * num_point)
        for i, (c_in, c_out, stride) in enumerate(BLOCKS):
            unit = TCNGCNUnit(c_in, c_out, a, groups, stride=stride, residual=i > 0, att=i > 0)
            setattr(self, f"l{i + 1}", unit)
        self.fc = nn.Linear(4 * BASE, num_class)
        nn.init.normal_(self.fc.weight, 0, math.sqrt(2.0 / num_class))
        bn_init(self.data_bn, 1)

    def forward(self, x):
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)
        x = self.data_bn(x)
        x = x.reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for i in range(len(BLOCKS)):
            x = getattr(self, f"l{i + 1}")(x)
        x = x.reshape(n, m, x.shape[1], -1).mean(3).mean(1)
        return self.fc(x)


def build(dataset, com=None):
    """The model of one dataset: 'ntu60', 'ntu120' (CoM 21 unless `com` is 1 or 2) or 'ucla'
    (centred on joint 3)."""
    if com is None:
        com = UCLA_CENTRE if dataset == "ucla" else 21
    num_class, joints, persons = DATASETS[dataset]
    groups = get_groups(dataset, com)
    return HDGCN(num_class, joints, persons, graph(dataset, com), groups)


def aliases(model):
    """(alias, key) for every state-dict key that names the same tensor as an earlier key."""
    first, pairs = {}, []
    for key, t in model.state_dict(keep_vars=True).items():
        ident = id(t)
        if ident in first:
            pairs.append((key, first[ident]))
        else:
            first[ident] = key
    return pairs


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def check_topology_files():
    """The hierarchies of the engine's topology files (`[[hdgcn]]` tables) are these."""
    for name, dataset, coms in (("ntu25", "ntu60", (21, 1, 2)), ("ucla20", "ucla", (UCLA_CENTRE,))):
        with open(REPO / "graph" / f"{name}.toml", "rb") as f:
            tables = tomllib.load(f)["hdgcn"]
        assert [t["com"] for t in tables] == list(coms), name
        for t in tables:
            assert t["groups"] == get_groups(dataset, t["com"]), f"{name}: com {t['com']}"


if __name__ == "__main__":
    check_topology_files()
    counts = {dataset: parameter_count(build(dataset)) for dataset in DATASETS}
    for dataset, count in counts.items():
        print(f"hdgcn {dataset}: {count:,} parameters")
    assert counts["ntu120"] == 1_675_400, "backbones spec §6"
