//! The persistent tensors of the network a configuration builds, under their PyTorch keys, read
//! from its graph: no GPU is needed to know what a state dict must hold.

use crate::engine::{Data, Graph};
use crate::model::ctrgcn::{Backbone, CtrGcnConfig, Placement};
use crate::model::network::Network;
use crate::model::{hdgcn, infogcn, protogcn};

/// Prefix of the SF-Head tensors in a state dict.
pub const SF_HEADS_PREFIX: &str = "sf_heads.";

/// One state-dict entry of the model.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// The engine's shape; a BN batch counter, a scalar in PyTorch, is one value here.
    pub shape: Vec<usize>,
    /// The initial values the configuration's seed gives.
    pub init: Vec<f32>,
}

impl Entry {
    /// PyTorch keeps BN batch counters as int64 scalars.
    pub fn is_counter(&self) -> bool {
        self.key.ends_with("num_batches_tracked")
    }

    pub fn is_sf_head(&self) -> bool {
        self.key.starts_with(SF_HEADS_PREFIX)
    }

    /// A buffer the official model keeps outside its state dict (InfoGCN's class prior,
    /// ProtoGCN's class memory): not exported, and rebuilt from the seed when an imported file
    /// lacks it.
    pub fn is_outside_state_dict(&self) -> bool {
        self.key == infogcn::Z_PRIOR || self.key == protogcn::CLASS_MEMORY
    }
}

/// Every parameter and buffer of the network under `config`, in state-dict order, initialised from
/// `seed` as training would start.
pub fn entries(config: &CtrGcnConfig, seed: u64) -> Vec<Entry> {
    let mut g = Graph::new();
    Network::new(&mut g, config.clone(), seed);
    g.tensors()
        .filter(|(_, t)| t.role.is_stored())
        .map(|(_, t)| Entry {
            key: t.name.clone(),
            shape: t.shape.clone(),
            init: match &t.init {
                Some(Data::F32(values)) => values.clone(),
                _ => vec![0.0; t.numel()],
            },
        })
        .collect()
}

/// Second keys the official state dict gives some of the entries (HD-GCN's `conv_d.*`), as
/// (alias, key) pairs: exported as copies, and on import accepted where they equal the original.
pub fn aliases(config: &CtrGcnConfig, entries: &[Entry]) -> Vec<(String, String)> {
    if config.backbone != Backbone::Hdgcn {
        return Vec::new();
    }
    let levels = config.hierarchy().groups.len() - 1;
    entries
        .iter()
        .filter_map(|e| hdgcn::alias_of(&e.key, levels).map(|alias| (alias, e.key.clone())))
        .collect()
}

/// Whether SF-Head is attached as a training-only tap, whose heads a PyTorch backbone lacks.
pub fn has_tap_heads(config: &CtrGcnConfig) -> bool {
    config
        .sf_head
        .as_ref()
        .is_some_and(|o| o.placement == Placement::Tap)
}

/// The network in words, for reports and errors.
pub fn describe(config: &CtrGcnConfig, dataset: &str) -> String {
    let backbone = config.backbone.title();
    match &config.sf_head {
        None => format!("{backbone} for {dataset}"),
        Some(o) => {
            let placement = match o.placement {
                Placement::Tap => "tap",
                Placement::Inline => "in-line",
            };
            format!(
                "{backbone} + SF-Head for {dataset} ({placement}, blocks {}, {} groups)",
                block_list(&o.blocks),
                o.groups
            )
        }
    }
}

/// Block numbers as `1,5,8,10`.
pub fn block_list(blocks: &[usize]) -> String {
    blocks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ctrgcn::{Dataset, SfHeadOptions};

    #[test]
    fn entries_follow_the_state_dict_with_heads_after_fc() {
        let plain = entries(&Dataset::Ucla.config(), 1);
        assert_eq!(plain.len(), 822);
        assert_eq!(plain[0].key, "data_bn.weight");
        assert_eq!(plain[0].shape, [60]);
        assert!(plain[4].is_counter() && plain[4].shape == [1]);
        let tap = Dataset::Ucla
            .config()
            .with_sf_head(SfHeadOptions::default());
        let with_heads = entries(&tap, 1);
        assert_eq!(with_heads.len(), 822 + 10 * 30);
        assert!(with_heads[..822].iter().all(|e| !e.is_sf_head()));
        assert!(with_heads[822..].iter().all(Entry::is_sf_head));
        assert!(has_tap_heads(&tap) && !has_tap_heads(&Dataset::Ucla.config()));
    }
}
