//! Figures (PNG or SVG, chosen by the file extension), drawn with plotters and the embedded
//! DejaVu Sans font so they render identically on machines without system fonts.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use fedser_core::Emotion;
use plotters::coord::Shift;
use plotters::prelude::*;

/// The family name the embedded font is registered under.
pub(crate) const FONT: &str = "sans-serif";

/// Registers the embedded font (once per process); every figure calls it before drawing text.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu font is valid"));
    });
}

/// Runs `$draw` (a generic function of a drawing area) on a PNG or SVG backend chosen by the
/// extension of `$path`, then writes the file. (A macro: closures cannot be generic over the
/// two backend types.) Paths inside are absolute so that other modules can use it.
macro_rules! render {
    ($path:expr, $size:expr, $draw:expr) => {{
        use ::anyhow::Context as _;
        use ::plotters::prelude::IntoDrawingArea as _;
        $crate::plots::register_font();
        let path: &::std::path::Path = $path;
        let present = |r: ::std::result::Result<(), String>| -> ::anyhow::Result<()> {
            r.map_err(|e| ::anyhow::anyhow!("{e}"))
                .with_context(|| format!("cannot write {}", path.display()))
        };
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => {
                let root = $crate::bitmap_text::TextFixed(::plotters::prelude::BitMapBackend::new(
                    path, $size,
                ))
                .into_drawing_area();
                $draw(&root)?;
                present(root.present().map_err(|e| e.to_string()))
            }
            Some("svg") => {
                let root = ::plotters::prelude::SVGBackend::new(path, $size).into_drawing_area();
                $draw(&root)?;
                present(root.present().map_err(|e| e.to_string()))
            }
            _ => ::anyhow::bail!("{}: figures are written as .png or .svg", path.display()),
        }
    }};
}
pub(crate) use render;

/// Turns a plotters error (whose types differ per backend) into an anyhow error.
pub(crate) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// The paper's bar chart of utterances per emotion.
pub fn emotion_counts(path: &Path, title: &str, counts: &[usize; Emotion::COUNT]) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        title: &str,
        counts: &[usize; 5],
    ) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 26))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            // Integer ranges are inclusive in plotters: 0..4 makes the five class segments.
            .build_cartesian_2d((0usize..Emotion::COUNT - 1).into_segmented(), 0f64..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    Emotion::from_index(*i).map_or(String::new(), |e| e.name().to_string())
                }
                SegmentValue::Last => String::new(),
            })
            .y_desc("utterances")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let colours = [
            RGBColor(120, 120, 120),
            RGBColor(240, 170, 30),
            RGBColor(210, 50, 40),
            RGBColor(50, 100, 200),
            RGBColor(130, 60, 170),
        ];
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), c as f64),
                    ],
                    colours[i].filled(),
                );
                bar.set_margin(0, 0, 18, 18);
                bar
            }))
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                Text::new(
                    c.to_string(),
                    (SegmentValue::CenterOf(i), c as f64 + max * 0.03),
                    (FONT, 16)
                        .into_font()
                        .style(FontStyle::Normal)
                        .color(&BLACK)
                        .pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Bottom,
                        )),
                )
            }))
            .map_err(err)?;
        Ok(())
    }
    render!(path, (800, 500), |root| draw(root, title, counts))
}

/// The waveform of one recording, amplitude against seconds.
pub fn waveform(path: &Path, title: &str, samples: &[f32], sample_rate: u32) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        title: &str,
        samples: &[f32],
        rate: u32,
    ) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let seconds = samples.len() as f64 / rate as f64;
        let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3) as f64 * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..seconds.max(1e-3), -peak..peak)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("amplitude")
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        // Min/max envelope per pixel column: every peak stays visible at any length.
        let columns = 1600usize.min(samples.len().max(1));
        let per = samples.len().div_ceil(columns).max(1);
        let mut points = Vec::with_capacity(columns * 2);
        for (c, chunk) in samples.chunks(per).enumerate() {
            let t = (c * per) as f64 / rate as f64;
            let (lo, hi) = chunk
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            points.push((t, lo as f64));
            points.push((t, hi as f64));
        }
        chart
            .draw_series(LineSeries::new(points, RGBColor(30, 90, 180)))
            .map_err(err)?;
        Ok(())
    }
    render!(path, (1000, 360), |root| draw(
        root,
        title,
        samples,
        sample_rate
    ))
}

/// The robustness table as a figure: UA on the clean recordings and under each perturbation,
/// one horizontal bar each, with the clean UA as a reference line.
pub fn robustness(path: &Path, table: &fedser_client::robustness::Robustness) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        rows: &[(String, f64)],
    ) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let n = rows.len();
        let mut chart = ChartBuilder::on(root)
            .caption("UA by recording chain", (FONT, 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..1f64, (0usize..n - 1).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .x_labels(11)
            .y_label_formatter(&|y| match y {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    rows.get(n - 1 - *i).map_or(String::new(), |r| r.0.clone())
                }
                SegmentValue::Last => String::new(),
            })
            .x_desc("unweighted accuracy (UA)")
            .label_style((FONT, 15))
            .draw()
            .map_err(err)?;
        let clean = rows[0].1;
        chart
            .draw_series(rows.iter().enumerate().map(|(k, (_, ua))| {
                let i = n - 1 - k;
                let colour = if k == 0 {
                    RGBColor(120, 120, 120)
                } else if clean - ua > 0.02 {
                    RGBColor(210, 80, 50)
                } else {
                    RGBColor(50, 110, 200)
                };
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*ua, SegmentValue::Exact(i + 1)),
                    ],
                    colour.filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(k, (_, ua))| {
                Text::new(
                    format!("{ua:.3}"),
                    (ua + 0.01, SegmentValue::CenterOf(n - 1 - k)),
                    (FONT, 14).into_font().color(&BLACK).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Left,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    ),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(clean, SegmentValue::Exact(0)), (clean, SegmentValue::Last)],
                BLACK.stroke_width(1),
            )))
            .map_err(err)?;
        Ok(())
    }
    let mut rows = vec![("clean".to_string(), table.clean.ua)];
    rows.extend(
        table
            .perturbed
            .iter()
            .map(|p| (p.perturbation.clone(), p.ua)),
    );
    let height = (120 + 34 * rows.len()) as u32;
    render!(path, (900, height), |root| draw(root, &rows))
}
