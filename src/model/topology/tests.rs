use super::*;

/// Datasets number joints from 1; the API from 0.
fn j(n: usize) -> usize {
    n - 1
}

fn ntu() -> Topology {
    Topology::shipped("ntu25").unwrap()
}

fn ucla() -> Topology {
    Topology::shipped("ucla20").unwrap()
}

/// The (receiver, sender, value) entries of one subset that are not zero, 1-based.
fn nonzero(a: &SpatialAdjacency, subset: usize) -> Vec<(usize, usize, f32)> {
    let v = a.shape()[1];
    let mut out = Vec::new();
    for u in 0..v {
        for s in 0..v {
            let x = a.get(subset, u, s);
            if x != 0.0 {
                out.push((u + 1, s + 1, x));
            }
        }
    }
    out
}

#[test]
fn shipped_files_have_the_documented_sizes() {
    let ntu = ntu();
    assert_eq!((ntu.name(), ntu.joint_count()), ("ntu25", 25));
    assert_eq!(ntu.spatial_tree().root(), j(21));
    assert_eq!(ntu.spatial_tree().edges().len(), 24);
    assert_eq!(ntu.joint_names()[j(21)], "spine shoulder");
    let ucla = ucla();
    assert_eq!((ucla.name(), ucla.joint_count()), ("ucla20", 20));
    assert_eq!(ucla.spatial_tree().root(), j(3));
    assert_eq!(ucla.spatial_tree().edges().len(), 19);
    assert!(ucla.kth_mode_tree().is_none());
}

#[test]
fn unknown_shipped_name_lists_the_shipped_ones() {
    let e = Topology::shipped("kinect32").unwrap_err();
    assert_eq!(e.path, Path::new("graph/kinect32.toml"));
    assert!(e.message.contains("ntu25, ucla20"), "{e}");
}

#[test]
fn from_file_reads_the_same_topology_as_the_embedded_copy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("graph/ntu25.toml");
    assert_eq!(Topology::from_file(&path).unwrap(), ntu());
}

#[test]
fn missing_file_is_named_in_the_error() {
    let e = Topology::from_file("no/such/skeleton.toml").unwrap_err();
    assert_eq!(e.path, Path::new("no/such/skeleton.toml"));
    assert_eq!(e.place, Place::File);
}

#[test]
fn ntu_identity_subset_is_the_identity() {
    let a = ntu().spatial_adjacency();
    assert_eq!(a.shape(), [3, 25, 25]);
    let expected: Vec<_> = (1..=25).map(|u| (u, u, 1.0)).collect();
    assert_eq!(nonzero(&a, 0), expected);
}

#[test]
fn ntu_inward_subset_is_binary_with_four_children_on_row_21() {
    let a = ntu().spatial_adjacency();
    let entries = nonzero(&a, 1);
    assert_eq!(entries.len(), 24);
    assert!(entries.iter().all(|&(_, _, x)| x == 1.0));
    let row21: Vec<usize> = entries.iter().filter(|e| e.0 == 21).map(|e| e.1).collect();
    assert_eq!(row21, [2, 3, 5, 9]);
    assert!(
        entries.iter().all(|&(_, sender, _)| sender != 21),
        "column 21 must be zero"
    );
    // Row u sums u's children: joint 1 (spine base) receives from hips 13 and 17.
    assert_eq!(a.get(1, j(1), j(13)), 1.0);
    assert_eq!(a.get(1, j(1), j(17)), 1.0);
}

#[test]
fn ntu_outward_subset_has_exactly_the_known_non_unit_entries() {
    let a = ntu().spatial_adjacency();
    let entries = nonzero(&a, 2);
    assert_eq!(entries.len(), 24);
    let non_unit: Vec<_> = entries.iter().filter(|e| e.2 != 1.0).copied().collect();
    assert_eq!(
        non_unit,
        [
            (2, 21, 0.25),
            (3, 21, 0.25),
            (5, 21, 0.25),
            (9, 21, 0.25),
            (13, 1, 0.5),
            (17, 1, 0.5),
        ]
    );
    for leaf in [4, 16, 20, 22, 24] {
        assert!(
            (0..25).all(|u| a.get(2, u, j(leaf)) == 0.0),
            "leaf column {leaf} must be zero"
        );
    }
    // Row u takes its parent's feature: the head (4) reads the neck (3).
    assert_eq!(a.get(2, j(4), j(3)), 1.0);
}

