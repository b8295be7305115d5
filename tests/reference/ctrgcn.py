"""PyTorch reference of CTR-GCN, written from the model's description (layers, shapes, state-dict
order, initialisation), not from any implementation.

It exists to produce the parity fixtures the engine is tested against (see make_fixture.py and
make_sfhead_fixture.py), so it favours plain, readable code over speed. SF-Head (sf_head.py) can be
attached to any subset of the blocks, as a training-only tap or in-line. Running this file checks
the model against the shipped state-dict listing and the published parameter counts:

    python tests/reference/ctrgcn.py
"""

import math
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sf_head import SFHead
from sf_head import initialise as initialise_sf_head

REPO = Path(__file__).resolve().parents[2]
LISTING = REPO / "tests" / "fixtures" / "ctrgcn-state-dict.txt"

# Blocks l1…l10: (C_in, C_out, temporal stride); l1 has no block residual.
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


# ---------------------------------------------------------------------------------------------
# Graph, read from the same TOML files as the Rust crate (docs/topologies.md).


def load_topology(name):
    with open(REPO / "graph" / f"{name}.toml", "rb") as f:
        return tomllib.load(f)


def spatial_adjacency(topology):
    """(3, V, V) float32: identity, inward and outward, each column-normalised; rows receive."""
    v = len(topology["joints"])
    inward = [(c - 1, p - 1) for c, p in topology["inward"]]
    outward = [(p, c) for c, p in inward]

    def normalized(links):
        e = np.zeros((v, v))
        for sender, receiver in links:
            e[receiver, sender] = 1.0
        sums = e.sum(axis=0)
        scale = np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0)
        return e * scale[None, :]

    return np.stack([np.eye(v), normalized(inward), normalized(outward)]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Model. Module attribute names and registration order fix the state-dict keys and their order:
# a module lists its own parameters, then its buffers, then its children in registration order.


class RelationBranch(nn.Module):
    """One CTR-GC branch: channel-wise topology alpha·conv4(tanh(x1_u − x2_v)) + PA[i]."""

    def __init__(self, c_in, c_out):
        super().__init__()
        rel = 8 if c_in in (3, 9) else c_in // 8
        self.conv1 = nn.Conv2d(c_in, rel, 1)
        self.conv2 = nn.Conv2d(c_in, rel, 1)
        self.conv3 = nn.Conv2d(c_in, c_out, 1)
        self.conv4 = nn.Conv2d(rel, c_out, 1)

    def forward(self, x, pa, alpha):
        x1 = self.conv1(x).mean(dim=2)  # (B, R, V)
        x2 = self.conv2(x).mean(dim=2)
        x3 = self.conv3(x)  # (B, C_out, T, V)
        e = torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2))  # (B, R, V_u, V_v)
        q = self.conv4(e) * alpha + pa  # (B, C_out, V, V)
        return torch.einsum("bcuv,bctv->bctu", q, x3)


class GraphUnit(nn.Module):
    """unit_gcn: three relation branches over PA's subsets, BN, the `down` shortcut and ReLU."""

    def __init__(self, c_in, c_out, adjacency):
        super().__init__()
        self.PA = nn.Parameter(torch.from_numpy(adjacency.copy()))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.convs = nn.ModuleList([RelationBranch(c_in, c_out) for _ in range(adjacency.shape[0])])
        if c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        else:
            self.down = None
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        z = self.convs[0](x, self.PA[0], self.alpha)
        for i in range(1, len(self.convs)):
            z = z + self.convs[i](x, self.PA[i], self.alpha)
        shortcut = x if self.down is None else self.down(x)
        return F.relu(self.bn(z) + shortcut)


