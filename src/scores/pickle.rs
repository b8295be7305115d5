//! Score pickles: `{name: numpy.ndarray}`, the format of CTR-GCN's `epoch1_test_score.pkl`,
//! which its `ensemble.py` reads with `pickle.load` and combines with numpy arithmetic.
//!
//! The writer pickles each row the way numpy 1.x itself does (at protocol 3): rebuilt by
//! `numpy.core.multiarray._reconstruct` and filled by `ndarray.__setstate__`. That module path
//! loads in every numpy 1.x and, without a warning, in numpy 2 (which keeps it for old pickles),
//! and the arrays come out writable, unlike those of `numpy.frombuffer`.
//!
//! The reader is a small pickle machine for the opcodes such files use (protocols 2 to 5): the
//! arrays of numpy 1.x and 2.x (`_reconstruct` with its `BUILD` state, protocol 5's
//! `_frombuffer`, `numpy.frombuffer`) of floats, integers or bools, numpy scalars, and plain
//! Python values and containers. Score rows must be float arrays or lists of numbers. Anything
//! else is refused with the byte offset and the opcode. The same machine reads pyskl's
//! annotation pickles ([`crate::data::pyskl`]) through [`Object::from_pickle`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::rc::Rc;

use super::{Scores, ScoresError};
use crate::atomic::write_atomic;
use crate::data::pyskl::{ArrayValues, NdArray, Object};

/// Opcodes (Python's `pickletools` names).
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINUNICODE: u8 = b'X';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const BINFLOAT: u8 = b'G';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const REDUCE: u8 = b'R';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const PROTO: u8 = 0x80;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
}

