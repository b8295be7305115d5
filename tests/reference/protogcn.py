"""PyTorch reference of ProtoGCN as its official recognizer defines it
(/work/shared/spec/backbones.md §8): `models/gcns/protogcn.py`, `gcns/utils/{gcn,tcn}.py`,
`heads/{simple_head,base}.py`, `losses/Class_Specific_Contrastive_Loss.py`,
`recognizers/recognizergcn.py`, `utils/graph.py` (mode "random") and `configs/ntu120_xsub/j.py`,
without mmcv: BatchNorm2d and ReLU stand for its `build_norm_layer` and
`build_activation_layer`.

Input. x (N, 3, T, V, M), the engine's layout; the forward permutes it to pyskl's (N, M, T, V, C).
`data_bn` is a BatchNorm1d over V·C channels (mode "VC", shared by the persons).

Ten GCN blocks (3→96, 96, 96, 96, 96→192 stride 2, 192, 192, 192→384 stride 2, 384, 384); block
1 has no residual, a block whose shape changes a 1×1 strided conv + BN (`unit_tcn`). The graph
unit (`unit_gcn`, K = 8 subsets of mid = C_out / 8 channels): A (K, V, V) is a parameter drawn
from N(0.04, 0.02²); pre = conv → BN → ReLU; x1, x2 = conv1(x), conv2(x) averaged over T;
inter = tanh(x1[v] − x2[w])·α[0] per channel, intra = softmax over v of Σ_c x1[c, v]·x2[c, w] per
subset, times β[0] (only element 0 of α and β is used); out[·, w] = Σ_v pre[·, v]·(A + inter +
intra)[v, w] per (sample, subset, channel); post conv, BN, + down, ReLU. It also returns
inter + intra as a (B, C_out, V, V) graph. The temporal unit (`mstcn`) appends the mean over the
joints as joint V, runs six branches (1×1 → BN → ReLU → 3×1 conv of dilation 1…4 without BN;
1×1 → BN → ReLU → 3×1 max-pool; a bare strided 1×1), concatenates them, adds the global joint's
features times the learnable `add_coeff[v]` to each joint, then BN → ReLU → 1×1 conv → BN.
`add_coeff` has mstcn's default 25 entries whatever V is (the official blocks never pass
`num_joints`); a 20-joint model uses the first 20.

PRN (Prototype Reconstruction Network) on the last block's graph averaged over persons, (N, 384,
V·V): per sample and joint pair, softmax over the 400 prototypes of a bias-free Linear 384→400,
then the bias-free Linear 400→384 (the prototype memory), dropout 0.1; back to (N, 384, V, V),
the backbone's `post` conv, BN, ReLU, mean over channels: the reconstructed graph (N, V·V).
The classifier (`SimpleHead`) pools over T·V, averages over M and applies `fc_cls`; it does not
see the graph.

Loss (`BaseHead.loss`): cross-entropy + 0.2 · CSC. CSC (`Class_Specific_Contrastive_Loss`):
f = cl_fc(graph) (V·V → 256); the true-positive mask is onehot(label) · onehot(argmax logits) ·
[softmax(logits) > 0] on the detached logits; per class with a true positive, the memory column
becomes 0.9 · m + 0.1 · (mean of its true positives' f), with gradient through f, and the others
stay m; logits_ik = cos(f_i, memory_k) / 0.125; CE with the labels, mean over the batch. The
memory `avg_f` (256, K), officially torch.randn at construction, is a plain attribute (not in
the state dict) that the loss replaces by the updated memory, without gradient.

Departures from the official code, none of which changes a state-dict key or a value beyond
rounding: the PRN runs on the whole batch at once instead of a loop over samples (the same
per-row Linear layers); `forward` takes an optional dropout keep-mask (N, V·V, 384) so that a
caller can record it (without one, training mode draws it as nn.Dropout does); `A` is drawn from
an optional torch generator; the memory is made by `init_memory` with an optional generator and
takes the model's dtype, so that the model runs in float64.

It exists to produce the parity fixture of make_protogcn_fixture.py. Running this file prints the
parameter counts of NTU60, NTU120 and NW-UCLA, each counted on the model itself (with the CSC
projection `cls_head.csc_loss.cl_fc`):

    python tests/reference/protogcn.py
"""

import torch
import torch.nn.functional as F
from torch import nn

SUBSETS = 8
MID_RATIO = 0.125
A_OFFSET, A_STD = 0.04, 0.02
TCN_JOINTS = 25
# Temporal branches: (kernel, dilation), the max-pool and the bare 1×1.
MS_CFG = [(3, 1), (3, 2), (3, 3), (3, 4), ("max", 3), "1x1"]
# Blocks 1…10: (C_in, C_out, temporal stride).
BLOCKS = [
    (3, 96, 1),
    (96, 96, 1),
    (96, 96, 1),
    (96, 96, 1),
    (96, 192, 2),
    (192, 192, 1),
    (192, 192, 1),
    (192, 384, 2),
    (384, 384, 1),
    (384, 384, 1),
]
PROTOTYPES = 400
PRN_DROPOUT = 0.1
CSC_CHANNELS = 256
CSC_TEMPERATURE = 0.125
CSC_MOMENTUM = 0.9
CSC_WEIGHT = 0.2
FC_INIT_STD = 0.01
# (classes, joints, persons)
DATASETS = {
    "ntu60": (60, 25, 2),
    "ntu120": (120, 25, 2),
    "ucla": (10, 20, 1),
}


