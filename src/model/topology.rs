//! Skeleton topologies as data: joint names, the spatial tree, the feeder's bone pairs and the
//! optional k-th mode tree, read from the TOML files in `graph/` (format: `docs/topologies.md`).
//!
//! Files number joints from 1, as the datasets do; everything this module returns is 0-based.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{DataError, Place};

/// The topologies shipped in `graph/`, compiled into the binary.
const SHIPPED: [(&str, &str); 2] = [
    ("ntu25", include_str!("../../graph/ntu25.toml")),
    ("ucla20", include_str!("../../graph/ucla20.toml")),
];

/// Number of subsets in the spatial adjacency: self links, inward, outward.
pub const SPATIAL_SUBSETS: usize = 3;

/// A skeleton: its joints, the tree CTR-GCN's graph is built from, the feeder's bone pairs and,
/// where the file gives one, the tree of the k-th mode transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    name: String,
    joint_names: Vec<String>,
    spatial: ParentTree,
    bone_pairs: Vec<(usize, usize)>,
    kth_mode: Option<ParentTree>,
    blockgcn: Option<BlockGcnGraph>,
    hdgcn: Vec<Hierarchy>,
    flip: Option<Vec<usize>>,
}

/// One of HD-GCN's hierarchies: the joints grouped by hop distance from a centre of mass
/// (`com`), group 0 holding the centre alone. Level l of the HD-Graph links groups l and l + 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    pub com: usize,
    /// 0-based joints of each group, in file order.
    pub groups: Vec<Vec<usize>>,
}

/// BlockGCN's own graph, where a file gives one: the tree whose hop distances its units encode
/// and the joint its feeder centres every frame on.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockGcnGraph {
    pub centre: usize,
    pub tree: ParentTree,
}

/// A rooted tree over the joints: every joint but the root has exactly one parent.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentTree {
    root: usize,
    /// (child, parent) pairs in file order.
    edges: Vec<(usize, usize)>,
    parent: Vec<Option<usize>>,
}

/// The (3, V, V) stack [identity, inward, outward], row-major; rows are receivers, columns senders,
/// so a layer computes out[u] = Σ_v A[u, v]·x[v].
#[derive(Debug, Clone, PartialEq)]
pub struct SpatialAdjacency {
    joints: usize,
    values: Vec<f32>,
}