/// The name of every pickle opcode, for messages (also of those this reader refuses).
fn op_name(code: u8) -> Option<&'static str> {
    Some(match code {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

/// Samples per `SETITEMS`, as Python's pickler batches them.
const BATCH: usize = 1000;

impl Scores {
    /// Writes `{name: numpy.ndarray(float32, (K,))}` in sample order, atomically; labels and
    /// features are not part of the format.
    pub fn write_pickle(&self, path: &Path) -> Result<(), ScoresError> {
        let bytes = self.pickle_bytes();
        write_atomic(path, |file| file.write_all(&bytes)).map_err(|source| ScoresError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    fn pickle_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.out.extend([op::PROTO, 3, op::EMPTY_DICT]);
        for (batch, names) in self.names.chunks(BATCH).enumerate() {
            w.out.push(op::MARK);
            for (j, name) in names.iter().enumerate() {
                w.unicode(name);
                w.array(self.row(batch * BATCH + j));
            }
            w.out.push(op::SETITEMS);
        }
        w.out.push(op::STOP);
        w.out
    }

    /// Reads a score pickle of CTR-GCN's or ours. Pickles carry no labels.
    pub fn read_pickle(path: &Path) -> Result<Self, ScoresError> {
        let bytes = std::fs::read(path).map_err(|source| ScoresError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let format = |message: String| ScoresError::Format {
            path: path.to_path_buf(),
            message,
        };
        let root = Machine::new(&bytes).run().map_err(format)?;
        from_value(root).map_err(format)
    }
}

/// Emits opcodes, defining each shared object once and fetching it from the memo afterwards.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    memo: HashMap<&'static str, u8>,
}

impl Writer {
    fn unicode(&mut self, s: &str) {
        self.out.push(op::BINUNICODE);
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn int(&mut self, v: i32) {
        if let Ok(small) = u8::try_from(v) {
            self.out.extend([op::BININT1, small]);
        } else {
            self.out.push(op::BININT);
            self.out.extend(v.to_le_bytes());
        }
    }

    /// The object `key`: emitted by `define` the first time and put in the memo, fetched from
    /// the memo afterwards.
    fn shared(&mut self, key: &'static str, define: impl FnOnce(&mut Self)) {
        if let Some(&slot) = self.memo.get(key) {
            self.out.extend([op::BINGET, slot]);
        } else {
            define(self);
            let slot = self.memo.len() as u8;
            self.memo.insert(key, slot);
            self.out.extend([op::BINPUT, slot]);
        }
    }

    /// `_reconstruct(ndarray, (0,), b'b')` then `BUILD (1, (K,), dtype('<f4'), False, data)`.
    fn array(&mut self, row: &[f32]) {
        self.shared("_reconstruct", |w| {
            w.out.push(op::GLOBAL);
            w.out.extend(b"numpy.core.multiarray\n_reconstruct\n");
        });
        self.shared("ndarray", |w| {
            w.out.push(op::GLOBAL);
            w.out.extend(b"numpy\nndarray\n");
        });
        self.shared("(0,)", |w| w.out.extend([op::BININT1, 0, op::TUPLE1]));
        self.shared("b'b'", |w| w.out.extend([op::SHORT_BINBYTES, 1, b'b']));
        self.out.extend([op::TUPLE3, op::REDUCE, op::MARK]);
        self.int(1);
        self.int(row.len() as i32);
        self.out.push(op::TUPLE1);
        self.shared("float32", |w| {
            w.out.push(op::GLOBAL);
            w.out.extend(b"numpy\ndtype\n");
            w.unicode("f4");
            w.out
                .extend([op::NEWFALSE, op::NEWTRUE, op::TUPLE3, op::REDUCE, op::MARK]);
            // dtype state: version 3, little-endian, no subarray, names or fields, no flags.
            w.int(3);
            w.unicode("<");
            w.out.extend([op::NONE, op::NONE, op::NONE]);
            w.int(-1);
            w.int(-1);
            w.int(0);
            w.out.extend([op::TUPLE, op::BUILD]);
        });
        self.out.push(op::NEWFALSE);
        self.out.push(op::BINBYTES);
        self.out
            .extend((std::mem::size_of_val(row) as u32).to_le_bytes());
        for v in row {
            self.out.extend(v.to_le_bytes());
        }
        self.out.extend([op::TUPLE, op::BUILD]);
    }
}

/// What a numpy dtype's elements are.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
}

/// A numeric numpy dtype, little- or big-endian.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dtype {
    kind: Kind,
    width: usize,
    big_endian: bool,
}

impl Dtype {
    /// `f4`, `<f8`, `float16`, `i8`, `uint8`, `?`, ...: floats, integers and bools.
    fn parse(spec: &str) -> Option<Self> {
        let (big_endian, rest) = match spec.as_bytes().first()? {
            b'>' => (true, &spec[1..]),
            b'<' | b'=' | b'|' => (false, &spec[1..]),
            _ => (false, spec),
        };
        let (kind, width) = match rest {
            "f2" | "e" | "float16" => (Kind::Float, 2),
            "f4" | "f" | "float32" => (Kind::Float, 4),
            "f8" | "d" | "float64" => (Kind::Float, 8),
            "b1" | "?" | "bool" => (Kind::Bool, 1),
            _ => {
                let (kind, bits) = if let Some(bits) = rest.strip_prefix("uint") {
                    (Kind::Uint, bits.parse::<usize>().ok()? / 8)
                } else if let Some(bits) = rest.strip_prefix("int") {
                    (Kind::Int, bits.parse::<usize>().ok()? / 8)
                } else if let Some(bytes) = rest.strip_prefix('u') {
                    (Kind::Uint, bytes.parse().ok()?)
                } else {
                    (Kind::Int, rest.strip_prefix('i')?.parse().ok()?)
                };
                if ![1, 2, 4, 8].contains(&bits) {
                    return None;
                }
                (kind, bits)
            }
        };
        Some(Self {
            kind,
            width,
            big_endian,
        })
    }

    fn name(self) -> String {
        let kind = match self.kind {
            Kind::Float => "float",
            Kind::Int => "int",
            Kind::Uint => "uint",
            Kind::Bool => return "bool".into(),
        };
        format!("{kind}{}", self.width * 8)
    }

    /// The element's bytes, most significant last.
    fn little<const N: usize>(self, bytes: &[u8]) -> [u8; N] {
        let mut b: [u8; N] = bytes.try_into().expect("one element");
        if self.big_endian {
            b.reverse();
        }
        b
    }

    /// Every element as f64 (floats and integers below 2⁵³ exactly).
    fn numbers(self, bytes: &[u8]) -> Vec<f64> {
        bytes
            .chunks_exact(self.width)
            .map(|b| match (self.kind, self.width) {
                (Kind::Float, 2) => f64::from(crate::data::feed::half_to_f32(u16::from_le_bytes(
                    self.little(b),
                ))),
                (Kind::Float, 4) => f64::from(f32::from_le_bytes(self.little(b))),
                (Kind::Float, _) => f64::from_le_bytes(self.little(b)),
                _ => self.integer(b) as f64,
            })
            .collect()
    }

    /// One integer or bool element, sign-extended.
    fn integer(self, b: &[u8]) -> i64 {
        let mut v = b.to_vec();
        if self.big_endian {
            v.reverse();
        }
        let negative = self.kind == Kind::Int && v.last().is_some_and(|&x| x & 0x80 != 0);
        let mut full = [if negative { 0xff } else { 0 }; 8];
        full[..v.len()].copy_from_slice(&v);
        i64::from_le_bytes(full)
    }
}

/// A numpy array: its shape, dtype and C-order bytes.
#[derive(Debug, Clone)]
struct Array {
    shape: Vec<usize>,
    dtype: Dtype,
    data: Rc<[u8]>,
}

impl Array {
    /// An array of `bytes` in C order, or in Fortran order when `fortran`.
    fn new(bytes: &[u8], dtype: Dtype, shape: Vec<usize>, fortran: bool) -> Result<Self, String> {
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or("the array's shape overflows")?;
        if Some(bytes.len()) != count.checked_mul(dtype.width) {
            return Err(format!(
                "an array of shape {shape:?} and {}-byte elements has {} bytes of data",
                dtype.width,
                bytes.len()
            ));
        }
        let data = if fortran && shape.len() > 1 {
            fortran_to_c(bytes, &shape, dtype.width).into()
        } else {
            bytes.into()
        };
        Ok(Self { shape, dtype, data })
    }

    /// The values of a float array as f32 (score rows).
    fn floats(&self) -> Result<Vec<f32>, String> {
        if self.dtype.kind != Kind::Float {
            return Err(format!(
                "a {} array, expected float32 or float64",
                self.dtype.name()
            ));
        }
        Ok(self
            .dtype
            .numbers(&self.data)
            .into_iter()
            .map(|v| v as f32)
            .collect())
    }

    fn values(&self) -> ArrayValues {
        let d = self.dtype;
        let chunks = self.data.chunks_exact(d.width);
        match (d.kind, d.width) {
            (Kind::Float, 2) => {
                ArrayValues::F16(chunks.map(|b| u16::from_le_bytes(d.little(b))).collect())
            }
            (Kind::Float, 4) => {
                ArrayValues::F32(chunks.map(|b| f32::from_le_bytes(d.little(b))).collect())
            }
            (Kind::Float, _) => {
                ArrayValues::F64(chunks.map(|b| f64::from_le_bytes(d.little(b))).collect())
            }
            (Kind::Bool, _) => ArrayValues::Bool,
            _ => ArrayValues::Integer,
        }
    }
}

/// Fortran-order element bytes rearranged into C order.
fn fortran_to_c(bytes: &[u8], shape: &[usize], width: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    let mut index = vec![0usize; shape.len()];
    for chunk in out.chunks_exact_mut(width) {
        // The Fortran offset of the current C-order index: the first axis varies fastest.
        let mut offset = 0;
        for (&i, &n) in index.iter().zip(shape).rev() {
            offset = offset * n + i;
        }
        chunk.copy_from_slice(&bytes[offset * width..(offset + 1) * width]);
        for (i, &n) in index.iter_mut().zip(shape).rev() {
            *i += 1;
            if *i < n {
                break;
            }
            *i = 0;
        }
    }
    out
}

/// The callables a score pickle may name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Callable {
    /// `numpy.core.multiarray._reconstruct` (numpy 1) or `numpy._core.multiarray._reconstruct`.
    Reconstruct,
    Ndarray,
    Dtype,
    /// `numpy.core.numeric._frombuffer` (numpy 1) or `numpy._core.numeric._frombuffer`:
    /// protocol 5's `(buffer, dtype, shape, order)`.
    NumericFromBuffer,
    /// `numpy.frombuffer(buffer, dtype)`.
    FromBuffer,
    /// `_codecs.encode(text, 'latin1')`: protocol 2's form of bytes.
    Encode,
    /// `bytes()`: protocol 2's form of empty bytes.
    EmptyBytes,
    /// `numpy.core.multiarray.scalar(dtype, bytes)`: a numpy number.
    Scalar,
    OrderedDict,
}

impl Callable {
    fn python_name(self) -> &'static str {
        match self {
            Self::Reconstruct => "_reconstruct",
            Self::Ndarray => "numpy.ndarray",
            Self::Dtype => "numpy.dtype",
            Self::NumericFromBuffer => "_frombuffer",
            Self::FromBuffer => "numpy.frombuffer",
            Self::Encode => "_codecs.encode",
            Self::EmptyBytes => "bytes",
            Self::Scalar => "numpy scalar",
            Self::OrderedDict => "collections.OrderedDict",
        }
    }

    fn resolve(module: &str, name: &str) -> Option<Self> {
        Some(match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Self::Reconstruct
            }
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => {
                Self::NumericFromBuffer
            }
            ("numpy", "ndarray") => Self::Ndarray,
            ("numpy", "dtype") => Self::Dtype,
            ("numpy", "frombuffer") => Self::FromBuffer,
            ("_codecs", "encode") => Self::Encode,
            ("__builtin__" | "builtins", "bytes") => Self::EmptyBytes,
            ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Self::Scalar,
            ("collections", "OrderedDict") => Self::OrderedDict,
            _ => return None,
        })
    }
}

