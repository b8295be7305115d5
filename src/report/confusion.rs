//! `confusion.png`: the row-normalised confusion matrix of a run, true classes down, predicted
//! classes across, class 1 at the top left.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::plot::{Area, DrawResult, render, text, tick};
use crate::eval::Accuracy;

/// Up to this many classes the rows carry their names and the cells their percentages.
const NAMED: usize = 20;

/// One matrix per run, side by side, with one colour bar.
pub fn draw(path: &Path, names: &[&str], runs: &[(&str, &Accuracy)]) -> Result<(), ReportError> {
    let named = names.len() <= NAMED;
    let (side, names_width) = if named { (900, 330) } else { (1100, 90) };
    let bar_width = 170;
    let panel_width = names_width + side + 40;
    let width = panel_width * runs.len() as u32 + bar_width;
    let height = side + 170;
    render(path, (width, height), |root| {
        let (matrices, bar) = root.split_horizontally(width - bar_width);
        let panels = matrices.split_evenly((1, runs.len()));
        for (area, (label, accuracy)) in panels.iter().zip(runs) {
            let title = format!("{label}: confusion matrix, row-normalised");
            cells(area, &title, names, accuracy, names_width)?;
        }
        colour_bar(&bar)
    })
}

/// The colour of a share of a row: white to dark blue, on a square-root scale so that the
/// off-diagonal confusions of many classes stay visible next to the diagonal.
fn colour(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0).sqrt();
    let mix = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

fn cells(
    area: &Area<'_>,
    title: &str,
    names: &[&str],
    accuracy: &Accuracy,
    names_width: u32,
) -> DrawResult {
    let k = names.len();
    let named = k <= NAMED;
    // Cell c spans [2c, 2c + 2] on integer axes, so that its centre is a tick position.
    let span = 2 * k as i32;
    let ticks: Vec<i32> = (0..k)
        .filter(|&c| named || c == 0 || (c + 1) % 10 == 0)
        .map(|c| 2 * c as i32 + 1)
        .collect();
    let rows: Vec<i32> = ticks.iter().map(|t| span - t).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, text(26))
        .margin(20)
        .x_label_area_size(70)
        .y_label_area_size(names_width)
        .build_cartesian_2d(
            (0..span).with_key_points(ticks),
            (0..span).with_key_points(rows),
        )?;
    let class_at = |v: i32| ((v / 2) as usize).min(k - 1);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted class")
        .y_desc("true class")
        .label_style(text(if named { 17 } else { 16 }))
        .axis_desc_style(text(20))
        .x_label_formatter(&|v| (class_at(*v) + 1).to_string())
        .y_label_formatter(&|v| {
            let c = k - 1 - class_at(*v);
            if named {
                format!("{} {}", c + 1, names[c])
            } else {
                (c + 1).to_string()
            }
        })
        .draw()?;
    let centre = Pos::new(HPos::Center, VPos::Center);
    for t in 0..k {
        let row = &accuracy.confusion[t * k..(t + 1) * k];
        let total = row.iter().sum::<usize>().max(1) as f64;
        let y = 2 * (k - 1 - t) as i32;
        chart.draw_series(row.iter().enumerate().map(|(p, &n)| {
            let x = 2 * p as i32;
            Rectangle::new([(x, y), (x + 2, y + 2)], colour(n as f64 / total).filled())
        }))?;
        if named {
            let labels = row
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(p, &n)| {
                    let share = n as f64 / total;
                    let ink: &RGBColor = if share > 0.4 { &WHITE } else { &BLACK };
                    Text::new(
                        format!("{:.0}", 100.0 * share),
                        (2 * p as i32 + 1, y + 1),
                        text(20).pos(centre).color(ink),
                    )
                });
            chart.draw_series(labels)?;
        }
    }
    Ok(())
}

fn colour_bar(area: &Area<'_>) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .margin_top(80)
        .margin_bottom(90)
        .margin_right(20)
        .y_label_area_size(100)
        .build_cartesian_2d(0.0..1.0, 0.0..100.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc("share of the row (%)")
        .y_label_formatter(&tick)
        .label_style(text(16))
        .axis_desc_style(text(18))
        .draw()?;
    const STEPS: usize = 200;
    chart.draw_series((0..STEPS).map(|i| {
        let lo = 100.0 * i as f64 / STEPS as f64;
        let hi = 100.0 * (i + 1) as f64 / STEPS as f64;
        Rectangle::new([(0.0, lo), (1.0, hi)], colour(lo / 100.0).filled())
    }))?;
    Ok(())
}
