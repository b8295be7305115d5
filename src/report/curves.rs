//! `curves.png`: the training loss with its terms, and test accuracy, per epoch. Colour tells
//! the series, line style the run (solid the first, dashed the second); each panel's legend
//! lies below it.

use std::collections::BTreeSet;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::ReportError;
use super::plot::{
    Area, DrawResult, LineKey, legend_height, line_legend, palette, render, text, tick,
};
use super::run::Run;

const WIDTH: u32 = 1800;
const CHART_HEIGHT: u32 = 640;
const LEGEND_COLUMNS: usize = 2;

pub fn draw(path: &Path, runs: &[Run]) -> Result<(), ReportError> {
    let losses = loss_series(runs);
    let accuracy = accuracy_series(runs);
    let legend = legend_height(losses.len().max(accuracy.len()), LEGEND_COLUMNS);
    render(path, (WIDTH, CHART_HEIGHT + legend), |root| {
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let values = losses.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (lo, hi) = bounds(values);
        if lo > 0.0 {
            // Loss terms differ by orders of magnitude; a log axis keeps the small ones visible.
            let (lo, hi) = (lo / 1.2, hi * 1.2);
            let range = (lo..hi).log_scale().with_key_points(log_ticks(lo, hi));
            panel(
                &left,
                runs,
                &losses,
                range,
                "training loss (log scale)",
                "loss",
            )?;
        } else {
            let pad = 0.05 * (hi - lo).max(1e-6);
            panel(
                &left,
                runs,
                &losses,
                lo - pad..hi + pad,
                "training loss",
                "loss",
            )?;
        }
        let (lo, _) = bounds(accuracy.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        let floor = ((lo / 10.0).floor() * 10.0).clamp(0.0, 90.0);
        panel(
            &right,
            runs,
            &accuracy,
            floor..100.0,
            "test accuracy",
            "accuracy (%)",
        )
    })
}

/// One line: (epoch from 1, value) of one run.
struct Series {
    name: String,
    run: usize,
    colour: RGBColor,
    points: Vec<(i32, f64)>,
}

fn loss_series(runs: &[Run]) -> Vec<Series> {
    // Each term keeps its colour across runs.
    let terms: Vec<&str> = runs
        .iter()
        .flat_map(|r| {
            r.logs
                .iter()
                .flat_map(|l| l.loss_terms.keys().map(String::as_str))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        series.push(Series {
            name: format!("loss, {}", run.label),
            run: i,
            colour: BLACK,
            points: run
                .logs
                .iter()
                .map(|l| (epoch(l.epoch), l.train_loss))
                .collect(),
        });
        // A run's terms are drawn only where it has several: a lone `ce` is the loss itself.
        let own: BTreeSet<&str> = run
            .logs
            .iter()
            .flat_map(|l| l.loss_terms.keys().map(String::as_str))
            .collect();
        if own.len() < 2 {
            continue;
        }
        for (t, term) in terms.iter().enumerate() {
            series.push(Series {
                name: format!("{term}, {}", run.label),
                run: i,
                colour: palette(t),
                points: run
                    .logs
                    .iter()
                    .filter_map(|l| Some((epoch(l.epoch), *l.loss_terms.get(*term)?)))
                    .collect(),
            });
        }
    }
    series.retain(|s| !s.points.is_empty());
    series
}

fn accuracy_series(runs: &[Run]) -> Vec<Series> {
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for (k, (name, pick)) in [("top-1", 0), ("top-5", 1)].into_iter().enumerate() {
            series.push(Series {
                name: format!("{name}, {}", run.label),
                run: i,
                colour: palette(k),
                points: run
                    .logs
                    .iter()
                    .map(|l| {
                        (
                            epoch(l.epoch),
                            100.0 * if pick == 0 { l.top1 } else { l.top5 },
                        )
                    })
                    .collect(),
            });
        }
    }
    series
}

/// Ticks of a log axis: 1, 2 and 5 of each decade in [lo, hi], or every digit where that gives
/// fewer than four.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = lo.log10().floor() as i32..=hi.log10().ceil() as i32;
    let within = |digits: &[f64]| -> Vec<f64> {
        decades
            .clone()
            .flat_map(|d| digits.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let ticks = within(&[1.0, 2.0, 5.0]);
    if ticks.len() >= 4 {
        ticks
    } else {
        within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    }
}

fn epoch(index: usize) -> i32 {
    index as i32 + 1
}

/// The smallest and largest finite value.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// A chart over the epochs with its legend below it.
fn panel<Y>(
    area: &Area<'_>,
    runs: &[Run],
    series: &[Series],
    y: Y,
    caption: &str,
    y_desc: &str,
) -> DrawResult
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let (chart_area, legend_area) = area.split_vertically(CHART_HEIGHT);
    let last = runs
        .iter()
        .flat_map(|r| r.logs.iter().map(|l| epoch(l.epoch)))
        .max()
        .unwrap_or(1)
        .max(2);
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(caption, text(28))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(1..last, y)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(text(18))
        .axis_desc_style(text(20))
        .light_line_style(RGBColor(235, 235, 235))
        .y_label_formatter(&tick)
        .draw()?;
    for s in series {
        let style = s.colour.stroke_width(2);
        if s.run == 0 {
            chart.draw_series(LineSeries::new(s.points.clone(), style))?;
        } else {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 10, 6, style))?;
        }
    }
    let keys: Vec<LineKey> = series
        .iter()
        .map(|s| LineKey {
            label: s.name.clone(),
            colour: s.colour,
            dashed: s.run > 0,
        })
        .collect();
    line_legend(&legend_area, &keys, LEGEND_COLUMNS)
}
