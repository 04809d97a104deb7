//! The report page: one HTML file with inline CSS and inline SVG figures, so it needs no
//! other file and no network. Every text that comes from the run directory is escaped (run and
//! client names are free text).

use std::fmt::Write;

use fedser_fl::RoundRecord;

use super::figures::{Figure, Outcome};
use super::{FinalEval, RunInfo, latest_central};

/// Everything the page shows.
pub struct Page<'a> {
    pub info: &'a RunInfo,
    pub rounds: &'a [RoundRecord],
    /// `config.toml`, if the run directory has one.
    pub config: Option<&'a str>,
    pub figures: &'a [Figure],
    pub final_eval: Option<FinalEval<'a>>,
    /// What `fedser attack` found, if it ran.
    pub attacks: &'a [serde_json::Value],
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.88em; }
td:last-child { text-align: left; max-width: 24em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f3f7; }
td:first-child, th:first-child { text-align: left; }
table.kv td { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow-x: auto; }
figure { margin: 1em 0; }
svg { max-width: 100%; height: auto; }
.skipped { color: #8a5a00; background: #fff6e0; padding: 0.4em 0.8em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.88em; }
nav a { margin-right: 1em; }
";

/// The whole page.
pub fn page(p: &Page) -> String {
    let mut out = String::new();
    let title = esc(&p.info.name);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} — fedser report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p>Federated speech emotion recognition run, reported by fedser.</p>\n\
         <nav><a href=\"#summary\">Summary</a><a href=\"#figures\">Figures</a>\
         <a href=\"#classes\">Per class</a><a href=\"#rounds\">Rounds</a>\
         <a href=\"#privacy\">Privacy</a><a href=\"#clients\">Clients</a>\
         <a href=\"#config\">Configuration</a></nav>"
    );
    summary(&mut out, p);
    figures(&mut out, p.figures);
    privacy(&mut out, p);
    per_class(&mut out, p.final_eval);
    rounds(&mut out, p.rounds);
    clients(&mut out, p);
    config(&mut out, p.config);
    out.push_str("</body>\n</html>\n");
    out
}

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table; every cell is plain text and gets escaped here, so callers cannot forget. Without
/// headers it is a key/value list.
fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    if headers.is_empty() {
        out.push_str("<div class=\"scroll\"><table class=\"kv\">\n");
    } else {
        out.push_str("<div class=\"scroll\"><table>\n<tr>");
        for h in headers {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>\n");
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
}

/// A fraction as a percentage; "–" when absent or not a number.
fn pct(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{:.1} %", v * 100.0),
        _ => "–".into(),
    }
}

fn num(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".into(),
    }
}

/// 1234567 as "1 234 567" (thin spaces would be nicer but copy badly).
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn summary(out: &mut String, p: &Page) {
    let info = p.info;
    let aggregated = p.rounds.iter().filter(|r| r.aggregated).count();
    let mut rows = vec![
        vec!["Corpus".into(), info.corpus.clone()],
        vec!["Architecture".into(), info.arch.clone()],
        vec!["Strategy".into(), info.strategy.clone()],
        vec!["Clients".into(), info.clients.len().to_string()],
        vec![
            "Rounds run / planned".into(),
            format!(
                "{} / {} ({aggregated} aggregated)",
                p.rounds.len(),
                info.rounds_planned
            ),
        ],
        vec!["Parameters".into(), thousands(info.parameters)],
        vec![
            "Test speakers".into(),
            format!(
                "{} ({} utterances): {}",
                info.test_speakers.len(),
                info.test_utterances,
                info.test_speakers.join(", ")
            ),
        ],
    ];
    rows.extend(final_central_rows(p.rounds));
    let total = |f: fn(&RoundRecord) -> u64| p.rounds.iter().map(f).sum::<u64>();
    let seconds: f64 = p.rounds.iter().map(|r| r.seconds).sum();
    rows.push(vec!["Total time".into(), format!("{seconds:.1} s")]);
    rows.push(vec![
        "Sent up / down".into(),
        format!(
            "{} / {}",
            megabytes(total(|r| r.bytes_up)),
            megabytes(total(|r| r.bytes_down))
        ),
    ]);
    out.push_str("<h2 id=\"summary\">Summary</h2>\n");
    table(out, &[], &rows);
}