/// A value on the machine's stack. Mutable objects are shared, as in Python, so that what the
/// memo holds sees later `SETITEMS` and `BUILD`s.
#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Callable(Callable),
    Dtype(Rc<RefCell<Dtype>>),
    /// An array; empty until its `BUILD` when made by `_reconstruct`.
    Array(Rc<RefCell<Option<Array>>>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Bool(_) => "a bool",
            Self::Int(_) => "an int",
            Self::Float(_) => "a float",
            Self::Str(_) => "a str",
            Self::Bytes(_) => "bytes",
            Self::Tuple(_) => "a tuple",
            Self::List(_) => "a list",
            Self::Dict(_) => "a dict",
            Self::Callable(_) => "a class or function",
            Self::Dtype(_) => "a numpy dtype",
            Self::Array(_) => "a numpy array",
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Self::Int(v) => Some(*v),
            _ => None,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn dtype(&self) -> Option<Dtype> {
        match self {
            Self::Dtype(d) => Some(*d.borrow()),
            Self::Str(s) => Dtype::parse(s),
            _ => None,
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    fn shape(&self) -> Option<Vec<usize>> {
        match self {
            Self::Tuple(dims) => dims
                .iter()
                .map(|d| d.int().and_then(|d| usize::try_from(d).ok()))
                .collect(),
            _ => None,
        }
    }
}

fn text(bytes: &[u8]) -> Result<Value, String> {
    let s = std::str::from_utf8(bytes).map_err(|e| format!("the text is not UTF-8: {e}"))?;
    Ok(Value::Str(s.into()))
}

/// Describes the items of a tuple, for messages.
fn kinds(items: &[Value]) -> String {
    let kinds: Vec<_> = items.iter().map(Value::kind).collect();
    format!("({})", kinds.join(", "))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    /// Runs to `STOP` and returns the pickled object; an error names the byte offset and the
    /// opcode.
    fn run(mut self) -> Result<Value, String> {
        loop {
            let at = self.pos;
            let Some(&code) = self.data.get(at) else {
                return Err(format!("byte {at}: the pickle ends without STOP"));
            };
            self.pos += 1;
            let name = op_name(code);
            let step = self.step(code).map_err(|e| match name {
                Some(name) => format!("byte {at}: {name} (0x{code:02x}): {e}"),
                None => format!("byte {at}: {e}"),
            })?;
            if let Some(root) = step {
                return Ok(root);
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let rest = self.data.len() - self.pos;
        if n > rest {
            return Err(format!(
                "needs {n} more bytes, the file ends after {rest} (truncated?)"
            ));
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().unwrap())
    }

    /// A length of `N` bytes, little-endian, followed by that many bytes.
    fn counted<const N: usize>(&mut self) -> Result<&'a [u8], String> {
        let mut len = [0u8; 8];
        len[..N].copy_from_slice(&self.fixed::<N>()?);
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| "too long".to_string())?;
        self.take(len)
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("the name does not end with a newline (truncated?)")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "the name is not UTF-8".to_string())
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("the stack is empty".into());
        }
        Ok(self.stack.pop().unwrap())
    }

    fn top(&self) -> Result<&Value, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > floor => Ok(v),
            _ => Err("the stack is empty".into()),
        }
    }

    /// The items pushed since the last `MARK`.
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("no MARK before it")?;
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, slot: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        self.memo.insert(slot, v);
        Ok(())
    }

    fn memo_get(&mut self, slot: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&slot)
            .cloned()
            .ok_or_else(|| format!("memo slot {slot} was never set"))?;
        self.push(v);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err(format!("{} items do not make key-value pairs", items.len()));
        }
        match self.top()? {
            Value::Dict(d) => {
                let mut d = d.borrow_mut();
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    d.push((k, v));
                }
                Ok(())
            }
            other => Err(format!("sets items of {}, not of a dict", other.kind())),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(format!("appends to {}, not to a list", other.kind())),
        }
    }

    fn tuple(&mut self, n: usize) -> Result<(), String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err(format!("needs {n} items on the stack"));
        }
        let items = self.stack.split_off(self.stack.len() - n);
        self.push(Value::Tuple(items.into()));
        Ok(())
    }

    /// Executes one opcode; `Some` at `STOP`.
    fn step(&mut self, code: u8) -> Result<Option<Value>, String> {
        match code {
            op::PROTO => {
                let [version] = self.fixed()?;
                if !(2..=5).contains(&version) {
                    return Err(format!("protocol {version}; this reader takes 2 to 5"));
                }
            }
            // Frames only group opcodes for buffered reading.
            op::FRAME => {
                let len = u64::from_le_bytes(self.fixed()?);
                let rest = (self.data.len() - self.pos) as u64;
                if len > rest {
                    return Err(format!(
                        "a frame of {len} bytes, the file ends after {rest} (truncated?)"
                    ));
                }
            }
            op::STOP => return self.pop().map(Some),
            op::MARK => self.marks.push(self.stack.len()),
            op::NONE => self.push(Value::None),
            op::NEWTRUE => self.push(Value::Bool(true)),
            op::NEWFALSE => self.push(Value::Bool(false)),
            op::BININT1 => {
                let [v] = self.fixed()?;
                self.push(Value::Int(v.into()));
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.fixed()?);
                self.push(Value::Int(v.into()));
            }
            op::BININT => {
                let v = i32::from_le_bytes(self.fixed()?);
                self.push(Value::Int(v.into()));
            }
            op::LONG1 => {
                let [n] = self.fixed()?;
                let bytes = self.take(n.into())?;
                if n > 8 {
                    return Err(format!("an integer of {n} bytes"));
                }
                let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut full = [fill; 8];
                full[..bytes.len()].copy_from_slice(bytes);
                self.push(Value::Int(i64::from_le_bytes(full)));
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(self.fixed()?);
                self.push(Value::Float(v));
            }
            op::SHORT_BINUNICODE => {
                let bytes = self.counted::<1>()?;
                self.push(text(bytes)?);
            }
            op::BINUNICODE => {
                let bytes = self.counted::<4>()?;
                self.push(text(bytes)?);
            }
            op::BINUNICODE8 => {
                let bytes = self.counted::<8>()?;
                self.push(text(bytes)?);
            }
            op::SHORT_BINBYTES => {
                let bytes = self.counted::<1>()?;
                self.push(Value::Bytes(bytes.into()));
            }
            op::BINBYTES => {
                let bytes = self.counted::<4>()?;
                self.push(Value::Bytes(bytes.into()));
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let bytes = self.counted::<8>()?;
                self.push(Value::Bytes(bytes.into()));
            }
            op::EMPTY_TUPLE => self.push(Value::Tuple(Rc::new([]))),
            op::TUPLE1 => self.tuple(1)?,
            op::TUPLE2 => self.tuple(2)?,
            op::TUPLE3 => self.tuple(3)?,
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items.into()));
            }
            op::EMPTY_LIST => self.push(Value::List(Rc::default())),
            op::LIST => {
                let items = self.pop_mark()?;
                self.push(Value::List(Rc::new(RefCell::new(items))));
            }
            op::APPEND => {
                let v = self.pop()?;
                self.append(vec![v])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            op::EMPTY_DICT => self.push(Value::Dict(Rc::default())),
            op::DICT => {
                let items = self.pop_mark()?;
                self.push(Value::Dict(Rc::default()));
                self.set_items(items)?;
            }
            op::SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            op::BINPUT => {
                let [slot] = self.fixed()?;
                self.memo_put(slot.into())?;
            }
            op::LONG_BINPUT => {
                let slot = u32::from_le_bytes(self.fixed()?);
                self.memo_put(slot)?;
            }
            op::MEMOIZE => {
                let slot = self.memo.len() as u32;
                self.memo_put(slot)?;
            }
            op::BINGET => {
                let [slot] = self.fixed()?;
                self.memo_get(slot.into())?;
            }
            op::LONG_BINGET => {
                let slot = u32::from_le_bytes(self.fixed()?);
                self.memo_get(slot)?;
            }
            op::GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module.str(), name.str()) {
                    (Some(module), Some(name)) => self.global(module, name)?,
                    _ => {
                        return Err(format!(
                            "module and name are {} and {}, not strings",
                            module.kind(),
                            name.kind()
                        ));
                    }
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = reduce(&callable, &args)?;
                self.push(v);
            }
            op::BUILD => {
                let state = self.pop()?;
                build(self.top()?, &state)?;
            }
            _ => {
                return Err(match op_name(code) {
                    Some(_) => "not an opcode this reader takes".into(),
                    None => format!("unknown opcode 0x{code:02x}"),
                });
            }
        }
        Ok(None)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), String> {
        let callable = Callable::resolve(module, name).ok_or_else(|| {
            format!(
                "`{module}.{name}`: this reader loads only numpy arrays and scalars and plain values"
            )
        })?;
        self.push(Value::Callable(callable));
        Ok(())
    }
}