#[test]
fn ucla_adjacency_follows_the_same_rules() {
    let a = ucla().spatial_adjacency();
    assert_eq!(a.shape(), [3, 20, 20]);
    let inward = nonzero(&a, 1);
    assert_eq!(inward.len(), 19);
    assert!(inward.iter().all(|&(_, _, x)| x == 1.0));
    let row3: Vec<usize> = inward.iter().filter(|e| e.0 == 3).map(|e| e.1).collect();
    assert_eq!(row3, [2, 4, 5, 9]);
    let outward = nonzero(&a, 2);
    let non_unit: Vec<_> = outward.iter().filter(|e| e.2 != 1.0).copied().collect();
    assert_eq!(
        non_unit,
        [
            (2, 3, 0.25),
            (4, 3, 0.25),
            (5, 3, 0.25),
            (9, 3, 0.25),
            (13, 1, 0.5),
            (17, 1, 0.5),
        ]
    );
    for leaf in [4, 8, 12, 16, 20] {
        assert!((0..20).all(|u| a.get(2, u, j(leaf)) == 0.0), "leaf {leaf}");
    }
}

#[test]
fn normalised_columns_sum_to_one_or_zero() {
    for topology in [ntu(), ucla()] {
        let a = topology.spatial_adjacency();
        let v = topology.joint_count();
        for subset in 0..3 {
            for col in 0..v {
                let sum: f32 = (0..v).map(|u| a.get(subset, u, col)).sum();
                assert!(
                    sum == 0.0 || sum == 1.0,
                    "{} subset {subset} column {col}: {sum}",
                    topology.name()
                );
            }
        }
    }
}

#[test]
fn bone_pairs_are_the_inward_edges_plus_the_root_onto_itself() {
    for topology in [ntu(), ucla()] {
        let tree = topology.spatial_tree();
        let mut expected: Vec<_> = tree.edges().to_vec();
        expected.push((tree.root(), tree.root()));
        expected.sort();
        let mut pairs = topology.bone_pairs().to_vec();
        pairs.sort();
        assert_eq!(pairs, expected, "{}", topology.name());
    }
    // The feeder's order is kept: NTU's (21, 21) sits between (22, 23) and (23, 8).
    assert_eq!(ntu().bone_pairs()[21], (j(21), j(21)));
}

#[test]
fn ntu_kth_mode_tree_has_infogcn_depths() {
    let topology = ntu();
    let tree = topology.kth_mode_tree().unwrap();
    assert_eq!(tree.root(), j(2));
    let depths: [(usize, &[usize]); 8] = [
        (0, &[2]),
        (1, &[1, 21]),
        (2, &[3, 5, 9, 13, 17]),
        (3, &[4, 6, 10, 14, 18]),
        (4, &[7, 11, 15, 19]),
        (5, &[8, 12, 16, 20]),
        (6, &[23, 25]),
        (7, &[22, 24]),
    ];
    let mut covered = 0;
    for (depth, joints) in depths {
        for &joint in joints {
            assert_eq!(tree.depth(j(joint)), depth, "joint {joint}");
            covered += 1;
        }
    }
    assert_eq!(covered, 25);
    // k = 8 reaches past every joint, so the 8th-mode stream is the raw joints.
    assert!((0..25).all(|v| tree.ancestor(v, 8).is_none()));
    assert_eq!(tree.ancestor(j(22), 7), Some(j(2)));
    assert_eq!(tree.ancestor(j(21), 1), Some(j(2)));
    assert_eq!(tree.ancestor(j(4), 2), Some(j(21)));
    assert_eq!(tree.ancestor(j(4), 0), Some(j(4)));
    assert_eq!(tree.parent(j(2)), None);
}

/// A valid 4-joint chain 1 → 2 → 3 → 4 (root 4); tests break one line at a time.
const CHAIN: &str = r#"name = "chain"
joints = ["a", "b", "c", "d"]
root = 4
inward = [
    [1, 2],
    [2, 3],
    [3, 4],
]
bone_pairs = [[1, 2], [2, 3], [3, 4], [4, 4]]
"#;

fn parse_err(text: &str) -> DataError {
    Topology::parse(text, "user/chain.toml").unwrap_err()
}

