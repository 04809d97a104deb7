//! The report's figures. Each is first *planned* — its data gathered, or the reason it cannot
//! be drawn — then drawn twice (PNG for viewing, SVG for the page), with the machinery of
//! [`crate::plots`].

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result};
use fedser_core::Emotion;
use fedser_fl::{EvalSummary, RoundRecord};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{RunInfo, final_eval};
use crate::plots::{self, FONT, err, render};

/// One figure of the report.
pub struct Figure {
    /// File stem under `plots/` (also the page anchor).
    pub stem: &'static str,
    pub heading: &'static str,
    pub outcome: Outcome,
}

/// What became of a figure.
pub enum Outcome {
    /// Drawn; the SVG text, without its XML declaration, ready to inline.
    Drawn { svg: String },
    /// Not drawn, and why (for the page).
    Skipped(String),
}

/// Draws a figure into the file it is given; `Err(reason)` from a planner means "skip".
type Draw = Box<dyn Fn(&Path) -> Result<()>>;
type Plan = std::result::Result<Draw, String>;

/// Plans and draws every figure into `plots`.
pub fn draw_all(
    plots: &Path,
    run_dir: &Path,
    info: &RunInfo,
    rounds: &[RoundRecord],
    attacks: &[serde_json::Value],
) -> Result<Vec<Figure>> {
    let plans: [(&'static str, &'static str, Plan); 8] = [
        (
            "curves",
            "Accuracy, UA and macro-F1 per round",
            curves(info, rounds),
        ),
        ("loss", "Loss per round", loss(info, rounds)),
        ("confusion", "Confusion matrix", confusion(rounds)),
        (
            "clients",
            "Clients' validation accuracy per round",
            clients(rounds),
        ),
        (
            "emotion_counts",
            "Utterances per emotion (whole corpus)",
            emotion_counts(info),
        ),
        ("waveform", "Example recording", waveform(run_dir, info)),
        (
            "privacy",
            "Privacy spent per round (epsilon)",
            privacy(info, rounds),
        ),
        (
            "attack_gender",
            "Gender inference from updates, per round",
            attack_gender(info, attacks),
        ),
    ];
    plans
        .into_iter()
        .map(|(stem, heading, plan)| {
            let outcome = match plan {
                Ok(draw) => Outcome::Drawn {
                    svg: draw_both(plots, stem, &draw)?,
                },
                Err(why) => {
                    remove_stale(plots, stem)?;
                    Outcome::Skipped(why)
                }
            };
            Ok(Figure {
                stem,
                heading,
                outcome,
            })
        })
        .collect()
}

/// Writes `stem.png` and `stem.svg`; returns the SVG for inlining.
fn draw_both(plots: &Path, stem: &str, draw: &Draw) -> Result<String> {
    draw(&plots.join(format!("{stem}.png")))?;
    let svg = plots.join(format!("{stem}.svg"));
    draw(&svg)?;
    let text =
        std::fs::read_to_string(&svg).with_context(|| format!("cannot read {}", svg.display()))?;
    Ok(strip_prolog(&text).to_string())
}

