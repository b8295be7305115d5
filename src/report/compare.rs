//! `compare.png`: per-class top-1 of the second run against the first, and the differences in
//! descending order as the SF-Head paper's Fig. 3 shows them (for NTU its 23 ambiguous actions,
//! for the other datasets every class).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::classes::ambiguous_actions;
use super::plot::{Area, DrawResult, render, text, tick};
use super::tables::by_gain;
use crate::eval::Accuracy;

const SCATTER: u32 = 900;
const BARS: u32 = 1000;
const ROW: u32 = 26;
/// Up to this many classes each point of the scatter carries its class number.
const NUMBERED: usize = 20;

const BETTER: RGBColor = RGBColor(44, 160, 44);
const WORSE: RGBColor = RGBColor(214, 39, 40);
const SAME: RGBColor = RGBColor(127, 127, 127);

pub fn draw(
    path: &Path,
    names: &[&str],
    ntu: bool,
    a: (&str, &Accuracy),
    b: (&str, &Accuracy),
) -> Result<(), ReportError> {
    // The bars: (label, difference in points), largest first.
    let (classes, tags): (Vec<usize>, Vec<String>) = if ntu {
        ambiguous_actions()
            .map(|(g, c)| (c, format!("G{g} {}", names[c])))
            .unzip()
    } else {
        (0..names.len())
            .map(|c| (c, format!("{} {}", c + 1, names[c])))
            .unzip()
    };
    let bars: Vec<(String, f64)> = by_gain(a.1, b.1, classes.iter().copied())
        .into_iter()
        .filter_map(|c| {
            let d = 100.0 * (b.1.class(c)? - a.1.class(c)?);
            let tag = &tags[classes.iter().position(|&x| x == c)?];
            Some((tag.clone(), d))
        })
        .collect();
    let height = (bars.len() as u32 * ROW + 220).max(SCATTER);
    render(path, (SCATTER + BARS, height), |root| {
        let (left, right) = root.split_horizontally(SCATTER);
        let (square, _) = left.split_vertically(SCATTER);
        scatter(&square, names.len(), a, b)?;
        let caption = if ntu {
            format!("{} − {}: the 23 Fig. 3 actions, descending", b.0, a.0)
        } else {
            format!("{} − {} per class, descending", b.0, a.0)
        };
        differences(&right, &caption, &bars)
    })
}

fn scatter(area: &Area<'_>, k: usize, a: (&str, &Accuracy), b: (&str, &Accuracy)) -> DrawResult {
    let points: Vec<(usize, f64, f64)> = (0..k)
        .filter_map(|c| Some((c, 100.0 * a.1.class(c)?, 100.0 * b.1.class(c)?)))
        .collect();
    let lowest = points.iter().map(|p| p.1.min(p.2)).fold(100.0, f64::min);
    let floor = ((lowest / 10.0).floor() * 10.0).clamp(0.0, 90.0);
    let mut chart = ChartBuilder::on(area)
        .caption("per-class top-1 (%)", text(26))
        .margin(25)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(floor..100.0, floor..100.0)?;
    chart
        .configure_mesh()
        .x_desc(format!("{} (%)", a.0))
        .y_desc(format!("{} (%)", b.0))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style(text(18))
        .axis_desc_style(text(20))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    chart.draw_series(LineSeries::new(
        [(floor, floor), (100.0, 100.0)],
        SAME.stroke_width(1),
    ))?;
    let colour = |x: f64, y: f64| {
        if y > x {
            BETTER
        } else if y < x {
            WORSE
        } else {
            SAME
        }
    };
    chart.draw_series(
        points
            .iter()
            .map(|&(_, x, y)| Circle::new((x, y), 5, colour(x, y).filled())),
    )?;
    if k <= NUMBERED {
        let style = text(15).pos(Pos::new(HPos::Left, VPos::Bottom));
        chart.draw_series(
            points
                .iter()
                .map(|&(c, x, y)| Text::new((c + 1).to_string(), (x, y), style.clone())),
        )?;
    }
    Ok(())
}

fn differences(area: &Area<'_>, caption: &str, bars: &[(String, f64)]) -> DrawResult {
    let n = bars.len().max(1);
    let lo = bars.iter().map(|b| b.1).fold(0.0, f64::min);
    let hi = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    // Room beside the bars for their values.
    let pad = 0.2 * (hi - lo).max(1.0);
    // Row r spans [2r, 2r + 2] on an integer axis, so that its centre is a tick position.
    let span = 2 * n as i32;
    let ticks: Vec<i32> = (0..n as i32).map(|r| 2 * r + 1).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, text(24))
        .margin(25)
        .x_label_area_size(60)
        .y_label_area_size(330)
        .build_cartesian_2d(lo - pad..hi + pad, (0..span).with_key_points(ticks))?;
    let row_at = |v: i32| n - 1 - ((v / 2) as usize).min(n - 1);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("difference in top-1 (percentage points)")
        .label_style(text(17))
        .axis_desc_style(text(20))
        .light_line_style(RGBColor(235, 235, 235))
        .x_label_formatter(&tick)
        .y_label_formatter(&|v| bars.get(row_at(*v)).map_or(String::new(), |b| b.0.clone()))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(r, (_, d))| {
        let y = 2 * (n - 1 - r) as i32;
        let colour = if *d > 0.0 {
            BETTER
        } else if *d < 0.0 {
            WORSE
        } else {
            SAME
        };
        let mut bar = Rectangle::new([(0.0, y), (*d, y + 2)], colour.filled());
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    chart.draw_series(LineSeries::new(
        [(0.0, 0), (0.0, span)],
        BLACK.stroke_width(1),
    ))?;
    chart.draw_series(bars.iter().enumerate().map(|(r, (_, d))| {
        let y = 2 * (n - 1 - r) as i32 + 1;
        let side = if *d >= 0.0 { HPos::Left } else { HPos::Right };
        let shift = if *d >= 0.0 { 0.02 } else { -0.02 } * (hi - lo).max(1.0);
        Text::new(
            format!("{d:+.2}"),
            (d + shift, y),
            text(15).pos(Pos::new(side, VPos::Center)),
        )
    }))?;
    Ok(())
}
