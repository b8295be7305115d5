//! TensorBoard event files, written directly: a TFRecord stream (length, masked CRC-32C of the
//! length, payload, masked CRC-32C of the payload) of `Event` protocol buffers, each holding
//! scalar summaries. The messages are a handful of fields, so they are encoded by hand rather
//! than through a protobuf toolchain.

/// A scalar summary: `tag` at `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub tag: String,
    pub value: f32,
}

/// An event stream being assembled in memory.
#[derive(Debug, Default)]
pub struct EventWriter {
    bytes: Vec<u8>,
}

impl EventWriter {
    /// A stream that starts with the version event TensorBoard expects, at `wall_time`.
    pub fn new(wall_time: f64) -> Self {
        let mut w = Self::default();
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time);
        put_bytes(&mut event, 3, b"brain.Event:2");
        w.record(&event);
        w
    }

    /// Appends one event holding `scalars` at `step`.
    pub fn scalars(&mut self, wall_time: f64, step: i64, scalars: &[Scalar]) {
        let mut summary = Vec::new();
        for s in scalars {
            let mut value = Vec::new();
            put_bytes(&mut value, 1, s.tag.as_bytes());
            put_key(&mut value, 2, 5);
            value.extend_from_slice(&s.value.to_le_bytes());
            put_bytes(&mut summary, 1, &value);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time);
        put_key(&mut event, 2, 0);
        put_varint(&mut event, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.record(&event);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn record(&mut self, payload: &[u8]) {
        let length = (payload.len() as u64).to_le_bytes();
        self.bytes.extend_from_slice(&length);
        self.bytes
            .extend_from_slice(&masked_crc(&length).to_le_bytes());
        self.bytes.extend_from_slice(payload);
        self.bytes
            .extend_from_slice(&masked_crc(payload).to_le_bytes());
    }
}

/// TFRecord's CRC: CRC-32C, rotated and offset so that a CRC of data holding CRCs stays strong.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A field key: number and wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
fn put_key(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, (field << 3) | wire);
}

fn put_double(out: &mut Vec<u8>, field: u64, v: f64) {
    put_key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}