/// The latest central evaluation's figures and the best UA of any round.
fn final_central_rows(rounds: &[RoundRecord]) -> Vec<Vec<String>> {
    let Some((round, e)) = latest_central(rounds) else {
        return vec![vec![
            "Central evaluation".into(),
            "none recorded (no held-out speakers, or no round evaluated)".into(),
        ]];
    };
    let best = rounds
        .iter()
        .filter_map(|r| r.central.as_ref().map(|e| (r.round, e.ua)))
        .filter(|(_, ua)| ua.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let at = format!("(round {round}, {} utterances)", e.examples);
    vec![
        vec![
            "Final central accuracy".into(),
            format!("{} {at}", pct(Some(e.accuracy))),
        ],
        vec!["Final central UA".into(), pct(Some(e.ua))],
        vec!["Final central macro-F1".into(), pct(Some(e.macro_f1))],
        vec!["Final central weighted-F1".into(), pct(Some(e.weighted_f1))],
        vec![
            "Best central UA".into(),
            best.map_or("–".into(), |(r, ua)| {
                format!("{} (round {r})", pct(Some(ua)))
            }),
        ],
    ]
}

fn figures(out: &mut String, figures: &[Figure]) {
    out.push_str("<h2 id=\"figures\">Figures</h2>\n");
    for f in figures {
        let _ = writeln!(out, "<h3 id=\"fig-{}\">{}</h3>", f.stem, esc(f.heading));
        match &f.outcome {
            // The SVG is plotters' output, which escapes the text it draws.
            Outcome::Drawn { svg } => {
                let _ = writeln!(out, "<figure>\n{svg}\n</figure>");
            }
            Outcome::Skipped(why) => {
                let _ = writeln!(out, "<p class=\"skipped\">Not drawn: {}.</p>", esc(why));
            }
        }
    }
}

fn per_class(out: &mut String, fin: Option<FinalEval>) {
    out.push_str("<h2 id=\"classes\">Per class</h2>\n");
    let Some(fin) = fin else {
        out.push_str("<p class=\"skipped\">No round was evaluated.</p>\n");
        return;
    };
    let _ = writeln!(
        out,
        "<p>Round {}, {}, {} utterances.</p>",
        fin.round,
        fin.source(),
        fin.eval.confusion.total()
    );
    let rows: Vec<Vec<String>> = fin
        .eval
        .confusion
        .per_class()
        .iter()
        .map(|c| {
            vec![
                c.class.name().to_string(),
                pct(Some(c.precision)),
                pct(Some(c.recall)),
                pct(Some(c.f1)),
                c.support.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &["class", "precision", "recall", "F1", "support"],
        &rows,
    );
    let m = fin.eval.confusion.metrics();
    let _ = writeln!(
        out,
        "<p>Accuracy {}, UA {}, macro-F1 {}, weighted-F1 {}.</p>",
        pct(Some(m.accuracy)),
        pct(Some(m.ua)),
        pct(Some(m.macro_f1)),
        pct(Some(m.weighted_f1))
    );
}

/// Differential privacy as the last round recorded it, and the attacks' results.
fn privacy(out: &mut String, p: &Page) {
    out.push_str("<h2 id=\"privacy\">Privacy</h2>\n");
    let last = p
        .rounds
        .iter()
        .rev()
        .find_map(|r| r.stage_records.get("privacy").map(|v| (r.round, v)));
    match last {
        Some((round, v)) => {
            let f = |k: &str| num(v[k].as_f64(), 4);
            let rows = vec![
                vec!["mode".into(), esc(v["mode"].as_str().unwrap_or("?"))],
                vec![format!("epsilon after round {round}"), f("epsilon")],
                vec!["delta".into(), format!("{}", v["delta"])],
                vec!["clip norm (last round)".into(), f("clip")],
                vec!["noise standard deviation".into(), f("noise_std")],
                vec![
                    "accounting holds (Poisson sampling)".into(),
                    if v["accounting_holds"] == true { "yes" } else { "no" }.into(),
                ],
            ];
            table(out, &[], &rows);
        }
        None => out.push_str(
            "<p>No differential privacy: updates reached the server as the clients made them.</p>\n",
        ),
    }
    if p.attacks.is_empty() {
        out.push_str("<p>No attack was run on this run (<code>fedser attack</code>).</p>\n");
        return;
    }
    let rows: Vec<Vec<String>> = p
        .attacks
        .iter()
        .map(|a| {
            let kind = a["kind"].as_str().unwrap_or("?");
            let result = match kind {
                "gender" => format!("UAR {} (chance 0.5)", num(a["uar"].as_f64(), 3)),
                _ => {
                    let mut r = format!(
                        "loss AUC {}, TPR at 1% FPR {}",
                        num(a["auc"].as_f64(), 3),
                        num(a["tpr_at_1pct_fpr"].as_f64(), 3)
                    );
                    if let Some(l) = a.get("lira") {
                        r += &format!(
                            "; LiRA AUC {}, TPR at 1% FPR {}",
                            num(l["auc"].as_f64(), 3),
                            num(l["tpr_at_1pct_fpr"].as_f64(), 3)
                        );
                    }
                    r
                }
            };
            vec![esc(kind), esc(&result)]
        })
        .collect();
    table(out, &["attack", "result"], &rows);
}

fn rounds(out: &mut String, rounds: &[RoundRecord]) {
    out.push_str("<h2 id=\"rounds\">Rounds</h2>\n");
    if rounds.is_empty() {
        out.push_str("<p class=\"skipped\">No round was recorded.</p>\n");
        return;
    }
    let rows: Vec<Vec<String>> = rounds.iter().map(round_row).collect();
    table(
        out,
        &[
            "round",
            "accepted / selected",
            "lost",
            "aggregated",
            "train loss",
            "central acc",
            "central UA",
            "central F1",
            "federated acc",
            "federated UA",
            "seconds",
            "note",
        ],
        &rows,
    );
}

fn round_row(r: &RoundRecord) -> Vec<String> {
    let c = r.central.as_ref();
    let f = r.federated.as_ref();
    vec![
        r.round.to_string(),
        format!("{} / {}", r.accepted, r.selected),
        lost(r),
        if r.aggregated { "yes" } else { "no" }.into(),
        num(r.train_loss, 4),
        pct(c.map(|e| e.accuracy)),
        pct(c.map(|e| e.ua)),
        pct(c.map(|e| e.macro_f1)),
        pct(f.map(|e| e.accuracy)),
        pct(f.map(|e| e.ua)),
        num(Some(r.seconds), 1),
        r.note.clone().unwrap_or_default(),
    ]
}

/// The clients a round lost, by reason ("–" when none): one narrow column instead of four.
fn lost(r: &RoundRecord) -> String {
    let parts: Vec<String> = [
        (r.dropped, "dropped"),
        (r.stragglers, "late"),
        (r.errors, "failed"),
        (r.rejected, "rejected"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "–".into()
    } else {
        parts.join(", ")
    }
}

fn clients(out: &mut String, p: &Page) {
    out.push_str("<h2 id=\"clients\">Clients</h2>\n");
    let rows: Vec<Vec<String>> = p
        .info
        .clients
        .iter()
        .map(|c| {
            let records = p
                .rounds
                .iter()
                .flat_map(|r| &r.clients)
                .filter(|rec| rec.client == c.id);
            let (mut accepted, mut failed, mut last_val) = (0, 0, None);
            for rec in records {
                match rec.failure {
                    None => accepted += 1,
                    Some(_) => failed += 1,
                }
                last_val = rec.val_accuracy.or(last_val);
            }
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.train.to_string(),
                c.val.to_string(),
                accepted.to_string(),
                failed.to_string(),
                pct(last_val),
            ]
        })
        .collect();
    table(
        out,
        &[
            "id",
            "name",
            "train utterances",
            "val utterances",
            "updates accepted",
            "rounds failed",
            "last val accuracy",
        ],
        &rows,
    );
}

fn config(out: &mut String, config: Option<&str>) {
    out.push_str("<h2 id=\"config\">Configuration</h2>\n");
    match config {
        Some(text) => {
            let _ = writeln!(out, "<pre>{}</pre>", esc(text));
        }
        None => out.push_str("<p class=\"skipped\">The run directory has no config.toml.</p>\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_number_formats() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(thousands(1_234_567), "1 234 567");
        assert_eq!(thousands(999), "999");
        assert_eq!(pct(Some(0.5)), "50.0 %");
        assert_eq!(pct(Some(f64::NAN)), "–");
        assert_eq!(num(None, 2), "–");
    }
}
