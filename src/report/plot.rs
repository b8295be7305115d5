//! Drawing into memory with plotters and writing the picture as a PNG, atomically.

use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::png::write_png;
use crate::atomic::write_atomic;

/// The family every picture uses. plotters is built without system fonts, so the pictures look
/// the same on every machine and need no fontconfig.
pub const FONT: &str = "sans-serif";
const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
pub type DrawResult = Result<(), Box<dyn Error>>;

fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "the bundled DejaVu Sans font does not load".to_string())
        })
        .clone()
}

/// Draws a `width` × `height` picture with `draw` on a white background and writes it to `path`.
pub fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<(), ReportError> {
    let failed = |message: String| ReportError::Draw {
        path: path.to_path_buf(),
        message,
    };
    register().map_err(failed)?;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| failed(e.to_string()))?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    write_atomic(path, |f| write_png(f, width, height, &rgb)).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Matplotlib's `tab20` colours, the dark shade of each hue first: ten well-separated colours,
/// then their lighter partners.
pub fn palette(i: usize) -> RGBColor {
    const TAB20: [(u8, u8, u8); 20] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (199, 199, 199),
        (219, 219, 141),
        (158, 218, 229),
    ];
    let (r, g, b) = TAB20[i % TAB20.len()];
    RGBColor(r, g, b)
}

/// Text of `size` pixels in the bundled font.
pub fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// A tick label: the value with at most three decimals and no trailing zeros.
pub fn tick(v: &f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A line of a legend: its colour and whether it is dashed.
pub struct LineKey {
    pub label: String,
    pub colour: RGBColor,
    pub dashed: bool,
}

/// The height a legend of `entries` in `columns` columns takes.
pub fn legend_height(entries: usize, columns: usize) -> u32 {
    (entries.div_ceil(columns) as u32) * LEGEND_ROW + 20
}

const LEGEND_ROW: u32 = 30;

/// A legend of line styles in `columns` columns, drawn in its own area below a chart so that it
/// never covers a curve.
pub fn line_legend(area: &Area<'_>, entries: &[LineKey], columns: usize) -> DrawResult {
    let (width, _) = area.dim_in_pixel();
    let column = width as i32 / columns as i32;
    let label = text(18).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, entry) in entries.iter().enumerate() {
        let x = 90 + (i % columns) as i32 * column;
        let y = 10 + (i / columns) as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        let style = entry.colour.stroke_width(2);
        let ends = vec![(x, y), (x + 40, y)];
        if entry.dashed {
            area.draw(&DashedPathElement::new(ends, 8, 5, style))?;
        } else {
            area.draw(&PathElement::new(ends, style))?;
        }
        area.draw(&Text::new(entry.label.clone(), (x + 50, y), label.clone()))?;
    }
    Ok(())
}