/// Removes a skipped figure's files left by an earlier report, so that `plots/` matches the
/// page.
fn remove_stale(plots: &Path, stem: &str) -> Result<()> {
    for ext in ["png", "svg"] {
        let path = plots.join(format!("{stem}.{ext}"));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The SVG without an XML declaration or doctype, which are invalid inside HTML.
fn strip_prolog(svg: &str) -> &str {
    let mut rest = svg.trim_start();
    while rest.starts_with("<?") || rest.starts_with("<!DOCTYPE") {
        match rest.find('>') {
            Some(end) => rest = rest[end + 1..].trim_start(),
            None => break,
        }
    }
    rest
}

// ---------------------------------------------------------------------------------------
// Plans: the data each figure needs, or why there is none.

fn central(r: &RoundRecord) -> Option<&EvalSummary> {
    r.central.as_ref()
}

fn federated(r: &RoundRecord) -> Option<&EvalSummary> {
    r.federated.as_ref()
}

/// (round, value) for the rounds where `value` is present and finite.
fn points(rounds: &[RoundRecord], value: impl Fn(&RoundRecord) -> Option<f64>) -> Vec<(f64, f64)> {
    rounds
        .iter()
        .filter_map(|r| value(r).map(|v| (r.round as f64, v)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// One colour per metric; central and federated share it and differ by dashing.
const BLUE_INK: RGBColor = RGBColor(30, 90, 180);
const ORANGE_INK: RGBColor = RGBColor(230, 130, 20);
const GREEN_INK: RGBColor = RGBColor(40, 150, 70);

fn curves(info: &RunInfo, rounds: &[RoundRecord]) -> Plan {
    let series = curve_series(rounds);
    if series.is_empty() {
        return Err("no round was evaluated, centrally or by the clients".into());
    }
    let chart = LineChart {
        title: format!("{}: accuracy, UA, macro-F1", info.name),
        y_desc: "score (solid: central, dashed: federated)",
        y_max: 1.0,
        legend: SeriesLabelPosition::LowerRight,
        series,
    };
    Ok(Box::new(move |path: &Path| line_chart(path, &chart)))
}

/// Accuracy, UA and macro-F1 per round, central and federated; a metric that coincides with
/// another (accuracy and UA on a balanced test set) is drawn once, labelled as both.
fn curve_series(rounds: &[RoundRecord]) -> Vec<Series> {
    type Get = fn(&EvalSummary) -> f64;
    let metrics: [(&str, Get, RGBColor); 3] = [
        ("accuracy", |e| e.accuracy, BLUE_INK),
        ("UA", |e| e.ua, ORANGE_INK),
        ("macro-F1", |e| e.macro_f1, GREEN_INK),
    ];
    type Pick = fn(&RoundRecord) -> Option<&EvalSummary>;
    let sources: [(&str, Pick, bool); 2] =
        [("central", central, false), ("federated", federated, true)];
    let mut series = Vec::new();
    for (source, pick, dashed) in sources {
        let mut own: Vec<Series> = metrics
            .iter()
            .map(|(metric, get, colour)| Series {
                label: format!("{metric}, {source}"),
                colour: *colour,
                dashed,
                points: points(rounds, |r| pick(r).map(get)),
            })
            .collect();
        // On a balanced test set accuracy equals UA and one line would hide the other: draw
        // it once and say so.
        if own[0].points == own[1].points {
            own.remove(0);
            own[0].label = format!("UA = accuracy, {source}");
        }
        series.extend(own);
    }
    series.retain(|s| !s.points.is_empty());
    series
}

fn loss(info: &RunInfo, rounds: &[RoundRecord]) -> Plan {
    let mut series = vec![
        Series {
            label: "training (clients' weighted mean)".into(),
            colour: RGBColor(120, 120, 120),
            dashed: false,
            points: points(rounds, |r| r.train_loss),
        },
        Series {
            label: "central (held-out speakers)".into(),
            colour: BLUE_INK,
            dashed: false,
            points: points(rounds, |r| central(r).map(|e| e.loss)),
        },
        Series {
            label: "federated (clients' validation)".into(),
            colour: BLUE_INK,
            dashed: true,
            points: points(rounds, |r| federated(r).map(|e| e.loss)),
        },
    ];
    series.retain(|s| !s.points.is_empty());
    if series.is_empty() {
        return Err("no round recorded a training or evaluation loss".into());
    }
    let highest = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let chart = LineChart {
        title: format!("{}: loss", info.name),
        y_desc: "loss",
        y_max: if highest > 0.0 { highest * 1.1 } else { 1.0 },
        legend: SeriesLabelPosition::UpperRight,
        series,
    };
    Ok(Box::new(move |path: &Path| line_chart(path, &chart)))
}

fn privacy(info: &RunInfo, rounds: &[RoundRecord]) -> Plan {
    let eps = points(rounds, |r| {
        r.stage_records
            .get("privacy")
            .and_then(|p| p["epsilon"].as_f64())
    });
    if eps.is_empty() {
        return Err("this run used no differential privacy".into());
    }
    let highest = eps.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let chart = LineChart {
        title: format!("{}: epsilon spent", info.name),
        y_desc: "epsilon",
        y_max: if highest > 0.0 { highest * 1.1 } else { 1.0 },
        legend: SeriesLabelPosition::UpperLeft,
        series: vec![Series {
            label: "epsilon (RDP accountant)".into(),
            colour: ORANGE_INK,
            dashed: false,
            points: eps,
        }],
    };
    Ok(Box::new(move |path: &Path| line_chart(path, &chart)))
}

fn attack_gender(info: &RunInfo, attacks: &[serde_json::Value]) -> Plan {
    let Some(g) = attacks.iter().find(|a| a["kind"] == "gender") else {
        return Err("no gender attack was run on this run (fedser attack --kind gender)".into());
    };
    let per_round: Vec<(f64, f64)> = g["uar_per_round"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| Some((r["round"].as_f64()?, r["uar"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    if per_round.is_empty() {
        return Err("the gender attack recorded no round".into());
    }
    let chance = per_round.iter().map(|&(x, _)| (x, 0.5)).collect();
    let chart = LineChart {
        title: format!("{}: attack UAR (chance 0.5)", info.name),
        y_desc: "UAR",
        y_max: 1.0,
        legend: SeriesLabelPosition::LowerRight,
        series: vec![
            Series {
                label: "gender attack".into(),
                colour: BLUE_INK,
                dashed: false,
                points: per_round,
            },
            Series {
                label: "chance".into(),
                colour: RGBColor(120, 120, 120),
                dashed: true,
                points: chance,
            },
        ],
    };
    Ok(Box::new(move |path: &Path| line_chart(path, &chart)))
}

fn confusion(rounds: &[RoundRecord]) -> Plan {
    let Some(fin) = final_eval(rounds) else {
        return Err("no round was evaluated, centrally or by the clients".into());
    };
    if fin.eval.confusion.total() == 0 {
        return Err(format!(
            "the round {} evaluation counted nothing",
            fin.round
        ));
    }
    let which = if fin.central { "central" } else { "federated" };
    let title = format!("Round {} ({which}): true vs predicted", fin.round);
    let counts = fin.eval.confusion.counts;
    Ok(Box::new(move |path: &Path| heat_map(path, &title, &counts)))
}

fn clients(rounds: &[RoundRecord]) -> Plan {
    let spread: Vec<(f64, Vec<f64>)> = rounds
        .iter()
        .map(|r| {
            let mut values: Vec<f64> = r
                .clients
                .iter()
                .filter_map(|c| c.val_accuracy)
                .filter(|v| v.is_finite())
                .collect();
            values.sort_by(f64::total_cmp);
            (r.round as f64, values)
        })
        .filter(|(_, values)| !values.is_empty())
        .collect();
    if spread.is_empty() {
        return Err("no client reported a validation accuracy".into());
    }
    Ok(Box::new(move |path: &Path| client_spread(path, &spread)))
}

fn emotion_counts(info: &RunInfo) -> Plan {
    let counts = info.emotion_counts;
    if counts.iter().all(|&c| c == 0) {
        return Err("run.json counts no utterances per emotion".into());
    }
    let title = format!("{}: utterances per emotion", info.corpus);
    Ok(Box::new(move |path: &Path| {
        plots::emotion_counts(path, &title, &counts)
    }))
}

fn waveform(run_dir: &Path, info: &RunInfo) -> Plan {
    let Some(example) = &info.example_audio else {
        return Err("run.json names no example recording".into());
    };
    // `join` keeps an absolute path as it is.
    let audio = fedser_audio::decode_file(&run_dir.join(&example.path))
        .map_err(|e| format!("the example recording cannot be decoded: {e}"))?;
    let title = format!("{} ({:.2} s)", example.utterance, audio.seconds());
    Ok(Box::new(move |path: &Path| {
        plots::waveform(path, &title, &audio.samples, audio.sample_rate)
    }))
}

// ---------------------------------------------------------------------------------------
// Drawing.

/// One line of a [`LineChart`].
struct Series {
    label: String,
    colour: RGBColor,
    dashed: bool,
    /// (round, value), in round order.
    points: Vec<(f64, f64)>,
}

/// Values per round, from 0 to `y_max`.
struct LineChart {
    title: String,
    y_desc: &'static str,
    y_max: f64,
    legend: SeriesLabelPosition,
    series: Vec<Series>,
}

/// The x range covering `rounds`, padded so that the first and last markers are not cut.
fn round_range(rounds: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = rounds.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let pad = ((hi - lo) * 0.03).max(0.5);
    lo - pad..hi + pad
}

/// Rounds are integers: label only integer ticks (the padding adds fractional ones).
fn round_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// Series longer than this are drawn without point markers.
const MAX_MARKERS: usize = 40;

fn line_chart(path: &Path, chart: &LineChart) -> Result<()> {
    fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &LineChart) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let x = round_range(c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
        let mut ctx = ChartBuilder::on(root)
            .caption(&c.title, (FONT, 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x, 0f64..c.y_max)
            .map_err(err)?;
        ctx.configure_mesh()
            .x_desc("round")
            .y_desc(c.y_desc)
            .x_label_formatter(&round_label)
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        for s in &c.series {
            let style = s.colour.stroke_width(2);
            let dashed = s.dashed;
            let annotation = if s.dashed {
                ctx.draw_series(DashedLineSeries::new(s.points.clone(), 8, 5, style))
            } else {
                ctx.draw_series(LineSeries::new(s.points.clone(), style))
            }
            .map_err(err)?;
            annotation.label(&s.label).legend(move |(x, y)| {
                if dashed {
                    DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, style).into_dyn()
                } else {
                    PathElement::new(vec![(x, y), (x + 24, y)], style).into_dyn()
                }
            });
            // Markers, so that a run of a single round still shows its values; on long runs
            // they would bury the lines.
            if s.points.len() > MAX_MARKERS {
                continue;
            }
            let marker = if s.dashed {
                s.colour.stroke_width(1)
            } else {
                s.colour.filled()
            };
            ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, marker)))
                .map_err(err)?;
        }
        ctx.configure_series_labels()
            .position(c.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
        Ok(())
    }
    render!(path, (1000, 540), |root| draw(root, chart))
}

/// Cell colour for a row fraction in [0, 1]: white to dark blue.
fn heat(fraction: f64) -> RGBColor {
    let f = fraction.clamp(0.0, 1.0);
    let mix = |lo: u8| (255.0 - f * (255.0 - lo as f64)).round() as u8;
    RGBColor(mix(25), mix(70), mix(150))
}

/// The class name for an axis segment (`flip`: the y axis runs upwards, the first class is
/// drawn at the top).
fn class_label(v: &SegmentValue<usize>, flip: bool) -> String {
    let index = match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => *i,
        SegmentValue::Last => return String::new(),
    };
    let index = if flip {
        Emotion::COUNT.checked_sub(index + 1)
    } else {
        Some(index)
    };
    index
        .and_then(Emotion::from_index)
        .map_or(String::new(), |e| e.name().to_string())
}

type Counts = [[u64; Emotion::COUNT]; Emotion::COUNT];

fn heat_map(path: &Path, title: &str, counts: &Counts) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        title: &str,
        counts: &Counts,
    ) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        // Integer ranges are inclusive in plotters: 0..4 makes the five class segments.
        let axis = || (0usize..Emotion::COUNT - 1).into_segmented();
        let mut ctx = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(axis(), axis())
            .map_err(err)?;
        ctx.configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_label_formatter(&|v| class_label(v, false))
            .y_label_formatter(&|v| class_label(v, true))
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let cells = counts.iter().enumerate().flat_map(|(truth, row)| {
            let support = row.iter().sum::<u64>().max(1) as f64;
            let y = Emotion::COUNT - 1 - truth;
            row.iter()
                .enumerate()
                .map(move |(pred, &n)| (pred, y, n, n as f64 / support))
        });
        let cells: Vec<_> = cells.collect();
        ctx.draw_series(cells.iter().map(|&(x, y, _, f)| {
            Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                heat(f).filled(),
            )
        }))
        .map_err(err)?;
        let centre = Pos::new(HPos::Center, VPos::Center);
        ctx.draw_series(cells.iter().map(|&(x, y, n, f)| {
            // Light text on dark cells.
            let colour = if f > 0.55 { WHITE } else { BLACK };
            Text::new(
                n.to_string(),
                (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                (FONT, 18).into_font().color(&colour).pos(centre),
            )
        }))
        .map_err(err)?;
        Ok(())
    }
    render!(path, (720, 640), |root| draw(root, title, counts))
}

/// The value at quantile `q` of sorted, non-empty `values`, interpolating linearly (numpy's
/// default).
fn quantile(values: &[f64], q: f64) -> f64 {
    let pos = q * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// A box per round (quartiles, median line, min–max whiskers) and the last round's clients as
/// dots. `spread`: (round, sorted non-empty values), in round order.
fn client_spread(path: &Path, spread: &[(f64, Vec<f64>)]) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        spread: &[(f64, Vec<f64>)],
    ) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let mut ctx = ChartBuilder::on(root)
            .caption("Clients' validation accuracy", (FONT, 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(round_range(spread.iter().map(|s| s.0)), 0f64..1f64)
            .map_err(err)?;
        ctx.configure_mesh()
            .x_desc("round")
            .y_desc("accuracy")
            .x_label_formatter(&round_label)
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let ink = BLUE_INK.stroke_width(1);
        let shapes = spread.iter().flat_map(|(x, v)| box_shapes(*x, v, ink));
        ctx.draw_series(shapes)
            .map_err(err)?
            .label("min, quartiles, median, max")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], ink));
        let Some((last, values)) = spread.last() else {
            return Ok(());
        };
        // Spread the dots sideways so equal accuracies stay countable.
        let n = values.len().max(2) as f64;
        let dots = values.iter().enumerate().map(|(i, &v)| {
            let dx = (i as f64 / (n - 1.0) - 0.5) * 0.5;
            Circle::new((last + dx, v), 4, ORANGE_INK.filled())
        });
        ctx.draw_series(dots)
            .map_err(err)?
            .label(format!("round {last}: each client"))
            .legend(|(x, y)| Circle::new((x + 10, y), 4, ORANGE_INK.filled()));
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
        Ok(())
    }
    render!(path, (1000, 540), |root| draw(root, spread))
}