impl Topology {
    /// Names of the topologies shipped in `graph/`.
    pub fn shipped_names() -> impl Iterator<Item = &'static str> {
        SHIPPED.iter().map(|(name, _)| *name)
    }

    /// One of the shipped topologies, by file stem (`ntu25`, `ucla20`).
    pub fn shipped(name: &str) -> Result<Self, DataError> {
        let path = format!("graph/{name}.toml");
        match SHIPPED.iter().find(|(stem, _)| *stem == name) {
            Some((_, text)) => Self::parse(text, &path),
            None => Err(DataError::new(
                path,
                Place::File,
                format!(
                    "no shipped topology is named `{name}`; shipped: {}",
                    Self::shipped_names().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Reads a topology file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses and validates the text of a topology file; `path` names it in error messages.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let file: TopologyFile = toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map_or(Place::File, |span| Place::Line(line_of(text, span.start)));
            DataError::new(path, place, e.message().trim_end().to_string())
        })?;
        Checker {
            path,
            text,
            joints: file.joints.len(),
        }
        .topology(file)
    }

    /// The file's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// V, the number of joints.
    pub fn joint_count(&self) -> usize {
        self.joint_names.len()
    }

    /// Joint names in joint order.
    pub fn joint_names(&self) -> &[String] {
        &self.joint_names
    }

    /// The tree of CTR-GCN's spatial graph (`root` and `inward` in the file).
    pub fn spatial_tree(&self) -> &ParentTree {
        &self.spatial
    }

    /// The feeder's bone pairs (v1, v2), bone[v1] = x[v1] − x[v2], in file order; one per joint.
    pub fn bone_pairs(&self) -> &[(usize, usize)] {
        &self.bone_pairs
    }

    /// The tree of the k-th mode transform x′[v] = x[v] − x[k-th ancestor of v], if the file has one.
    pub fn kth_mode_tree(&self) -> Option<&ParentTree> {
        self.kth_mode.as_ref()
    }

    /// BlockGCN's graph, if the file has one.
    pub fn blockgcn(&self) -> Option<&BlockGcnGraph> {
        self.blockgcn.as_ref()
    }

    /// HD-GCN's hierarchies in file order, the first the default.
    pub fn hdgcn(&self) -> &[Hierarchy] {
        &self.hdgcn
    }

    /// The left-right mirror of Spatial_Flip, where the file gives one: joint v takes the
    /// coordinates of joint `flip[v]` (`augment.flip`).
    pub fn flip(&self) -> Option<&[usize]> {
        self.flip.as_deref()
    }

    /// HD-GCN's hierarchy around the 0-based centre of mass `com`.
    pub fn hierarchy(&self, com: usize) -> Option<&Hierarchy> {
        self.hdgcn.iter().find(|h| h.com == com)
    }

    /// CTR-GCN's spatial adjacency: A[0] = I, A[1] = inward and A[2] = outward edges, each
    /// column-normalised (A·D⁻¹, D the column sums; all-zero columns stay zero).
    pub fn spatial_adjacency(&self) -> SpatialAdjacency {
        let v = self.joint_count();
        let identity: Vec<(usize, usize)> = (0..v).map(|j| (j, j)).collect();
        let inward = self.spatial.edges.clone();
        let outward: Vec<(usize, usize)> = inward.iter().map(|&(c, p)| (p, c)).collect();
        let mut values = Vec::with_capacity(SPATIAL_SUBSETS * v * v);
        for links in [&identity, &inward, &outward] {
            values.extend(normalized_link_matrix(v, links));
        }
        SpatialAdjacency { joints: v, values }
    }
}

/// E[receiver, sender] = 1 for every (sender, receiver) link, then every column divided by its sum.
fn normalized_link_matrix(v: usize, links: &[(usize, usize)]) -> Vec<f32> {
    let mut e = vec![0.0f64; v * v];
    for &(sender, receiver) in links {
        e[receiver * v + sender] = 1.0;
    }
    for col in 0..v {
        let sum: f64 = (0..v).map(|row| e[row * v + col]).sum();
        if sum > 0.0 {
            (0..v).for_each(|row| e[row * v + col] /= sum);
        }
    }
    e.into_iter().map(|x| x as f32).collect()
}

impl ParentTree {
    /// The root joint.
    pub fn root(&self) -> usize {
        self.root
    }

    /// (child, parent) pairs in file order.
    pub fn edges(&self) -> &[(usize, usize)] {
        &self.edges
    }

    /// The parent of `joint`, `None` for the root.
    pub fn parent(&self, joint: usize) -> Option<usize> {
        self.parent[joint]
    }

    /// The k-th ancestor of `joint` (k = 0 is the joint itself), `None` when the tree is not that deep.
    pub fn ancestor(&self, joint: usize, k: usize) -> Option<usize> {
        (0..k).try_fold(joint, |j, _| self.parent[j])
    }

    /// The number of edges between every two joints, row-major (V, V), the tree's edges taken
    /// both ways.
    pub fn hop_distances(&self) -> Vec<usize> {
        let v = self.parent.len();
        let mut neighbours = vec![Vec::new(); v];
        for &(child, parent) in &self.edges {
            neighbours[child].push(parent);
            neighbours[parent].push(child);
        }
        let mut hops = vec![usize::MAX; v * v];
        for start in 0..v {
            let row = &mut hops[start * v..(start + 1) * v];
            row[start] = 0;
            let mut queue = std::collections::VecDeque::from([start]);
            while let Some(j) = queue.pop_front() {
                for &k in &neighbours[j] {
                    if row[k] == usize::MAX {
                        row[k] = row[j] + 1;
                        queue.push_back(k);
                    }
                }
            }
        }
        hops
    }

    /// Number of edges between `joint` and the root.
    pub fn depth(&self, joint: usize) -> usize {
        std::iter::successors(self.parent[joint], |&j| self.parent[j]).count()
    }
}

impl SpatialAdjacency {
    /// [3, V, V].
    pub fn shape(&self) -> [usize; 3] {
        [SPATIAL_SUBSETS, self.joints, self.joints]
    }

    /// A[subset, receiver, sender].
    pub fn get(&self, subset: usize, receiver: usize, sender: usize) -> f32 {
        self.values[(subset * self.joints + receiver) * self.joints + sender]
    }

    /// All 3·V·V values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.values
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    name: String,
    joints: Vec<Spanned<String>>,
    root: Spanned<i64>,
    inward: Vec<Spanned<Vec<i64>>>,
    bone_pairs: Vec<Spanned<Vec<i64>>>,
    kth_mode: Option<TreeFile>,
    blockgcn: Option<BlockGcnFile>,
    #[serde(default)]
    hdgcn: Vec<HierarchyFile>,
    augment: Option<AugmentFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AugmentFile {
    flip: Spanned<Vec<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HierarchyFile {
    com: Spanned<i64>,
    groups: Spanned<Vec<Vec<i64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockGcnFile {
    centre: Spanned<i64>,
    root: Spanned<i64>,
    inward: Vec<Spanned<Vec<i64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeFile {
    root: Spanned<i64>,
    parents: Vec<Spanned<Vec<i64>>>,
}

/// Validates a parsed file against its own joint count, reporting the line of each fault.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    joints: usize,
}

impl Checker<'_> {
    fn topology(&self, file: TopologyFile) -> Result<Topology, DataError> {
        let joint_names = self.joint_names(&file.joints)?;
        let spatial = self.tree("inward", &file.root, &file.inward)?;
        let bone_pairs = self.bone_pairs(&file.bone_pairs)?;
        let kth_mode = file
            .kth_mode
            .map(|tree| self.tree("kth_mode.parents", &tree.root, &tree.parents))
            .transpose()?;
        let blockgcn = file
            .blockgcn
            .map(|b| -> Result<BlockGcnGraph, DataError> {
                let centre = self.joint(*b.centre.get_ref(), b.centre.span(), "blockgcn.centre")?;
                let tree = self.tree("blockgcn.inward", &b.root, &b.inward)?;
                Ok(BlockGcnGraph { centre, tree })
            })
            .transpose()?;
        let hdgcn = file
            .hdgcn
            .iter()
            .map(|h| self.hierarchy(h))
            .collect::<Result<_, _>>()?;
        Ok(Topology {
            name: file.name,
            joint_names,
            spatial,
            bone_pairs,
            kth_mode,
            blockgcn,
            hdgcn,
            flip: file.augment.map(|a| self.flip(&a.flip)).transpose()?,
        })
    }

    /// A permutation of the joints: every joint exactly once.
    fn flip(&self, flip: &Spanned<Vec<i64>>) -> Result<Vec<usize>, DataError> {
        let what = "augment.flip";
        if flip.get_ref().len() != self.joints {
            return Err(self.at(
                flip.span(),
                format!(
                    "{what}: {} entries, expected one per joint ({})",
                    flip.get_ref().len(),
                    self.joints
                ),
            ));
        }
        let mut seen = vec![false; self.joints];
        let mut out = Vec::with_capacity(self.joints);
        for &j in flip.get_ref() {
            let joint = self.joint(j, flip.span(), what)?;
            if std::mem::replace(&mut seen[joint], true) {
                return Err(self.at(flip.span(), format!("{what}: joint {j} appears twice")));
            }
            out.push(joint);
        }
        Ok(out)
    }

    /// A hierarchy: every joint in exactly one group, at least two groups, the centre of mass
    /// alone in the first.
    fn hierarchy(&self, h: &HierarchyFile) -> Result<Hierarchy, DataError> {
        let com = self.joint(*h.com.get_ref(), h.com.span(), "hdgcn.com")?;
        let what = format!("hdgcn (com {})", com + 1);
        let fault = |message: String| self.at(h.groups.span(), format!("{what}: {message}"));
        let mut seen = vec![false; self.joints];
        let mut groups = Vec::with_capacity(h.groups.get_ref().len());
        for group in h.groups.get_ref() {
            let mut joints = Vec::with_capacity(group.len());
            for &j in group {
                let joint = self.joint(j, h.groups.span(), &what)?;
                if std::mem::replace(&mut seen[joint], true) {
                    return Err(fault(format!("joint {j} is in two groups")));
                }
                joints.push(joint);
            }
            if joints.is_empty() {
                return Err(fault("a group is empty".into()));
            }
            groups.push(joints);
        }
        if let Some(missing) = seen.iter().position(|&s| !s) {
            return Err(fault(format!("joint {} is in no group", missing + 1)));
        }
        if groups.len() < 2 || groups[0] != [com] {
            return Err(fault(format!(
                "the groups must be at least two, the first holding joint {} alone",
                com + 1
            )));
        }
        Ok(Hierarchy { com, groups })
    }

    fn joint_names(&self, joints: &[Spanned<String>]) -> Result<Vec<String>, DataError> {
        if joints.is_empty() {
            return Err(DataError::new(
                self.path,
                Place::Key("joints".into()),
                "the joint list is empty",
            ));
        }
        let mut names: Vec<String> = Vec::with_capacity(joints.len());
        for (n, joint) in joints.iter().enumerate() {
            let name = joint.get_ref().trim();
            if name.is_empty() {
                return Err(self.at(joint.span(), format!("joints: joint {} has no name", n + 1)));
            }
            if let Some(first) = names.iter().position(|other| other == name) {
                return Err(self.at(
                    joint.span(),
                    format!(
                        "joints: joint {} repeats the name `{name}` of joint {}",
                        n + 1,
                        first + 1
                    ),
                ));
            }
            names.push(name.to_string());
        }
        Ok(names)
    }

    fn tree(
        &self,
        table: &str,
        root: &Spanned<i64>,
        edges: &[Spanned<Vec<i64>>],
    ) -> Result<ParentTree, DataError> {
        let root_joint = self.joint(*root.get_ref(), root.span(), "root")?;
        let mut parent: Vec<Option<usize>> = vec![None; self.joints];
        let mut pairs = Vec::with_capacity(edges.len());
        for edge in edges {
            let (c, p) = self.pair(edge, table, "[child, parent]")?;
            let what = format!("{table}: edge [{c}, {p}]");
            let child = self.joint(c, edge.span(), &what)?;
            let par = self.joint(p, edge.span(), &what)?;
            if child == par {
                return Err(self.at(edge.span(), format!("{what}: joint {c} is its own parent")));
            }
            if child == root_joint {
                return Err(self.at(
                    edge.span(),
                    format!("{what}: joint {c} is the root and cannot have a parent"),
                ));
            }
            match parent[child] {
                Some(old) if old == par => {
                    return Err(self.at(edge.span(), format!("{what}: duplicate edge")));
                }
                Some(old) => {
                    return Err(self.at(
                        edge.span(),
                        format!("{what}: joint {c} has two parents, {} and {p}", old + 1),
                    ));
                }
                None => parent[child] = Some(par),
            }
            pairs.push((child, par));
        }
        if let Some(orphan) = (0..self.joints).find(|&j| j != root_joint && parent[j].is_none()) {
            return Err(DataError::new(
                self.path,
                Place::Key(table.into()),
                format!(
                    "joint {} has no parent; every joint but the root {} needs one",
                    orphan + 1,
                    root_joint + 1
                ),
            ));
        }
        // With one parent per joint, a walk up either reaches the root or goes round a cycle.
        for start in 0..self.joints {
            let mut joint = start;
            for _ in 0..self.joints {
                match parent[joint] {
                    Some(up) => joint = up,
                    None => break,
                }
            }
            if joint != root_joint {
                return Err(DataError::new(
                    self.path,
                    Place::Key(table.into()),
                    format!(
                        "joint {} lies on a cycle that never reaches the root {}",
                        start + 1,
                        root_joint + 1
                    ),
                ));
            }
        }
        Ok(ParentTree {
            root: root_joint,
            edges: pairs,
            parent,
        })
    }

    fn bone_pairs(&self, pairs: &[Spanned<Vec<i64>>]) -> Result<Vec<(usize, usize)>, DataError> {
        let mut seen = vec![false; self.joints];
        let mut out = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let (a, b) = self.pair(pair, "bone_pairs", "[v1, v2]")?;
            let what = format!("bone_pairs: pair [{a}, {b}]");
            let v1 = self.joint(a, pair.span(), &what)?;
            let v2 = self.joint(b, pair.span(), &what)?;
            if std::mem::replace(&mut seen[v1], true) {
                return Err(self.at(pair.span(), format!("{what}: joint {a} already has a bone")));
            }
            out.push((v1, v2));
        }
        if let Some(missing) = seen.iter().position(|&s| !s) {
            return Err(DataError::new(
                self.path,
                Place::Key("bone_pairs".into()),
                format!(
                    "joint {} has no bone pair; every joint needs one",
                    missing + 1
                ),
            ));
        }
        Ok(out)
    }

    /// The two numbers of a pair entry; the file format cannot express the length in the type.
    fn pair(
        &self,
        entry: &Spanned<Vec<i64>>,
        table: &str,
        form: &str,
    ) -> Result<(i64, i64), DataError> {
        match entry.get_ref()[..] {
            [a, b] => Ok((a, b)),
            ref other => Err(self.at(
                entry.span(),
                format!(
                    "{table}: expected a pair {form}, found {} numbers",
                    other.len()
                ),
            )),
        }
    }

    /// Converts a 1-based joint number to an index, or explains why it is out of range.
    fn joint(&self, n: i64, span: std::ops::Range<usize>, what: &str) -> Result<usize, DataError> {
        match usize::try_from(n) {
            Ok(n) if (1..=self.joints).contains(&n) => Ok(n - 1),
            _ => Err(self.at(
                span,
                format!("{what}: joint {n} is out of range 1..={}", self.joints),
            )),
        }
    }

    fn at(&self, span: std::ops::Range<usize>, message: String) -> DataError {
        DataError::new(
            self.path,
            Place::Line(line_of(self.text, span.start)),
            message,
        )
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
