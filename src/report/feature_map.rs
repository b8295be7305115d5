//! `tsne.png`: t-SNE maps of the pooled test features, one per run, coloured by class (the
//! SF-Head paper's Fig. 5).

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::classes::{AMBIGUOUS_GROUPS, ambiguous_actions};
use super::plot::{DrawResult, palette, render, text};
use super::tsne::{TsneOptions, subsample, tsne};
use crate::scores::Features;

/// At most this many test samples are embedded (exact t-SNE is quadratic in them).
const MAX_POINTS: usize = 2000;
/// Seeds both the choice of samples and the embedding.
const SEED: u64 = 0;
/// Up to this many classes all get a colour of their own.
const ALL_COLOURED: usize = 20;

const PANEL: (u32, u32) = (900, 900);
const LEGEND_WIDTH: u32 = 430;
const CAPTION_HEIGHT: u32 = 70;
const GREY: RGBColor = RGBColor(205, 205, 205);

#[derive(Clone, Copy)]
enum Shape {
    Circle,
    Triangle,
    Square,
    Diamond,
}

/// How one class is drawn.
struct Style {
    colour: RGBColor,
    shape: Shape,
    legend: String,
}

/// Which classes get a colour, how, and a sentence saying which.
struct Colouring {
    /// By label; `None` for the classes drawn grey.
    styles: Vec<Option<Style>>,
    /// The coloured classes in legend order.
    legend: Vec<usize>,
    text: String,
}

fn colouring(names: &[&str], ntu: bool) -> Colouring {
    let k = names.len();
    let mut styles: Vec<Option<Style>> = (0..k).map(|_| None).collect();
    let by_class = |styles: &mut [Option<Style>], count: usize| {
        for (c, name) in names.iter().enumerate().take(count) {
            styles[c] = Some(Style {
                colour: palette(c),
                shape: Shape::Circle,
                legend: format!("{} {name}", c + 1),
            });
        }
        (0..count.min(k)).collect()
    };
    if k <= ALL_COLOURED {
        let legend = by_class(&mut styles, k);
        let text = "colour: class".to_string();
        return Colouring {
            styles,
            legend,
            text,
        };
    }
    if ntu {
        let shapes = [
            Shape::Circle,
            Shape::Triangle,
            Shape::Square,
            Shape::Diamond,
        ];
        let mut legend = Vec::new();
        for (group, c) in ambiguous_actions() {
            let member = AMBIGUOUS_GROUPS[group - 1]
                .iter()
                .position(|&l| l == c)
                .unwrap_or(0);
            styles[c] = Some(Style {
                colour: palette(group - 1),
                shape: shapes[member % shapes.len()],
                legend: format!("G{group} {}", names[c]),
            });
            legend.push(c);
        }
        let text = "colour: Fig. 3 group, shape: action; the other classes grey".to_string();
        return Colouring {
            styles,
            legend,
            text,
        };
    }
    let legend = by_class(&mut styles, ALL_COLOURED);
    let text = format!("colour: classes 1–{ALL_COLOURED} of {k}; the other classes grey");
    Colouring {
        styles,
        legend,
        text,
    }
}