class UnitGCN(nn.Module):
    def __init__(self, c_in, c_out, joints, generator=None):
        super().__init__()
        self.mid = int(MID_RATIO * c_out)
        inner = self.mid * SUBSETS
        a = torch.randn(SUBSETS, joints, joints, generator=generator) * A_STD + A_OFFSET
        self.A = nn.Parameter(a)
        self.pre = nn.Sequential(nn.Conv2d(c_in, inner, 1), nn.BatchNorm2d(inner), nn.ReLU())
        self.post = nn.Conv2d(inner, c_out, 1)
        self.alpha = nn.Parameter(torch.zeros(SUBSETS))
        self.beta = nn.Parameter(torch.zeros(SUBSETS))
        self.conv1 = nn.Conv2d(c_in, inner, 1)
        self.conv2 = nn.Conv2d(c_in, inner, 1)
        self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out)) if c_in != c_out else None
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        n, _, t, v = x.shape
        res = x if self.down is None else self.down(x)
        pre = self.pre(x).reshape(n, SUBSETS, self.mid, t, v)
        x1 = self.conv1(x).reshape(n, SUBSETS, self.mid, t, v).mean(3)  # (n, K, c, V)
        x2 = self.conv2(x).reshape(n, SUBSETS, self.mid, t, v).mean(3)
        inter = torch.tanh(x1[..., :, None] - x2[..., None, :]) * self.alpha[0]  # (n, K, c, V, V)
        intra = torch.softmax(torch.einsum("nkcv,nkcw->nkvw", x1, x2), dim=-2)[:, :, None] * self.beta[0]
        a = self.A[None, :, None] + inter + intra
        out = torch.einsum("nkctv,nkcvw->nkctw", pre, a).reshape(n, -1, t, v)
        out = self.post(out)
        graph = (inter + intra).reshape(n, -1, v, v)
        return torch.relu(self.bn(out) + res), graph


