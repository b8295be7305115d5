//! Reads `tests/fixtures/ctrgcn-state-dict.txt`: CTR-GCN's state-dict entries in PyTorch order.
//!
//! Line format: `key  shape  param|buffer  numel`, shape `AxBx…` or `scalar`. `#` lines are
//! comments; the CTR-GCN section ends at the first blank line after its entries (the SF-Head
//! entries that follow use symbolic shapes and are not read).

use std::path::Path;

use sfhead::data::{DataError, Place};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Parameter,
    Buffer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// Empty for a scalar.
    pub shape: Vec<usize>,
    pub kind: Kind,
}

impl Entry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_parameter(&self) -> bool {
        self.kind == Kind::Parameter
    }
}

pub fn read(path: &Path) -> Result<Vec<Entry>, DataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, DataError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if entries.is_empty() {
                continue;
            }
            break;
        }
        let fault = |message: String| DataError::new(path, Place::Line(i + 1), message);
        let [key, shape, kind, numel] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(fault(format!(
                "expected `key shape kind numel`, found `{line}`"
            )));
        };
        let shape: Vec<usize> = if shape == "scalar" {
            Vec::new()
        } else {
            shape
                .split('x')
                .map(|d| d.parse().map_err(|_| fault(format!("bad shape `{shape}`"))))
                .collect::<Result<_, _>>()?
        };
        let kind = match kind {
            "param" => Kind::Parameter,
            "buffer" => Kind::Buffer,
            other => return Err(fault(format!("unknown kind `{other}`"))),
        };
        let entry = Entry {
            key: key.to_string(),
            shape,
            kind,
        };
        let numel: usize = numel
            .parse()
            .map_err(|_| fault(format!("bad element count `{numel}`")))?;
        if numel != entry.numel() {
            return Err(fault(format!(
                "{key}: element count {numel} does not match its shape ({})",
                entry.numel()
            )));
        }
        entries.push(entry);
    }
    Ok(entries)
}