#[test]
fn chain_is_valid() {
    let t = Topology::parse(CHAIN, "user/chain.toml").unwrap();
    assert_eq!(t.joint_count(), 4);
    assert_eq!(t.spatial_tree().depth(0), 3);
    // Each parent has one child, so both directed subsets are binary.
    let a = t.spatial_adjacency();
    assert_eq!(a.get(2, 0, 1), 1.0);
    assert_eq!(a.get(1, 1, 0), 1.0);
}

#[test]
fn joint_out_of_range_names_file_line_and_joint() {
    let e = parse_err(&CHAIN.replace("[2, 3],", "[2, 5],"));
    assert_eq!(e.path, Path::new("user/chain.toml"));
    assert_eq!(e.place, Place::Line(6));
    assert_eq!(
        e.message,
        "inward: edge [2, 5]: joint 5 is out of range 1..=4"
    );
    let e = parse_err(&CHAIN.replace("[2, 3],", "[0, 3],"));
    assert!(e.message.contains("joint 0 is out of range"), "{e}");
    let e = parse_err(&CHAIN.replace("root = 4", "root = 9"));
    assert_eq!(
        (e.place, e.message.as_str()),
        (Place::Line(3), "root: joint 9 is out of range 1..=4")
    );
}

#[test]
fn duplicate_edge_is_rejected() {
    let e = parse_err(&CHAIN.replace("[3, 4],", "[3, 4],\n    [3, 4],"));
    assert_eq!(e.place, Place::Line(8));
    assert_eq!(e.message, "inward: edge [3, 4]: duplicate edge");
}

#[test]
fn joint_with_two_parents_is_rejected() {
    let e = parse_err(&CHAIN.replace("[3, 4],", "[3, 4],\n    [1, 3],"));
    assert_eq!(e.place, Place::Line(8));
    assert_eq!(
        e.message,
        "inward: edge [1, 3]: joint 1 has two parents, 2 and 3"
    );
}

#[test]
fn self_loop_and_parent_of_root_are_rejected() {
    let e = parse_err(&CHAIN.replace("[2, 3],", "[2, 2],"));
    assert!(e.message.ends_with("joint 2 is its own parent"), "{e}");
    let e = parse_err(&CHAIN.replace("[3, 4],", "[3, 4],\n    [4, 1],"));
    assert!(
        e.message
            .ends_with("joint 4 is the root and cannot have a parent"),
        "{e}"
    );
}

#[test]
fn joint_without_parent_and_cycles_are_rejected() {
    let e = parse_err(&CHAIN.replace("    [2, 3],\n", ""));
    assert_eq!(e.place, Place::Key("inward".into()));
    assert_eq!(
        e.message,
        "joint 2 has no parent; every joint but the root 4 needs one"
    );
    // 1 → 2 → 3 → 1 never reaches the root 4 (which then has no child).
    let cyclic = CHAIN.replace("[3, 4],", "[3, 1],");
    let e = parse_err(&cyclic);
    assert_eq!(
        e.message,
        "joint 1 lies on a cycle that never reaches the root 4"
    );
}

#[test]
fn bone_pair_faults_are_rejected() {
    let e = parse_err(&CHAIN.replace("[4, 4]]", "[4, 4], [2, 1]]"));
    assert_eq!(e.place, Place::Line(9));
    assert_eq!(
        e.message,
        "bone_pairs: pair [2, 1]: joint 2 already has a bone"
    );
    let e = parse_err(&CHAIN.replace(", [4, 4]]", "]"));
    assert_eq!(e.place, Place::Key("bone_pairs".into()));
    assert_eq!(e.message, "joint 4 has no bone pair; every joint needs one");
    let e = parse_err(&CHAIN.replace("[4, 4]]", "[4, 7]]"));
    assert!(e.message.contains("joint 7 is out of range"), "{e}");
}