/// Calls `callable(*args)`.
fn reduce(callable: &Value, args: &Value) -> Result<Value, String> {
    let Value::Callable(callable) = callable else {
        return Err(format!("calls {}", callable.kind()));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("the arguments are {}, not a tuple", args.kind()));
    };
    let bad = || {
        format!(
            "`{}` with arguments {}",
            callable.python_name(),
            kinds(args)
        )
    };
    match (callable, &args[..]) {
        (Callable::Reconstruct, [Value::Callable(Callable::Ndarray), _, _]) => {
            Ok(Value::Array(Rc::default()))
        }
        (Callable::Dtype, [spec, ..]) => {
            let spec = spec.str().ok_or_else(bad)?;
            let dtype = Dtype::parse(spec).ok_or_else(|| {
                format!("dtype `{spec}`: only float, integer and bool arrays are read")
            })?;
            Ok(Value::Dtype(Rc::new(RefCell::new(dtype))))
        }
        (Callable::Encode, [Value::Str(text), Value::Str(codec)]) if &**codec == "latin1" => {
            let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c).ok()).collect();
            let bytes = bytes.ok_or("latin1 text with a character above U+00FF")?;
            Ok(Value::Bytes(bytes.into()))
        }
        (Callable::NumericFromBuffer, [buffer, dtype, shape, _order]) => {
            let (Some(bytes), Some(dtype), Some(shape)) =
                (buffer.bytes(), dtype.dtype(), shape.shape())
            else {
                return Err(bad());
            };
            let array = Array::new(bytes, dtype, shape, false)?;
            Ok(Value::Array(Rc::new(RefCell::new(Some(array)))))
        }
        (Callable::FromBuffer, [buffer, dtype]) => {
            let (Some(bytes), Some(dtype)) = (buffer.bytes(), dtype.dtype()) else {
                return Err(bad());
            };
            if !bytes.len().is_multiple_of(dtype.width) {
                return Err(format!(
                    "{} bytes are not a whole number of {}-byte elements",
                    bytes.len(),
                    dtype.width
                ));
            }
            let array = Array::new(bytes, dtype, vec![bytes.len() / dtype.width], false)?;
            Ok(Value::Array(Rc::new(RefCell::new(Some(array)))))
        }
        (Callable::OrderedDict, []) => Ok(Value::Dict(Rc::default())),
        (Callable::EmptyBytes, []) => Ok(Value::Bytes(Rc::new([]))),
        (Callable::Scalar, [dtype, data]) => {
            let (Some(dtype), Some(bytes)) = (dtype.dtype(), data.bytes()) else {
                return Err(bad());
            };
            if bytes.len() != dtype.width {
                return Err(format!(
                    "a {} scalar of {} bytes",
                    dtype.name(),
                    bytes.len()
                ));
            }
            Ok(match dtype.kind {
                Kind::Float => Value::Float(dtype.numbers(bytes)[0]),
                Kind::Bool => Value::Bool(bytes[0] != 0),
                Kind::Int | Kind::Uint => Value::Int(dtype.integer(bytes)),
            })
        }
        _ => Err(bad()),
    }
}