class TemporalConv(nn.Module):
    """k×1 convolution along T (dilation d, stride s, pad (k−1)·d/2) followed by BN."""

    def __init__(self, channels, kernel, stride, dilation):
        super().__init__()
        pad = (kernel - 1) * dilation // 2
        self.conv = nn.Conv2d(
            channels, channels, (kernel, 1), padding=(pad, 0), stride=(stride, 1), dilation=(dilation, 1)
        )
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class MultiScaleTemporal(nn.Module):
    """MS-TCN: four branches of width C/4, concatenated on channels in branch order."""

    def __init__(self, channels, stride):
        super().__init__()
        cb = channels // 4

        def entry():
            return [nn.Conv2d(channels, cb, 1), nn.BatchNorm2d(cb), nn.ReLU()]

        self.branches = nn.ModuleList(
            [
                nn.Sequential(*entry(), TemporalConv(cb, 5, stride, 1)),
                nn.Sequential(*entry(), TemporalConv(cb, 5, stride, 2)),
                nn.Sequential(
                    *entry(),
                    nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)),
                    nn.BatchNorm2d(cb),
                ),
                nn.Sequential(nn.Conv2d(channels, cb, 1, stride=(stride, 1)), nn.BatchNorm2d(cb)),
            ]
        )

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class StridedShortcut(nn.Module):
    """Block residual where the shape changes: 1×1 conv with stride (s, 1), then BN."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, stride=(stride, 1))
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(nn.Module):
    """out = ReLU(TCN(GCN(x)) + residual(x)).

    With an SF-Head `head`, the head reads the GCN output; in-line, the TCN consumes the head's
    output instead. forward returns (out, the head's feats or None).
    """

    def __init__(self, c_in, c_out, stride, adjacency, has_residual):
        super().__init__()
        self.gcn1 = GraphUnit(c_in, c_out, adjacency)
        self.tcn1 = MultiScaleTemporal(c_out, stride)
        self.has_residual = has_residual
        if has_residual and (c_in != c_out or stride != 1):
            self.residual = StridedShortcut(c_in, c_out, stride)
        else:
            self.residual = None

    def forward(self, x, head=None, inline=False):
        y = self.gcn1(x)
        feats = None
        if head is not None:
            shuffled, feats = head(y)
            if inline:
                y = shuffled
        y = self.tcn1(y)
        if self.residual is not None:
            y = y + self.residual(x)
        elif self.has_residual:
            y = y + x
        return F.relu(y), feats


class CTRGCN(nn.Module):
    """Input (N, C=3, T, V, M); logits (N, K).

    sf_head: None (plain CTR-GCN), "tap" or "inline"; one SF-Head with `groups` groups on the GCN
    output of each block in sf_blocks (1-based). `sf_heads.{i}` is the head of the i-th attached
    block; its keys come after fc's. A tap head runs only in training and its output is discarded,
    so in evaluation a tap model is exactly CTR-GCN. An in-line head feeds the TCN and always runs.
    """

    def __init__(
        self, num_class, adjacency, num_person, in_channels=3, sf_head=None, sf_blocks=range(1, 11), groups=8
    ):
        super().__init__()
        v = adjacency.shape[-1]
        self.data_bn = nn.BatchNorm1d(num_person * v * in_channels)
        for i, (c_in, c_out, stride) in enumerate(BLOCKS, start=1):
            setattr(self, f"l{i}", Block(c_in, c_out, stride, adjacency, has_residual=i != 1))
        self.fc = nn.Linear(BLOCKS[-1][1], num_class)
        if sf_head not in (None, "tap", "inline"):
            raise ValueError(f"sf_head must be None, 'tap' or 'inline', got {sf_head!r}")
        self.sf_mode = sf_head
        self.sf_blocks = tuple(sf_blocks) if sf_head is not None else ()
        if sf_head is not None:
            assert all(1 <= i <= len(BLOCKS) for i in self.sf_blocks), self.sf_blocks
            self.sf_heads = nn.ModuleList([SFHead(BLOCKS[i - 1][1], groups) for i in self.sf_blocks])

    def forward(self, x, return_feats=False):
        """Logits, or (logits, the feats dict of every head that ran, in sf_blocks order)."""
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)  # channel = m·V·C + v·C + c
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)  # row n·M + m
        heads_run = self.sf_mode == "inline" or (self.sf_mode == "tap" and self.training)
        feats_list = []
        for i in range(1, len(BLOCKS) + 1):
            head = None
            if heads_run and i in self.sf_blocks:
                head = self.sf_heads[self.sf_blocks.index(i)]
            x, feats = getattr(self, f"l{i}")(x, head, inline=self.sf_mode == "inline")
            if feats is not None:
                feats_list.append(feats)
        feat = x.reshape(n, m, x.shape[1], -1).mean(dim=3).mean(dim=1)
        logits = self.fc(feat)
        return (logits, feats_list) if return_feats else logits


def build(dataset, **sf_head_options):
    """The model of one dataset: 'ntu60', 'ntu120' or 'ucla'; sf_head, sf_blocks and groups as in
    CTRGCN."""
    graph, num_class, num_person = {
        "ntu60": ("ntu25", 60, 2),
        "ntu120": ("ntu25", 120, 2),
        "ucla": ("ucla20", 10, 1),
    }[dataset]
    return CTRGCN(num_class, spatial_adjacency(load_topology(graph)), num_person, **sf_head_options)


# ---------------------------------------------------------------------------------------------
# Initialisation, drawn from one seeded generator in module order:
# - every Conv2d: N(0, √(2 / fan_out)), fan_out = C_out·kh·kw; bias 0;
# - BN β = 0; γ = 1, except γ ~ N(1, 0.02) inside the MS-TCN and γ = 1e-6 for `gcn1.bn`;
# - fc.weight N(0, √(2 / K)), fc.bias U(−1/√256, 1/√256) (PyTorch's default for Linear);
# - PA = A, alpha = 0;
# - then each SF-Head: PyTorch's construction defaults (sf_head.initialise).


def _kaiming_fan_out(weight, gen):
    fan_out = weight.shape[0] * math.prod(weight.shape[2:])
    weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=gen)


def initialise(model, gen):
    """Initialises a freshly built model in place (PA already holds A)."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.startswith("sf_heads."):
                continue
            if isinstance(module, nn.Conv2d):
                _kaiming_fan_out(module.weight, gen)
                module.bias.zero_()
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.bias.zero_()
                if ".tcn1." in f".{name}.":
                    module.weight.normal_(1.0, 0.02, generator=gen)
                elif name.endswith("gcn1.bn"):
                    module.weight.fill_(1e-6)
                else:
                    module.weight.fill_(1.0)
            elif isinstance(module, GraphUnit):
                module.alpha.zero_()
        k = model.fc.weight.shape[0]
        model.fc.weight.normal_(0.0, math.sqrt(2.0 / k), generator=gen)
        bound = 1.0 / math.sqrt(model.fc.weight.shape[1])
        model.fc.bias.uniform_(-bound, bound, generator=gen)
    for head in getattr(model, "sf_heads", []):
        initialise_sf_head(head, gen)


# ---------------------------------------------------------------------------------------------
# The shipped state-dict listing (tests/fixtures/ctrgcn-state-dict.txt).


def read_listing(path=LISTING):
    """CTR-GCN entries as (key, shape, kind): the lines before the first blank line that follows them."""
    entries = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if entries:
                break
            continue
        key, shape, kind, _numel = line.split()
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        entries.append((key, dims, kind))
    return entries


def check_against_listing(model, listing):
    """Keys, order, shapes and parameter/buffer kinds of the model equal the listing."""
    params = {name for name, _ in model.named_parameters()}
    got = [
        (key, tuple(t.shape), "param" if key in params else "buffer") for key, t in model.state_dict().items()
    ]
    assert len(got) == len(listing), f"{len(got)} state-dict entries, listing has {len(listing)}"
    for i, (g, want) in enumerate(zip(got, listing)):
        assert g == want, f"entry {i}: model has {g}, listing has {want}"
    assert [k for k, _ in model.named_parameters()] == [k for k, _, kind in listing if kind == "param"]


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def self_check():
    listing = read_listing()
    assert len(listing) == 822 and sum(kind == "param" for _, _, kind in listing) == 564
    ntu60 = build("ntu60")
    check_against_listing(ntu60, listing)

    def resized(entries, sizes):
        return [(k, sizes.get(k, lambda s: s)(s), kind) for k, s, kind in entries]

    ntu120 = build("ntu120")
    check_against_listing(ntu120, resized(listing, {"fc.weight": lambda s: (120, 256), "fc.bias": lambda s: (120,)}))
    ucla_sizes = {"fc.weight": lambda s: (10, 256), "fc.bias": lambda s: (10,)}
    for key, _, _ in listing:
        if key.startswith("data_bn.") and not key.endswith("num_batches_tracked"):
            ucla_sizes[key] = lambda s: (60,)
        if key.endswith(".PA"):
            ucla_sizes[key] = lambda s: (3, 20, 20)
    ucla = build("ucla")
    check_against_listing(ucla, resized(listing, ucla_sizes))

    counts = {name: parameter_count(m) for name, m in [("ntu60", ntu60), ("ntu120", ntu120), ("ucla", ucla)]}
    assert counts == {"ntu60": 1_446_672, "ntu120": 1_462_092, "ucla": 1_426_892}, counts
    assert sum(s.numel() for k, s in ntu60.state_dict().items() if "running_" in k) == 9_708

    # A forward pass of each kind of input gives logits of the right shape.
    gen = torch.Generator().manual_seed(0)
    for model, shape, k in [(ntu60, (2, 3, 64, 25, 2), 60), (ucla, (2, 3, 52, 20, 1), 10)]:
        initialise(model, gen)
        assert model(torch.randn(*shape, generator=gen)).shape == (2, k)
    return counts


if __name__ == "__main__":
    for name, count in self_check().items():
        print(f"{name}: {count:,} parameters")
    print("state-dict keys, order and shapes match", LISTING.relative_to(REPO))
