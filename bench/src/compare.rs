//! `bench compare a.json b.json ...`: the runs of several brokers or setups
//! (reports of `bench produce --json`) in one table and one
//! percentile-distribution chart, log-scaled like HdrHistogram's plotter.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// DejaVu Sans, where Debian and most distributions put it.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The chart's x axis ends at 99.999%.
const INVERSE_TAIL_MAX: f64 = 1e5;

#[derive(Args, Debug)]
pub struct Options {
    /// JSON reports written by `bench produce --json`.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the chart as SVG here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Write the chart as PNG here.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// TTF font for the charts' text.
    #[arg(long, default_value = DEFAULT_FONT)]
    pub font: PathBuf,
    #[arg(long, default_value = "Produce-ack latency by percentile")]
    pub title: String,
}

pub struct Series {
    pub label: String,
    pub acks: String,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    pub errors: u64,
    pub percentiles: Vec<f64>,
    /// (percentile, ms)
    pub distribution: Vec<(f64, f64)>,
}

const PERCENTILE_KEYS: [&str; 6] = ["p50", "p90", "p99", "p99.9", "p99.99", "p100"];

pub fn load(path: &Path) -> Result<Vec<Series>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let label = report["label"]
        .as_str()
        .or_else(|| report["parameters"]["bootstrap"].as_str())
        .unwrap_or("?")
        .to_string();
    let runs = report["runs"]
        .as_array()
        .with_context(|| format!("{}: no runs (not a bench produce report?)", path.display()))?;
    let mut series = Vec::new();
    for run in runs {
        let number = |key: &str| run[key].as_f64().unwrap_or(0.0);
        let distribution = run["distribution"]
            .as_array()
            .map(|points| {
                points
                    .iter()
                    .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        series.push(Series {
            label: label.clone(),
            acks: run["acks"].as_str().unwrap_or("?").to_string(),
            msgs_per_s: number("msgs_per_s"),
            mb_per_s: number("mb_per_s"),
            errors: run["errors"].as_u64().unwrap_or(0),
            percentiles: PERCENTILE_KEYS
                .iter()
                .map(|k| run["latency_ms"][k].as_f64().unwrap_or(0.0))
                .collect(),
            distribution,
        });
    }
    Ok(series)
}

pub fn print_table(series: &[Series]) {
    let width = series
        .iter()
        .map(|s| s.label.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$} {:>4} {:>11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "setup",
        "acks",
        "msgs/s",
        "MB/s",
        "p50 ms",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "errors"
    );
    for s in series {
        let cells: Vec<String> = if s.distribution.is_empty() {
            s.percentiles.iter().map(|_| "-".to_string()).collect()
        } else {
            s.percentiles.iter().map(|p| format!("{p:.3}")).collect()
        };
        println!(
            "{:<width$} {:>4} {:>11.0} {:>9.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            s.label,
            s.acks,
            s.msgs_per_s,
            s.mb_per_s,
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            s.errors
        );
    }
}

fn percentile_label(inverse: &f64) -> String {
    let percentile = 100.0 - 100.0 / inverse;
    if percentile < 1.0 {
        return "0%".to_string();
    }
    // As many decimals as the tick needs: 99%, 99.5%, 99.9%, 99.99%.
    let digits = ((inverse.log10() - 1e-9).ceil() as i64 - 2).max(0) as usize;
    format!("{percentile:.digits$}%")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Debug| anyhow!("drawing the chart: {e:?}");
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let plotted: Vec<&Series> = series
        .iter()
        .filter(|s| !s.distribution.is_empty())
        .collect();
    let values = plotted
        .iter()
        .flat_map(|s| s.distribution.iter().map(|(_, ms)| *ms));
    let y_max = values.clone().fold(0.0f64, f64::max).max(0.01) * 1.5;
    let y_min = values.fold(f64::MAX, f64::min).clamp(0.001, y_max / 10.0) / 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (1f64..INVERSE_TAIL_MAX).log_scale(),
            (y_min..y_max).log_scale(),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&percentile_label)
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in plotted.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = s
            .distribution
            .iter()
            .filter(|(p, _)| *p < 100.0)
            .map(|(p, ms)| {
                (
                    (1.0 / (1.0 - p / 100.0)).min(INVERSE_TAIL_MAX),
                    ms.max(y_min),
                )
            });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{} acks={}", s.label, s.acks))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

pub fn run(options: &Options) -> Result<()> {
    let mut series = Vec::new();
    for path in &options.reports {
        series.extend(load(path)?);
    }
    if series.is_empty() {
        bail!("the reports hold no runs");
    }
    print_table(&series);
    charts(
        &series,
        &options.title,
        options.svg.as_deref(),
        options.png.as_deref(),
        &options.font,
    )
}

/// Draws the percentile chart of `series` as SVG and/or PNG.
pub fn charts(
    series: &[Series],
    title: &str,
    svg: Option<&Path>,
    png: Option<&Path>,
    font: &Path,
) -> Result<()> {
    if svg.is_none() && png.is_none() {
        return Ok(());
    }
    // Text is laid out with a TTF font in both formats.
    let bytes = std::fs::read(font)
        .with_context(|| format!("charts need a TTF font: {} (pass --font)", font.display()))?;
    // plotters keeps registered fonts for the process: leak once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{}: not a usable TTF font", font.display()))?;
    if let Some(path) = svg {
        draw(
            SVGBackend::new(path, (1000, 640)).into_drawing_area(),
            title,
            series,
        )?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = png {
        draw(
            BitMapBackend::new(path, (1000, 640)).into_drawing_area(),
            title,
            series,
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_like_hdrhistogram_plots() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&2.0), "50%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&200.0), "99.5%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&100_000.0), "99.999%");
    }
}