class UnitTCN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride=1, dilation=1, norm=True):
        super().__init__()
        pad = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(c_in, c_out, (kernel, 1), padding=(pad, 0), stride=(stride, 1), dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(c_out) if norm else nn.Identity()

    def forward(self, x):
        return self.bn(self.conv(x))


class MSTCN(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.add_coeff = nn.Parameter(torch.zeros(TCN_JOINTS))
        mid = c_out // len(MS_CFG)
        rem = c_out - mid * (len(MS_CFG) - 1)
        branches = []
        for i, cfg in enumerate(MS_CFG):
            c = rem if i == 0 else mid
            if cfg == "1x1":
                branches.append(nn.Conv2d(c_in, c, 1, stride=(stride, 1)))
            elif cfg[0] == "max":
                branches.append(
                    nn.Sequential(
                        nn.Conv2d(c_in, c, 1),
                        nn.BatchNorm2d(c),
                        nn.ReLU(),
                        nn.MaxPool2d((cfg[1], 1), stride=(stride, 1), padding=(1, 0)),
                    )
                )
            else:
                kernel, dilation = cfg
                branches.append(
                    nn.Sequential(
                        nn.Conv2d(c_in, c, 1),
                        nn.BatchNorm2d(c),
                        nn.ReLU(),
                        UnitTCN(c, c, kernel, stride, dilation, norm=False),
                    )
                )
        self.branches = nn.ModuleList(branches)
        tin = mid * (len(MS_CFG) - 1) + rem
        self.transform = nn.Sequential(nn.BatchNorm2d(tin), nn.ReLU(), nn.Conv2d(tin, c_out, 1))
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        v = x.shape[-1]
        x = torch.cat([x, x.mean(-1, keepdim=True)], -1)
        out = torch.cat([branch(x) for branch in self.branches], 1)
        feat = out[..., :v] + out[..., v:] * self.add_coeff[:v]
        return self.bn(self.transform(feat))


class GCNBlock(nn.Module):
    def __init__(self, c_in, c_out, joints, stride, residual, generator=None):
        super().__init__()
        self.gcn = UnitGCN(c_in, c_out, joints, generator)
        self.tcn = MSTCN(c_out, c_out, stride)
        self.has_residual = residual
        self.shortcut = residual and c_in == c_out and stride == 1
        if residual and not self.shortcut:
            self.residual = UnitTCN(c_in, c_out, 1, stride)

    def forward(self, x):
        if not self.has_residual:
            res = 0
        elif self.shortcut:
            res = x
        else:
            res = self.residual(x)
        x, graph = self.gcn(x)
        return torch.relu(self.tcn(x) + res), graph


class PRN(nn.Module):
    def __init__(self, dim, prototypes):
        super().__init__()
        self.query_matrix = nn.Linear(dim, prototypes, bias=False)
        self.memory_matrix = nn.Linear(prototypes, dim, bias=False)

    def forward(self, x, keep):
        z = self.memory_matrix(torch.softmax(self.query_matrix(x), dim=-1))
        if not self.training:
            return z
        if keep is None:
            return F.dropout(z, PRN_DROPOUT, training=True)
        return z * keep.to(z.dtype) / (1.0 - PRN_DROPOUT)


class Backbone(nn.Module):
    def __init__(self, joints, generator=None):
        super().__init__()
        self.data_bn = nn.BatchNorm1d(3 * joints)
        self.gcn = nn.ModuleList(
            GCNBlock(c_in, c_out, joints, stride, residual=i > 0, generator=generator)
            for i, (c_in, c_out, stride) in enumerate(BLOCKS)
        )
        c = BLOCKS[-1][1]
        self.post = nn.Conv2d(c, c, 1)
        self.bn = nn.BatchNorm2d(c)
        self.prn = PRN(c, PROTOTYPES)

    def forward(self, x, keep=None):
        n, m, t, v, c = x.shape
        x = x.permute(0, 1, 3, 4, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x).reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for block in self.gcn:
            x, graph = block(x)
        x = x.reshape((n, m) + x.shape[1:])
        width = graph.shape[1]
        graph = graph.reshape(n, m, width, v * v).mean(1)  # (N, C, V·V)
        z = self.prn(graph.transpose(1, 2), keep)  # (N, V·V, C)
        re_graph = self.post(z.transpose(1, 2).reshape(n, width, v, v))
        return x, torch.relu(self.bn(re_graph)).mean(1).reshape(n, v * v)


class CSCLoss(nn.Module):
    def __init__(self, classes, channels):
        super().__init__()
        self.classes = classes
        self.avg_f = init_memory(classes)
        self.cl_fc = nn.Linear(channels, CSC_CHANNELS)

    def forward(self, graph, label, logits):
        f = self.cl_fc(graph)  # (N, 256)
        classes = self.classes
        lbl_one = F.one_hot(label, classes).to(f.dtype)
        pred_one = F.one_hot(logits.argmax(1), classes).to(f.dtype)
        mask = lbl_one * pred_one * (torch.softmax(logits, 1) > 0).to(f.dtype)  # (N, K)
        mask_sum = mask.sum(0, keepdim=True)
        f_mask = (f.T @ mask) / (mask_sum + 1e-12)  # (256, K)
        keep = torch.where(mask_sum > 1e-8, CSC_MOMENTUM, 1.0).to(f.dtype)
        f_mem = self.avg_f.detach().to(f) * keep + (1 - keep) * f_mask
        self.avg_f = f_mem.detach()
        f_n = f / (f.norm(dim=1, keepdim=True) + 1e-12)
        mem_n = f_mem.T / (f_mem.T.norm(dim=-1, keepdim=True) + 1e-12)  # (K, 256)
        score = (mem_n @ f_n.T / CSC_TEMPERATURE).T  # (N, K)
        return F.cross_entropy(score, label, reduction="none").mean()


class Head(nn.Module):
    def __init__(self, classes, joints, channels):
        super().__init__()
        self.csc_loss = CSCLoss(classes, joints * joints)
        self.fc_cls = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc_cls(x.mean(dim=(3, 4)).mean(1))


class ProtoGCN(nn.Module):
    """The recognizer: state-dict keys `backbone.…` and `cls_head.…` as officially."""

    def __init__(self, classes, joints, persons, generator=None):
        super().__init__()
        self.num_class, self.num_point, self.num_person = classes, joints, persons
        self.backbone = Backbone(joints, generator)
        self.cls_head = Head(classes, joints, BLOCKS[-1][1])
        nn.init.normal_(self.cls_head.fc_cls.weight, 0.0, FC_INIT_STD)
        nn.init.zeros_(self.cls_head.fc_cls.bias)

    def forward(self, x, keep=None):
        """x (N, 3, T, V, M): logits (N, K) and the reconstructed graph (N, V·V)."""
        features, graph = self.backbone(x.permute(0, 4, 2, 3, 1), keep)
        return self.cls_head(features), graph


def init_memory(classes, generator=None, dtype=torch.float32):
    """The CSC class memory (256, K), standard normal as officially."""
    return torch.randn(CSC_CHANNELS, classes, generator=generator, dtype=dtype)


def losses(model, logits, graph, y):
    """`BaseHead.loss`: {"ce", "csc", "total" = ce + 0.2 · csc}; updates the model's memory."""
    ce = F.cross_entropy(logits, y)
    csc = model.cls_head.csc_loss(graph, y.detach(), logits.detach())
    return {"ce": ce, "csc": csc, "total": ce + CSC_WEIGHT * csc}


def build(dataset, generator=None):
    """The model of one dataset: 'ntu60', 'ntu120' or 'ucla'."""
    return ProtoGCN(*DATASETS[dataset], generator=generator)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    for dataset in DATASETS:
        print(f"protogcn {dataset}: {parameter_count(build(dataset)):,} parameters")
