//! Draws the run's pictures as SVG files with plotters' SVG backend.
//!
//! The SVG keeps its text as text for the viewer to set, so drawing needs no font files or
//! system libraries (plotters' `ttf` feature is off; label sizes are estimated).

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::markdown::number;
use crate::report::Plot;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 500;
/// Okabe and Ito's colours, told apart by colour-blind readers too.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];
/// The percentile axis runs from p0 to p99.9 on a scale where each nine gets the same room:
/// x = -log10(1 - p), so p0 = 0, p90 = 1, p99 = 2, p99.9 = 3.
const NINES: f64 = 3.0;

/// Draws `plot` into `dir` as `<file>.svg` and returns the file's path.
///
/// # Errors
///
/// A file stem that is not a plain name (letters, digits, `-`, `_`), or a file that cannot be
/// written. Values that are not finite numbers are left out of the picture.
pub(crate) fn draw(plot: &Plot, dir: &Path) -> anyhow::Result<PathBuf> {
    let stem = plot.file();
    anyhow::ensure!(
        !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "picture file name {stem:?}: only letters, digits, '-' and '_'"
    );
    let path = dir.join(format!("{stem}.svg"));
    match plot {
        Plot::Distribution { title, series, .. } => {
            let curves = series
                .iter()
                .map(|(mode, samples)| (mode.as_str(), percentile_curve(samples)))
                .collect();
            lines(&path, title, "percentile", "latency (ms)", curves, true)
        }
        Plot::Lines {
            title,
            x_label,
            y_label,
            series,
            ..
        } => {
            let series = series
                .iter()
                .map(|(label, points)| (label.as_str(), points.clone()))
                .collect();
            lines(&path, title, x_label, y_label, series, false)
        }
        Plot::Bars {
            title,
            y_label,
            bars: values,
            ..
        } => bars(&path, title, y_label, values),
    }
    .with_context(|| format!("drawing {}", path.display()))?;
    Ok(path)
}

/// The latency at each point of the percentile axis, from the finite samples.
pub(crate) fn percentile_curve(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let Some(last) = sorted.len().checked_sub(1) else {
        return Vec::new();
    };
    (0..=300)
        .map(|step| {
            let x = NINES * f64::from(step) / 300.0;
            let p = 1.0 - 10f64.powf(-x);
            let index = ((last as f64) * p).round() as usize;
            (x, sorted[index.min(last)])
        })
        .collect()
}

/// `p99.9` for the point x = 3 of the percentile axis.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let text = format!("{p:.1}");
    format!("p{}", text.trim_end_matches(".0"))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: Vec<(&str, Vec<(f64, f64)>)>,
    percentile_x: bool,
) -> anyhow::Result<()> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .into_iter()
        .map(|(label, points)| {
            let finite = points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (label, finite)
        })
        .filter(|(_, points): &(&str, Vec<_>)| !points.is_empty())
        .collect();
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = || series.iter().flat_map(|(_, points)| points.iter());
    let x = span(points().map(|p| p.0));
    let y = span(points().map(|p| p.1));
    // The smallest value above zero: a log axis starts below it (a latency can round to zero).
    let floor = span(points().map(|p| p.1).filter(|y| *y > 0.0)).map(|(lo, _)| lo);
    match (x, y) {
        (Some(x), Some((y_min, y_max))) => {
            let x = if percentile_x { 0.0..NINES } else { padded(x) };
            // A log axis when the values span more than a factor 20 (latency tails do), so
            // the body of the distribution is not a flat line at the bottom.
            match floor.filter(|floor| y_min >= 0.0 && y_max / floor > 20.0) {
                Some(floor) => {
                    let bottom = floor / 1.2;
                    let lifted: Vec<(&str, Vec<(f64, f64)>)> = series
                        .iter()
                        .map(|(label, points)| {
                            let points = points.iter().map(|&(x, y)| (x, y.max(bottom)));
                            (*label, points.collect())
                        })
                        .collect();
                    let chart = Chart {
                        title,
                        x_label,
                        y_label,
                        series: &lifted,
                        percentile_x,
                    };
                    chart.draw(&root, x, (bottom..y_max * 1.5).log_scale())?;
                }
                None => {
                    let chart = Chart {
                        title,
                        x_label,
                        y_label,
                        series: &series,
                        percentile_x,
                    };
                    // Room above the lines for the legend.
                    let (lo, hi) = (y_min.min(0.0), y_max);
                    chart.draw(&root, x, padded((lo, hi + (hi - lo) * 0.25)))?;
                }
            }
        }
        _ => no_data(&root, title)?,
    }
    root.present()?;
    Ok(())
}

struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [(&'a str, Vec<(f64, f64)>)],
    percentile_x: bool,
}

impl Chart<'_> {
    fn draw<Y>(&self, root: &Area<'_>, x: Range<f64>, y: Y) -> anyhow::Result<()>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(x, y)?;
        let x_format = |x: &f64| {
            if self.percentile_x {
                percentile_label(*x)
            } else {
                number(*x)
            }
        };
        let y_format = |y: &f64| number(*y);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_label)
            .y_desc(self.y_label)
            .max_light_lines(4)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format);
        if self.percentile_x {
            // One label per nine: p0, p90, p99, p99.9.
            mesh.x_labels(4);
        }
        mesh.draw()?;
        for (i, (label, points)) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            // Percentile curves rise to the right, leaving the upper left free; other lines
            // have room made above them.
            .position(if self.percentile_x {
                SeriesLabelPosition::UpperLeft
            } else {
                SeriesLabelPosition::UpperRight
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// Horizontal bars, one per label, each with its value written at its end; the first bar is
/// at the top.
fn bars(
    path: &Path,
    title: &str,
    value_label: &str,
    values: &[(String, f64)],
) -> anyhow::Result<()> {
    let values: Vec<(&str, f64)> = values
        .iter()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .map(|(label, v)| (label.as_str(), *v))
        .collect();
    let height = HEIGHT.max(120 + 36 * values.len() as u32);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let Some(max) = values.iter().map(|(_, v)| *v).reduce(f64::max) else {
        no_data(&root, title)?;
        root.present()?;
        return Ok(());
    };
    let n = values.len();
    // Room for the longest label at about 8 px a character, within reason.
    let longest = values
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let label_room = (longest as u32 * 8 + 16).clamp(80, WIDTH / 2);
    let top = if max > 0.0 { max * 1.2 } else { 1.0 };
    // Bar `i` is centred on row `n - 1 - i`, so the list reads top down.
    let row_of = |i: usize| (n - 1 - i) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(label_room)
        .build_cartesian_2d(0.0..top, -0.5..n as f64 - 0.5)?;
    let x_format = |x: &f64| number(*x);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .max_light_lines(4)
        .x_desc(value_label)
        .x_label_formatter(&x_format)
        .draw()?;
    chart.draw_series(values.iter().enumerate().map(|(i, (_, v))| {
        let row = row_of(i);
        Rectangle::new(
            [(0.0, row - 0.4), (*v, row + 0.4)],
            COLOURS[i % COLOURS.len()].filled(),
        )
    }))?;
    let value_style = ("sans-serif", 14)
        .into_text_style(&root)
        .pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(values.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            number(*v),
            (*v + top * 0.01, row_of(i)),
            value_style.clone(),
        )
    }))?;
    // Each bar's label left of the axis, right-aligned, where the plot puts the row.
    let label_style = ("sans-serif", 14)
        .into_text_style(&root)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, (label, _)) in values.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, row_of(i)));
        root.draw(&Text::new(*label, (x - 8, y), label_style.clone()))?;
    }
    root.present()?;
    Ok(())
}

fn no_data(root: &Area<'_>, title: &str) -> anyhow::Result<()> {
    root.draw(&Text::new(
        format!("{title}: no data in this run"),
        (40, 40),
        ("sans-serif", 20),
    ))?;
    Ok(())
}

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |span, v| match span {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// The range with a little room above, and never empty (plotters needs a width).
fn padded((lo, hi): (f64, f64)) -> Range<f64> {
    if hi > lo {
        lo..hi + (hi - lo) * 0.05
    } else {
        let room = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo - room..hi + room
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("the SVG")
    }

    #[test]
    fn each_kind_is_written_with_its_labels() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let latencies: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 0.5).collect();
        let path = draw(
            &Plot::Distribution {
                file: "e2e-latency".into(),
                title: "commit to consumer".into(),
                series: vec![
                    ("polling".into(), latencies),
                    (
                        "LISTEN/NOTIFY & more".into(),
                        vec![0.0, 3.0, f64::NAN, 900.0],
                    ),
                ],
            },
            dir.path(),
        )
        .expect("drawn");
        let svg = read(&path);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("polling"));
        // Escaped for XML, as the viewer must parse it.
        assert!(svg.contains("LISTEN/NOTIFY &amp; more"));
        assert!(svg.contains("p99.9") && svg.contains("p90"));

        let path = draw(
            &Plot::Lines {
                file: "backlog".into(),
                title: "drain rate".into(),
                x_label: "events drained".into(),
                y_label: "events/s".into(),
                series: vec![("1M".into(), vec![(0.0, 40_000.0), (1e6, 42_000.0)])],
            },
            dir.path(),
        )
        .expect("drawn");
        let svg = read(&path);
        assert!(svg.contains("1M") && svg.contains("events drained"));

        let path = draw(
            &Plot::Bars {
                file: "inbox".into(),
                title: "consuming".into(),
                y_label: "events/s".into(),
                bars: vec![
                    ("inbox".into(), 9_000.0),
                    ("bare consumer".into(), 90_000.0),
                    ("database alone".into(), 20_000.0),
                ],
            },
            dir.path(),
        )
        .expect("drawn");
        let svg = read(&path);
        assert!(svg.contains("bare consumer") && svg.contains("90,000"));
        assert!(svg.contains("database alone") && svg.contains("20,000"));
    }

    #[test]
    fn nothing_to_draw_is_said_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let empty = Plot::Bars {
            file: "empty".into(),
            title: "nothing".into(),
            y_label: "x".into(),
            bars: vec![("nan".into(), f64::NAN)],
        };
        let svg = read(&draw(&empty, dir.path()).expect("drawn"));
        assert!(svg.contains("no data in this run"));
        let escape = Plot::Lines {
            file: "../escape".into(),
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
        };
        assert!(draw(&escape, dir.path()).is_err());
    }

    #[test]
    fn the_percentile_axis() {
        assert_eq!(percentile_label(0.0), "p0");
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(3.0), "p99.9");
        let curve = percentile_curve(&[5.0, 1.0, 3.0]);
        assert_eq!(curve.first(), Some(&(0.0, 1.0)));
        assert_eq!(curve.last().map(|p| p.1), Some(5.0));
        assert!(percentile_curve(&[f64::INFINITY]).is_empty());
    }
}