/// Applies `state` to `target` (`__setstate__` of a dtype or of an array).
fn build(target: &Value, state: &Value) -> Result<(), String> {
    let Value::Tuple(items) = state else {
        return Err(format!("the state is {}, not a tuple", state.kind()));
    };
    match target {
        // (version, byte order, subarray, names, fields, elsize, alignment, flags)
        Value::Dtype(dtype) => {
            let order = items
                .get(1)
                .and_then(Value::str)
                .ok_or_else(|| format!("a dtype state {}, expected a byte order", kinds(items)))?;
            dtype.borrow_mut().big_endian = order == ">";
            Ok(())
        }
        // (version, shape, dtype, is_fortran, data) or, from old numpy, without the version
        Value::Array(array) => {
            let fields = match &items[..] {
                [_, shape, dtype, fortran, data] | [shape, dtype, fortran, data] => shape
                    .shape()
                    .zip(dtype.dtype())
                    .zip(data.bytes())
                    .zip(match fortran {
                        Value::Bool(f) => Some(*f),
                        Value::Int(f) => Some(*f != 0),
                        _ => None,
                    }),
                _ => None,
            };
            let (((shape, dtype), bytes), fortran) = fields.ok_or_else(|| {
                format!(
                    "an array state {}, expected (version, shape, dtype, is_fortran, bytes)",
                    kinds(items)
                )
            })?;
            *array.borrow_mut() = Some(Array::new(bytes, dtype, shape, fortran)?);
            Ok(())
        }
        other => Err(format!("sets the state of {}", other.kind())),
    }
}

