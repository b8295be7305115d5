//! pyskl's annotation pickle (`ntu60_3danno.pkl`, `ntu120_3danno.pkl`, or one a user made the
//! same way): `{'split': {name: [frame_dir, ...]}, 'annotations': [{'frame_dir', 'label',
//! 'keypoint', 'total_frames', ...}, ...]}`, `keypoint` a `(M, T, V, C)` numpy array. This module
//! reads 3D skeletons (C = 3, M of 1 or 2) and converts two splits into a packed store.

use super::feed::{Pose, Precision, half_to_f32, pre_normalize};
use super::io::Bytes;
use super::{DataError, PackedMeta, PackedWriter, Part, Place};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A Python object as the pickle machine (`scores::pickle`) hands it over.
#[derive(Debug)]
pub(crate) enum Object {
    None,
    Bool,
    Int(i64),
    Float,
    Str(String),
    Bytes,
    List(Vec<Object>),
    Tuple(Vec<Object>),
    Dict(Vec<(Object, Object)>),
    Array(NdArray),
    /// A class, function or dtype, by kind (for messages).
    Opaque(&'static str),
}

/// A numpy array in C order.
#[derive(Debug)]
pub(crate) struct NdArray {
    pub shape: Vec<usize>,
    pub values: ArrayValues,
}

#[derive(Debug)]
pub(crate) enum ArrayValues {
    /// float16 bits.
    F16(Vec<u16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// Integers or bools, whose values no annotation field takes.
    Integer,
    Bool,
}

impl Object {
    fn kind(&self) -> String {
        match self {
            Object::None => "None".into(),
            Object::Bool => "a bool".into(),
            Object::Int(_) => "an int".into(),
            Object::Float => "a float".into(),
            Object::Str(_) => "a str".into(),
            Object::Bytes => "bytes".into(),
            Object::List(_) => "a list".into(),
            Object::Tuple(_) => "a tuple".into(),
            Object::Dict(_) => "a dict".into(),
            Object::Array(a) => {
                let dtype = match a.values {
                    ArrayValues::F16(_) => "float16",
                    ArrayValues::F32(_) => "float32",
                    ArrayValues::F64(_) => "float64",
                    ArrayValues::Integer => "integer",
                    ArrayValues::Bool => "bool",
                };
                format!("a {dtype} array of shape {:?}", a.shape)
            }
            Object::Opaque(kind) => (*kind).into(),
        }
    }

    /// The value of string key `key` of a dict.
    fn get(&self, key: &str) -> Option<&Object> {
        match self {
            Object::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Object::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// The keypoint values in the dtype they were stored in.
#[derive(Debug, Clone, PartialEq)]
pub enum KeypointValues {
    /// float16 bits.
    Half(Vec<u16>),
    Single(Vec<f32>),
    Double(Vec<f64>),
}

/// One clip's `keypoint` array, `(persons, frames, joints, xyz)` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Keypoints {
    pub persons: usize,
    pub frames: usize,
    pub joints: usize,
    pub values: KeypointValues,
}

impl Keypoints {
    /// The dtype pyskl computes this clip's PreNormalize3D in.
    pub fn precision(&self) -> Precision {
        match self.values {
            KeypointValues::Half(_) => Precision::Half,
            KeypointValues::Single(_) => Precision::Single,
            KeypointValues::Double(_) => Precision::Double,
        }
    }

    /// The values as a [`Pose`] (exactly).
    pub fn pose(&self) -> Pose {
        let values = match &self.values {
            KeypointValues::Half(v) => v.iter().map(|&h| f64::from(half_to_f32(h))).collect(),
            KeypointValues::Single(v) => v.iter().map(|&x| f64::from(x)).collect(),
            KeypointValues::Double(v) => v.clone(),
        };
        Pose {
            persons: self.persons,
            frames: self.frames,
            joints: self.joints,
            values,
        }
    }
}

/// One entry of `annotations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub frame_dir: String,
    pub label: u32,
    pub keypoint: Keypoints,
}

/// A whole annotation pickle.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotations {
    /// `split`: each name with its `frame_dir`s, in the pickle's order.
    pub splits: Vec<(String, Vec<String>)>,
    pub annotations: Vec<Annotation>,
}

impl Annotations {
    /// The annotations of split `name`, as pyskl's `PoseDataset` takes them: in annotation
    /// order (not the split list's), names of the list without an annotation skipped.
    pub fn split(&self, name: &str) -> Result<Vec<usize>, String> {
        let (_, members) = self.splits.iter().find(|(n, _)| n == name).ok_or_else(|| {
            let names: Vec<&str> = self.splits.iter().map(|(n, _)| n.as_str()).collect();
            format!("no split `{name}`; the pickle has {}", names.join(", "))
        })?;
        let members: HashSet<&str> = members.iter().map(String::as_str).collect();
        Ok((0..self.annotations.len())
            .filter(|&i| members.contains(self.annotations[i].frame_dir.as_str()))
            .collect())
    }

