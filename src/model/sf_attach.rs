//! SF-Head on a backbone: one head per chosen block, reading that block's graph-convolution
//! output, as a training-only tap or in-line (`Placement`), and the heads' losses combined. Every
//! network declares its heads after its own tensors, as `sf_heads.{i}.<key>`.

use super::LossTerm;
use super::ctrgcn::{Placement, SfHeadOptions};
use super::init::Init;
use super::sf_head::{Combine, SfFeatures, SfHead};
use crate::engine::{Graph, TensorId};
use crate::ops::add::add;
use crate::ops::batch_norm::Mode;
use crate::ops::mul::scale;

/// The heads of a network and the block each is attached to.
pub struct AttachedHeads {
    options: Option<SfHeadOptions>,
    heads: Vec<SfHead>,
    /// Per block (0-based), the index of its head.
    at: Vec<Option<usize>>,
}

impl AttachedHeads {
    /// The heads `options` ask for on blocks of the output `widths` (l1 first); none without
    /// options.
    pub fn new(
        g: &mut Graph,
        options: Option<&SfHeadOptions>,
        widths: &[usize],
        init: &mut Init,
    ) -> Self {
        let mut heads = Vec::new();
        let mut at = vec![None; widths.len()];
        for (i, &b) in options.map_or(&[][..], |o| &o.blocks).iter().enumerate() {
            let groups = options.map_or(0, |o| o.groups);
            let prefix = format!("sf_heads.{i}");
            let head = SfHead::new(g, &prefix, &format!("l{b}"), widths[b - 1], groups, init)
                .unwrap_or_else(|e| panic!("{e}"));
            at[b - 1] = Some(heads.len());
            heads.push(head);
        }
        Self {
            options: options.cloned(),
            heads,
            at,
        }
    }

    /// What block `block` (0-based) passes on from its graph-convolution output `y`: the head's
    /// output where it is in-line, `y` otherwise. In training, and in-line always, the head runs
    /// and its features are kept for the losses.
    pub fn apply(
        &self,
        g: &mut Graph,
        block: usize,
        y: TensorId,
        mode: Mode,
        features: &mut Vec<SfFeatures>,
    ) -> TensorId {
        let (Some(i), Some(options)) = (self.at[block], &self.options) else {
            return y;
        };
        let inline = options.placement == Placement::Inline;
        if !(inline || mode == Mode::Train) {
            return y;
        }
        let (out, f) = self.heads[i].forward(g, y, mode);
        features.push(f);
        if inline { out } else { y }
    }

    /// In training, F-CL (`con`) and F-RL (`red`) of every head, summed or averaged over the
    /// heads and weighted as the options say; nothing otherwise.
    pub fn losses(
        &self,
        g: &mut Graph,
        features: &[SfFeatures],
        samples: usize,
        persons: usize,
        mode: Mode,
    ) -> Vec<LossTerm> {
        let Some(options) = &self.options else {
            return Vec::new();
        };
        if mode != Mode::Train {
            return Vec::new();
        }
        let loss = &options.loss;
        let mut total: Option<(TensorId, TensorId)> = None;
        for f in features {
            let head = loss.losses(g, f, samples, persons);
            total = Some(match total {
                None => (head.con, head.red),
                Some((con, red)) => (add(g, con, head.con), add(g, red, head.red)),
            });
        }
        let Some((mut con, mut red)) = total else {
            return Vec::new();
        };
        if loss.heads == Combine::Mean {
            let share = 1.0 / features.len() as f32;
            con = scale(g, con, share);
            red = scale(g, red, share);
        }
        vec![
            LossTerm {
                name: "con",
                value: con,
                weight: loss.lambda_con,
            },
            LossTerm {
                name: "red",
                value: red,
                weight: loss.lambda_red,
            },
        ]
    }
}