/// `{name: row}` to scores, checking that every row is a vector of the same length.
fn from_value(root: Value) -> Result<Scores, String> {
    let Value::Dict(items) = root else {
        return Err(format!(
            "the pickle holds {}, expected a dict of sample name to scores",
            root.kind()
        ));
    };
    let items = items.borrow();
    let mut names = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    let mut values = Vec::new();
    let mut classes = None;
    for (i, (key, row)) in items.iter().enumerate() {
        let name = key
            .str()
            .ok_or_else(|| format!("key {i} is {}, not a sample name", key.kind()))?;
        if !seen.insert(name) {
            return Err(format!("sample `{name}` appears twice"));
        }
        let row = row_values(row).map_err(|e| format!("sample `{name}`: {e}"))?;
        match classes {
            None => classes = Some(row.len()),
            Some(k) if k != row.len() => {
                return Err(format!(
                    "sample `{name}` has {} scores, the first sample `{}` has {k}",
                    row.len(),
                    names[0]
                ));
            }
            Some(_) => {}
        }
        names.push(name.to_string());
        values.extend(row);
    }
    let classes = classes.ok_or("the pickle holds no samples")?;
    Ok(Scores {
        names,
        classes,
        values,
        labels: None,
        features: None,
    })
}

fn row_values(row: &Value) -> Result<Vec<f32>, String> {
    let number = |v: &Value| match v {
        Value::Float(f) => Ok(*f as f32),
        Value::Int(i) => Ok(*i as f32),
        other => Err(format!("{} among the scores", other.kind())),
    };
    match row {
        Value::Array(array) => match &*array.borrow() {
            Some(a) if a.shape.len() == 1 => a.floats(),
            Some(a) => Err(format!("an array of shape {:?}, expected 1-D", a.shape)),
            None => Err("an array that was never given its data (no BUILD)".into()),
        },
        Value::List(items) => items.borrow().iter().map(number).collect(),
        Value::Tuple(items) => items.iter().map(number).collect(),
        other => Err(format!(
            "{}, expected a numpy array or a list of numbers",
            other.kind()
        )),
    }
}