/// The elements of one box: the interquartile box, the median, and whiskers with caps.
fn box_shapes<DB: DrawingBackend>(
    x: f64,
    sorted: &[f64],
    ink: ShapeStyle,
) -> Vec<DynElement<'static, DB, (f64, f64)>> {
    let q = |p| quantile(sorted, p);
    let (min, q1, median, q3, max) = (q(0.0), q(0.25), q(0.5), q(0.75), q(1.0));
    let (w, cap) = (0.3, 0.15);
    let line = |a: (f64, f64), b: (f64, f64), style: ShapeStyle| {
        PathElement::new(vec![a, b], style).into_dyn()
    };
    vec![
        Rectangle::new([(x - w, q1), (x + w, q3)], BLUE_INK.mix(0.25).filled()).into_dyn(),
        Rectangle::new([(x - w, q1), (x + w, q3)], ink).into_dyn(),
        line((x, min), (x, q1), ink),
        line((x, q3), (x, max), ink),
        line((x - cap, min), (x + cap, min), ink),
        line((x - cap, max), (x + cap, max), ink),
        line((x - w, median), (x + w, median), BLUE_INK.stroke_width(3)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert_eq!(quantile(&v, 0.25), 1.75);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&[0.7], 0.75), 0.7);
    }

    #[test]
    fn accuracy_equal_to_ua_is_drawn_once_and_labelled_as_both() {
        let eval = |acc: f64, ua: f64| -> serde_json::Value {
            serde_json::json!({"clients": 1, "examples": 10, "loss": 1.0, "accuracy": acc,
                "ua": ua, "macro_f1": 0.3, "weighted_f1": 0.3,
                "confusion": {"counts": [[1,0,0,0,0],[0,1,0,0,0],[0,0,1,0,0],[0,0,0,1,0],[0,0,0,0,1]]}})
        };
        let record = |round: u32, c: serde_json::Value, f: serde_json::Value| -> RoundRecord {
            serde_json::from_value(serde_json::json!({
                "round": round, "selected": 2, "accepted": 2, "dropped": 0, "stragglers": 0,
                "errors": 0, "rejected": 0, "aggregated": true, "central": c, "federated": f,
                "clients": [], "bytes_down": 0, "bytes_up": 0, "fit_seconds": 0.0,
                "eval_seconds": 0.0, "seconds": 0.0}))
            .unwrap()
        };
        // Central: balanced, accuracy = UA; federated: they differ.
        let rounds = [
            record(1, eval(0.5, 0.5), eval(0.6, 0.55)),
            record(2, eval(0.6, 0.6), eval(0.7, 0.65)),
        ];
        let labels: Vec<String> = curve_series(&rounds).into_iter().map(|s| s.label).collect();
        assert_eq!(
            labels,
            [
                "UA = accuracy, central",
                "macro-F1, central",
                "accuracy, federated",
                "UA, federated",
                "macro-F1, federated"
            ]
        );
    }

    #[test]
    fn the_prolog_is_stripped() {
        let svg = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<svg width=\"1\"></svg>";
        assert_eq!(strip_prolog(svg), "<svg width=\"1\"></svg>");
        assert_eq!(strip_prolog("<svg/>"), "<svg/>");
    }
}
