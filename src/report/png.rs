//! PNG encoding into memory, so that pictures are written through
//! [`crate::atomic::write_atomic`] rather than by a library that opens the file itself.

use std::io::{self, Write};

/// Writes `rgb` (height rows of width × 3 bytes) as an 8-bit RGB PNG.
pub fn write_png(out: &mut impl Write, width: u32, height: u32, rgb: &[u8]) -> io::Result<()> {
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    writer.write_image_data(rgb).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)
}