/// Nesting deeper than this is refused (a list holding itself would never end).
const MAX_DEPTH: usize = 64;

impl Object {
    /// Runs a pickle and returns the object it holds, with numpy arrays in C order; the error
    /// names the byte offset and the opcode.
    pub(crate) fn from_pickle(bytes: &[u8]) -> Result<Self, String> {
        let root = Machine::new(bytes).run()?;
        to_object(&root, 0)
    }
}

fn to_object(value: &Value, depth: usize) -> Result<Object, String> {
    if depth > MAX_DEPTH {
        return Err(format!("objects nested more than {MAX_DEPTH} deep"));
    }
    let all = |items: &[Value]| -> Result<Vec<Object>, String> {
        items.iter().map(|v| to_object(v, depth + 1)).collect()
    };
    Ok(match value {
        Value::None => Object::None,
        Value::Bool(_) => Object::Bool,
        Value::Int(i) => Object::Int(*i),
        Value::Float(_) => Object::Float,
        Value::Str(s) => Object::Str(s.to_string()),
        Value::Bytes(_) => Object::Bytes,
        Value::Tuple(items) => Object::Tuple(all(items)?),
        Value::List(items) => Object::List(all(&items.borrow())?),
        Value::Dict(items) => Object::Dict(
            items
                .borrow()
                .iter()
                .map(|(k, v)| Ok((to_object(k, depth + 1)?, to_object(v, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Array(array) => match &*array.borrow() {
            Some(a) => Object::Array(NdArray {
                shape: a.shape.clone(),
                values: a.values(),
            }),
            None => return Err("an array that was never given its data (no BUILD)".into()),
        },
        other @ (Value::Callable(_) | Value::Dtype(_)) => Object::Opaque(other.kind()),
    })
}
