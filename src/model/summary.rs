//! Parameter counts of a model's graph, grouped by the leading components of their names
//! (`l5.gcn1.convs.0.conv1.weight` counts toward `l5` and its part `gcn1`,
//! `backbone.gcn.4.tcn.add_coeff` toward `gcn.4` and its part `tcn`).

use std::fmt;

use super::ctrgcn::{CtrGcnConfig, Placement};
use super::network::Network;
use crate::engine::{Graph, Role};

/// Parameters of one top-level part of a model, and of its sub-parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartCount {
    pub name: String,
    pub parameters: usize,
    pub parts: Vec<(String, usize)>,
}

/// Learnable values per top-level name component, in declaration order, with the second name
/// component as sub-parts when a part has more than one.
pub fn parameter_counts(g: &Graph) -> Vec<PartCount> {
    let mut out: Vec<PartCount> = Vec::new();
    for (_, t) in g.tensors().filter(|(_, t)| t.role == Role::Parameter) {
        let (top, sub) = part_names(&t.name);
        let n = t.numel();
        if out.last().is_none_or(|p| p.name != top) {
            out.push(PartCount {
                name: top.clone(),
                parameters: 0,
                parts: Vec::new(),
            });
        }
        let part = out.last_mut().expect("just pushed");
        part.parameters += n;
        match part.parts.last_mut() {
            Some((name, count)) if *name == sub => *count += n,
            _ => part.parts.push((sub, n)),
        }
    }
    for part in &mut out {
        if part.parts.len() < 2 {
            part.parts.clear();
        }
    }
    out
}

/// The part and sub-part a parameter counts toward: its first two name components, where pyskl's
/// `backbone.` prefix is dropped and a module list's entry (`gcn.4`) is one component.
fn part_names(name: &str) -> (String, String) {
    let mut components: Vec<&str> = name.split('.').collect();
    if components.len() > 2 && components[0] == "backbone" {
        components.remove(0);
    }
    let at = |i: usize| components.get(i).copied().unwrap_or_default().to_string();
    if components.len() > 2 && components[1].parse::<usize>().is_ok() {
        return (format!("{}.{}", components[0], components[1]), at(2));
    }
    (at(0), at(1))
}

/// Values held by non-learnable persistent tensors (BN running statistics and counters).
pub fn buffer_values(g: &Graph) -> usize {
    g.tensors()
        .filter(|(_, t)| t.role == Role::State)
        .map(|(_, t)| t.numel())
        .sum()
}

/// One SF-Head instance's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadCount {
    /// `sf_heads.{i}`.
    pub prefix: String,
    /// The block it reads (1-based).
    pub block: usize,
    pub channels: usize,
    /// q, channels per chunk.
    pub chunk: usize,
    pub parameters: usize,
    /// Without the official module's unused `bn`.
    pub used: usize,
}

/// Parameters of each `sf_heads.{i}` of a graph; `blocks` are the blocks the heads attach to,
/// in head order, and `groups` their channel groups G.
pub fn sf_head_counts(g: &Graph, blocks: &[usize], groups: usize) -> Vec<HeadCount> {
    blocks
        .iter()
        .enumerate()
        .map(|(i, &block)| {
            let prefix = format!("sf_heads.{i}");
            let (mut parameters, mut unused, mut chunk) = (0, 0, 0);
            for (_, t) in g.tensors().filter(|(_, t)| t.role == Role::Parameter) {
                let Some(key) = t.name.strip_prefix(&format!("{prefix}.")) else {
                    continue;
                };
                parameters += t.numel();
                if key.starts_with("bn.") {
                    unused += t.numel();
                }
                if key == "gn.weight" {
                    chunk = t.numel();
                }
            }
            HeadCount {
                prefix,
                block,
                channels: chunk * 4 * groups,
                chunk,
                parameters,
                used: parameters - unused,
            }
        })
        .collect()
}

/// What `sfhead info model` prints: a model's parameter counts in total, per block and per
/// SF-Head instance.
pub struct ModelDescription {
    pub config: CtrGcnConfig,
    /// The benchmark's name (`ntu60`, `ucla`, …).
    pub dataset: String,
    pub parameters: usize,
    pub buffer_values: usize,
    pub parts: Vec<PartCount>,
    pub heads: Vec<HeadCount>,
}

/// Builds the network of `config` (no GPU needed) and counts its parameters.
pub fn describe(config: CtrGcnConfig, dataset: &str) -> ModelDescription {
    let mut g = Graph::new();
    Network::new(&mut g, config.clone(), 0);
    let parts = parameter_counts(&g);
    let heads = config
        .sf_head
        .as_ref()
        .map_or_else(Vec::new, |o| sf_head_counts(&g, &o.blocks, o.groups));
    ModelDescription {
        parameters: parts.iter().map(|c| c.parameters).sum(),
        buffer_values: buffer_values(&g),
        parts,
        heads,
        dataset: dataset.to_string(),
        config,
    }
}

impl fmt::Display for ModelDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let with = match &c.sf_head {
            None => "",
            Some(o) if o.placement == Placement::Tap => " + SF-Head (tap)",
            Some(_) => " + SF-Head (in-line)",
        };
        writeln!(
            f,
            "{}{with} for {} (V = {}, M = {}, K = {}): {} parameters, {} buffer values",
            c.backbone.title(),
            self.dataset,
            c.joints(),
            c.persons,
            c.classes,
            self.parameters,
            self.buffer_values
        )?;
        let parts: Vec<&PartCount> = self.parts.iter().filter(|p| p.name != "sf_heads").collect();
        let width = parts.iter().map(|p| p.name.len()).max().unwrap_or(0).max(8);
        for part in parts {
            let detail: Vec<String> = part.parts.iter().map(|(n, c)| format!("{n} {c}")).collect();
            writeln!(
                f,
                "  {:<width$} {:>9}   {}",
                part.name,
                part.parameters,
                detail.join(", ")
            )?;
        }
        if c.sf_head.is_some() {
            let sum: usize = self.heads.iter().map(|r| r.parameters).sum();
            writeln!(f, "  SF-Head: {} heads, {sum} parameters", self.heads.len())?;
            for r in &self.heads {
                writeln!(
                    f,
                    "    {:<12} on l{:<2} C = {:<3} q = {}: {:>4} parameters ({} used by the forward)",
                    r.prefix, r.block, r.channels, r.chunk, r.parameters, r.used
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_group_by_the_leading_name_components() {
        let mut g = Graph::new();
        g.parameter("a.x.w", &[2, 3], vec![0.0; 6]);
        g.parameter("a.y.w", &[4], vec![0.0; 4]);
        g.state("a.y.running_mean", &[4], vec![0.0; 4]);
        g.parameter("b.w", &[5], vec![0.0; 5]);
        let counts = parameter_counts(&g);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].parameters, 10);
        assert_eq!(counts[0].parts, vec![("x".into(), 6), ("y".into(), 4)]);
        assert_eq!(counts[1].parameters, 5);
        assert!(counts[1].parts.is_empty());
        assert_eq!(buffer_values(&g), 4);
    }
}