/// Embeds each run's features of the same subsample and draws them side by side. Returns a
/// sentence saying which classes were left grey, if any.
pub fn draw(
    path: &Path,
    names: &[&str],
    ntu: bool,
    runs: &[(&str, &Features)],
    labels: &[u32],
) -> Result<Option<String>, ReportError> {
    let picked = subsample(labels.len(), MAX_POINTS, SEED);
    let options = TsneOptions {
        seed: SEED,
        ..TsneOptions::default()
    };
    let maps: Vec<Vec<[f64; 2]>> = runs
        .iter()
        .map(|(_, f)| {
            let rows: Vec<f64> = picked
                .iter()
                .flat_map(|&i| &f.values[i * f.width..(i + 1) * f.width])
                .map(|&x| f64::from(x))
                .collect();
            tsne(&rows, f.width, &options)
        })
        .collect();
    let Colouring {
        styles,
        legend,
        text: colouring,
    } = colouring(names, ntu);
    let caption = format!(
        "t-SNE of pooled test features: {} of {} samples, perplexity {}; {colouring}",
        picked.len(),
        labels.len(),
        super::tsne::effective_perplexity(options.perplexity, picked.len())
    );
    let width = PANEL.0 * runs.len() as u32 + LEGEND_WIDTH;
    let height = PANEL.1 + CAPTION_HEIGHT;
    render(path, (width, height), |root| {
        let (top, body) = root.split_vertically(CAPTION_HEIGHT);
        let centre = Pos::new(HPos::Center, VPos::Center);
        let at = (width as i32 / 2, CAPTION_HEIGHT as i32 / 2);
        top.draw(&Text::new(caption.clone(), at, text(24).pos(centre)))?;
        let (maps_area, legend_area) = body.split_horizontally(width - LEGEND_WIDTH);
        let panels = maps_area.split_evenly((1, runs.len()));
        for ((area, (label, _)), map) in panels.iter().zip(runs).zip(&maps) {
            let (xs, ys) = bounds(map);
            // No axes: t-SNE's coordinates have no meaning, only its neighbourhoods do.
            let chart = ChartBuilder::on(area)
                .caption(*label, text(24))
                .margin(20)
                .build_cartesian_2d(xs, ys)?;
            let plot = chart.plotting_area();
            let (xs, ys) = (plot.get_x_range(), plot.get_y_range());
            let frame = [(xs.start, ys.start), (xs.end, ys.end)];
            plot.draw(&Rectangle::new(
                frame,
                RGBColor(150, 150, 150).stroke_width(1),
            ))?;
            // Grey classes first, so that the coloured ones lie on top.
            for (&i, p) in picked.iter().zip(map) {
                if styles[labels[i] as usize].is_none() {
                    plot.draw(&Circle::new((p[0], p[1]), 2, GREY.filled()))?;
                }
            }
            for (&i, p) in picked.iter().zip(map) {
                if let Some(style) = &styles[labels[i] as usize] {
                    mark(plot, style, (p[0], p[1]), 5)?;
                }
            }
        }
        let entries: Vec<&Style> = legend.iter().filter_map(|&c| styles[c].as_ref()).collect();
        draw_legend(&legend_area, &entries)
    })?;
    Ok(styles.iter().any(Option::is_none).then_some(colouring))
}

type Plot<'a> = DrawingArea<BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn mark(area: &Plot<'_>, style: &Style, at: (f64, f64), size: i32) -> DrawResult {
    let fill = style.colour.filled();
    match style.shape {
        Shape::Circle => area.draw(&Circle::new(at, size, fill))?,
        Shape::Triangle => area.draw(&TriangleMarker::new(at, size + 1, fill))?,
        Shape::Square => {
            let s = size - 1;
            area.draw(&(EmptyElement::at(at) + Rectangle::new([(-s, -s), (s, s)], fill)))?
        }
        Shape::Diamond => {
            let s = size + 1;
            let corners = vec![(0, -s), (s, 0), (0, s), (-s, 0)];
            area.draw(&(EmptyElement::at(at) + Polygon::new(corners, fill)))?
        }
    }
    Ok(())
}

fn draw_legend(area: &DrawingArea<BitMapBackend<'_>, Shift>, entries: &[&Style]) -> DrawResult {
    // At least 30 rows, so that short legends keep their spacing.
    let rows = entries.len().max(30) as f64;
    let chart = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(40)
        .build_cartesian_2d(0.0..1.0, 0.0..rows)?;
    let plot = chart.plotting_area();
    let label = text(20).pos(Pos::new(HPos::Left, VPos::Center));
    for (r, style) in entries.iter().enumerate() {
        let y = rows - r as f64 - 0.5;
        mark(plot, style, (0.05, y), 7)?;
        plot.draw(&Text::new(style.legend.clone(), (0.1, y), label.clone()))?;
    }
    Ok(())
}

/// The map's extent with a margin.
fn bounds(map: &[[f64; 2]]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let range = |a: usize| {
        let lo = map.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min);
        let hi = map.iter().map(|p| p[a]).fold(f64::NEG_INFINITY, f64::max);
        if !(lo.is_finite() && hi > lo) {
            return -1.0..1.0;
        }
        let pad = 0.05 * (hi - lo);
        lo - pad..hi + pad
    };
    (range(0), range(1))
}