#[test]
fn joint_name_faults_are_rejected() {
    let e = parse_err(&CHAIN.replace(r#""c", "d""#, r#""c", "a""#));
    assert_eq!(e.place, Place::Line(2));
    assert_eq!(e.message, "joints: joint 4 repeats the name `a` of joint 1");
    let e = parse_err(&CHAIN.replace(r#""b""#, r#"" ""#));
    assert_eq!(e.message, "joints: joint 2 has no name");
    let e = parse_err(&CHAIN.replace(r#"["a", "b", "c", "d"]"#, "[]"));
    assert_eq!(e.place, Place::Key("joints".into()));
}

#[test]
fn kth_mode_tree_is_validated_like_the_spatial_one() {
    let with_tree = format!("{CHAIN}\n[kth_mode]\nroot = 1\nparents = [[2, 1], [3, 2], [4, 3]]\n");
    let t = Topology::parse(&with_tree, "user/chain.toml").unwrap();
    assert_eq!(t.kth_mode_tree().unwrap().ancestor(3, 3), Some(0));
    let e = parse_err(&with_tree.replace("[4, 3]]", "[4, 3], [4, 2]]"));
    assert_eq!(e.place, Place::Line(13));
    assert_eq!(
        e.message,
        "kth_mode.parents: edge [4, 2]: joint 4 has two parents, 3 and 2"
    );
}

#[test]
fn toml_faults_carry_the_line() {
    let e = parse_err(&CHAIN.replace("[2, 3],", "[2, 3, 1],"));
    assert_eq!(e.place, Place::Line(6));
    assert_eq!(
        e.message,
        "inward: expected a pair [child, parent], found 3 numbers"
    );
    let e = parse_err(&CHAIN.replace("[4, 4]]", "[4]]"));
    assert_eq!(
        e.message,
        "bone_pairs: expected a pair [v1, v2], found 1 numbers"
    );
    let e = parse_err(&CHAIN.replace("[2, 3],", "[2, -3],"));
    assert_eq!(e.place, Place::Line(6), "{e}");
    assert_eq!(
        e.message,
        "inward: edge [2, -3]: joint -3 is out of range 1..=4"
    );
    let e = parse_err(&format!("{CHAIN}roots = 2\n"));
    assert_eq!(e.place, Place::Line(10));
    assert!(e.message.contains("roots"), "{e}");
    let e = parse_err(&CHAIN.replace("root = 4\n", ""));
    assert!(e.message.contains("root"), "{e}");
}

#[test]
fn blockgcn_graph_hangs_the_hand_tips_on_the_hands() {
    let ntu = ntu();
    let graph = ntu.blockgcn().unwrap();
    assert_eq!(graph.centre, j(21));
    assert_eq!(graph.tree.parent(j(22)), Some(j(8)));
    assert_eq!(graph.tree.parent(j(23)), Some(j(8)));
    let hops = graph.tree.hop_distances();
    let at = |a: usize, b: usize| hops[j(a) * 25 + j(b)];
    // Tip to thumb of the same hand: both on joint 8. On CTR-GCN's tree the tip hangs on the thumb.
    assert_eq!(at(22, 23), 2);
    assert_eq!(ntu.spatial_tree().hop_distances()[j(22) * 25 + j(23)], 1);
    // Left hand tip to right hand tip, through both arms and the spine shoulder: 22-8-7-6-5-21-9-10-11-12-24.
    assert_eq!(at(22, 24), 10);
    assert_eq!(hops.iter().max(), Some(&11));
    assert!((0..25).all(|a| at(a + 1, a + 1) == 0));
    assert!(ucla().blockgcn().is_none());
}

#[test]
fn hdgcn_groups_are_the_hop_distances_from_the_centre_capped_at_the_last_group() {
    for name in Topology::shipped_names() {
        let topology = Topology::shipped(name).unwrap();
        assert!(
            !topology.hdgcn().is_empty(),
            "{name} has HD-GCN hierarchies"
        );
        // BlockGCN's NTU tree hangs the hand tips and thumbs from the hands, as the groups do.
        let tree = topology
            .blockgcn()
            .map_or(topology.spatial_tree(), |b| &b.tree);
        let v = topology.joint_count();
        let hops = tree.hop_distances();
        for h in topology.hdgcn() {
            let last = h.groups.len() - 1;
            for (level, group) in h.groups.iter().enumerate() {
                for &j in group {
                    assert_eq!(
                        hops[h.com * v + j].min(last),
                        level,
                        "{name} com {}: joint {}",
                        h.com + 1,
                        j + 1
                    );
                }
            }
        }
    }
}

#[test]
fn a_joint_in_two_hdgcn_groups_is_refused_with_its_line() {
    let text = include_str!("../../../graph/ucla20.toml")
        .replace("[15, 19], [16, 20]]", "[15, 19], [16, 20, 19]]");
    let err = Topology::parse(&text, "ucla20.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("joint 19 is in two groups"), "{err}");
    assert!(err.contains("line"), "{err}");
}