    /// One more than the largest label.
    pub fn classes(&self) -> usize {
        self.annotations
            .iter()
            .map(|a| a.label as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// V, shared by every annotation (0 for none).
    pub fn joints(&self) -> usize {
        self.annotations.first().map_or(0, |a| a.keypoint.joints)
    }
}

/// Reads an annotation pickle. Bad input is an error naming the file and the place: the byte
/// offset for a broken pickle, else the key (`annotations[12].keypoint`, `split.xsub_train[3]`).
pub fn read_annotations(path: impl AsRef<Path>) -> Result<Annotations, DataError> {
    let path = path.as_ref();
    let bytes = Bytes::map(path)?;
    let root = Object::from_pickle(&bytes).map_err(|e| DataError::new(path, Place::File, e))?;
    drop(bytes);
    let at = |key: String, message: String| DataError::new(path, Place::Key(key), message);
    if !matches!(root, Object::Dict(_)) {
        return Err(DataError::new(
            path,
            Place::File,
            format!(
                "the pickle holds {}, expected a dict with `split` and `annotations`",
                root.kind()
            ),
        ));
    }
    let splits = match root.get("split") {
        Some(split) => read_splits(split).map_err(|(key, m)| at(key, m))?,
        None => return Err(at("split".into(), "key is missing".into())),
    };
    let Some(Object::List(items)) = root.get("annotations") else {
        let found = root
            .get("annotations")
            .map_or("nothing".into(), Object::kind);
        return Err(at(
            "annotations".into(),
            format!("expected a list of dicts, found {found}"),
        ));
    };
    let mut annotations = Vec::with_capacity(items.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let key = |field: &str| match field {
            "" => format!("annotations[{i}]"),
            _ => format!("annotations[{i}].{field}"),
        };
        let annotation = read_annotation(item).map_err(|(field, m)| at(key(&field), m))?;
        if let Some(first) = annotations.first().map(|a: &Annotation| a.keypoint.joints)
            && first != annotation.keypoint.joints
        {
            return Err(at(
                key("keypoint"),
                format!(
                    "{} joints, annotation 0 has {first}",
                    annotation.keypoint.joints
                ),
            ));
        }
        annotations.push(annotation);
    }
    for (i, a) in annotations.iter().enumerate() {
        if let Some(first) = seen.insert(&a.frame_dir, i) {
            return Err(at(
                format!("annotations[{i}].frame_dir"),
                format!("`{}` is also annotation {first}", a.frame_dir),
            ));
        }
    }
    Ok(Annotations {
        splits,
        annotations,
    })
}

type Fault = (String, String);

fn read_splits(split: &Object) -> Result<Vec<(String, Vec<String>)>, Fault> {
    let Object::Dict(items) = split else {
        return Err((
            "split".into(),
            format!("expected a dict, found {}", split.kind()),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, (name, members))| {
            let Object::Str(name) = name else {
                return Err((
                    format!("split (entry {i})"),
                    format!("the split name is {}, not a str", name.kind()),
                ));
            };
            let key = format!("split.{name}");
            let list = match members {
                Object::List(l) | Object::Tuple(l) => l,
                other => return Err((key, format!("expected a list, found {}", other.kind()))),
            };
            let names = list
                .iter()
                .enumerate()
                .map(|(j, m)| match m {
                    Object::Str(s) => Ok(s.clone()),
                    other => Err((
                        format!("{key}[{j}]"),
                        format!("{}, not a str", other.kind()),
                    )),
                })
                .collect::<Result<_, _>>()?;
            Ok((name.clone(), names))
        })
        .collect()
}

fn read_annotation(item: &Object) -> Result<Annotation, Fault> {
    let fault = |field: &str, m: String| (field.to_string(), m);
    if !matches!(item, Object::Dict(_)) {
        return Err(fault("", format!("expected a dict, found {}", item.kind())));
    }
    let field = |name: &str| {
        item.get(name)
            .ok_or_else(|| fault(name, "key is missing".into()))
    };
    let frame_dir = match field("frame_dir")? {
        Object::Str(s) => s.clone(),
        other => return Err(fault("frame_dir", format!("{}, not a str", other.kind()))),
    };
    let label = match field("label")? {
        Object::Int(l) => {
            u32::try_from(*l).map_err(|_| fault("label", format!("{l} is not a class index")))?
        }
        other => return Err(fault("label", format!("{}, not an int", other.kind()))),
    };
    let keypoint = match field("keypoint")? {
        Object::Array(a) => keypoints(a).map_err(|m| fault("keypoint", m))?,
        other => {
            return Err(fault(
                "keypoint",
                format!("{}, not a numpy array", other.kind()),
            ));
        }
    };
    match item.get("total_frames") {
        None => {}
        Some(Object::Int(t)) if *t == keypoint.frames as i64 => {}
        Some(other) => {
            return Err(fault(
                "total_frames",
                format!(
                    "{}; the keypoint array has {} frames",
                    describe_int(other),
                    keypoint.frames
                ),
            ));
        }
    }
    Ok(Annotation {
        frame_dir,
        label,
        keypoint,
    })
}

fn describe_int(value: &Object) -> String {
    match value {
        Object::Int(i) => i.to_string(),
        other => other.kind(),
    }
}

fn keypoints(a: &NdArray) -> Result<Keypoints, String> {
    let [m, t, v, c] = a.shape[..] else {
        return Err(format!(
            "shape {:?}, expected (M, T, V, C) = 4 dimensions",
            a.shape
        ));
    };
    if c != 3 {
        return Err(format!(
            "shape {:?}: C = {c}, only 3D skeletons (C = 3) are read",
            a.shape
        ));
    }
    if !(1..=2).contains(&m) {
        return Err(format!(
            "shape {:?}: M = {m}, pyskl takes 1 or 2 persons",
            a.shape
        ));
    }
    if t == 0 || v == 0 {
        return Err(format!("shape {:?}: no frames or no joints", a.shape));
    }
    let finite = |position: Option<usize>| match position {
        Some(i) => Err(format!(
            "value {i} (person {}, frame {}, joint {}) is not finite",
            i / (t * v * 3),
            i / (v * 3) % t,
            i / 3 % v
        )),
        None => Ok(()),
    };
    let values = match &a.values {
        ArrayValues::F16(x) => {
            finite(x.iter().position(|&h| h & 0x7c00 == 0x7c00))?;
            KeypointValues::Half(x.clone())
        }
        ArrayValues::F32(x) => {
            finite(x.iter().position(|v| !v.is_finite()))?;
            KeypointValues::Single(x.clone())
        }
        ArrayValues::F64(x) => {
            finite(x.iter().position(|v| !v.is_finite()))?;
            KeypointValues::Double(x.clone())
        }
        ArrayValues::Integer | ArrayValues::Bool => {
            return Err(
                "an integer or bool array; keypoints are float16, float32 or float64".into(),
            );
        }
    };
    Ok(Keypoints {
        persons: m,
        frames: t,
        joints: v,
        values,
    })
}

/// What [`prepare_pyskl`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PysklPrepared {
    pub path: PathBuf,
    pub train: usize,
    pub test: usize,
    pub classes: usize,
}

/// Writes splits `train` and `test` of an annotation pickle as a packed store at `out`
/// (atomically): each clip through PreNormalize3D in its own dtype (the deterministic first step
/// of both pyskl pipelines), then stored as f32 with two persons (a one-person clip gets a zero
/// second person). Names are the `frame_dir`s, classes one more than the largest label.
pub fn prepare_pyskl(
    pickle: &Path,
    train: &str,
    test: &str,
    out: &Path,
) -> Result<PysklPrepared, DataError> {
    let annotations = read_annotations(pickle)?;
    let split = |name| {
        annotations
            .split(name)
            .map_err(|m| DataError::new(pickle, Place::Key(format!("split.{name}")), m))
    };
    let (train_clips, test_clips) = (split(train)?, split(test)?);
    let stem = pickle
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let meta = PackedMeta {
        benchmark: format!("pyskl {stem} {train}/{test}"),
        persons: 2,
        joints: annotations.joints(),
        classes: annotations.classes(),
    };
    let io = |e: std::io::Error| DataError::new(out, Place::File, e.to_string());
    let mut writer = PackedWriter::create(out, meta).map_err(io)?;
    for (part, clips) in [(Part::Train, &train_clips), (Part::Test, &test_clips)] {
        for &i in clips {
            let a = &annotations.annotations[i];
            let mut pose = pre_normalize(&a.keypoint.pose(), a.keypoint.precision());
            if pose.persons == 1 {
                pose.values.resize(pose.values.len() * 2, 0.0);
                pose.persons = 2;
            }
            let clip = pose.to_sequence();
            writer
                .push(part, &a.frame_dir, a.label, &clip.data)
                .map_err(io)?;
        }
    }
    writer.finish().map_err(io)?;
    Ok(PysklPrepared {
        path: out.to_path_buf(),
        train: train_clips.len(),
        test: test_clips.len(),
        classes: annotations.classes(),
    })
}
