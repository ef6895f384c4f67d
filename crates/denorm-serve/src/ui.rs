//! `GET /ui`: the live dashboard, one server-rendered HTML page with inline
//! SVG charts (no script, no build step, nothing fetched from elsewhere),
//! reloaded by the browser every [`REFRESH_SECONDS`].
//!
//! Per view: status (a failed view in red with its reason), rows, state
//! bytes, changes/s, freshness against its budget, and two charts over the
//! last hour from [`crate::history`] (the time axis starts at the oldest
//! point, at least five minutes back): freshness p50/p99 per 10 s on a log
//! scale with the budget as a dashed line, and output changes/s. Above the
//! views: the source (position, state, last error), PostgreSQL's replication
//! slot (lag, retained WAL against its limit), the sinks (in sync, behind or
//! failing), and the problems `/health` lists; per view also the rows the
//! last reconcile or drift check found different from the source. Figures
//! come from the same functions as `/views` and `/health`.
//!
//! Each chart's points are also `<circle>`s carrying `data-at` and
//! `data-value`, so a test (or a curious user) can read what was drawn.

use std::fmt::Write as _;

use crate::history::{Point, BUCKETS, BUCKET_SECONDS};
use crate::json::{view_summary, Health, ViewSummary};
use crate::state::{human_bytes, Published};

/// Seconds between the page's reloads.
pub const REFRESH_SECONDS: u32 = 5;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 20.0;
/// The freshness axis: 100 µs to 100 s, log scale.
const Y_MIN: f64 = 1e-4;
const Y_MAX: f64 = 100.0;
/// The shortest time axis: five minutes.
const MIN_SPAN: f64 = 300.0;

/// The page for `published` at `now`; `health` is `/health`'s body for it
/// (sinks included), `history[i]` is view `i`'s last hour, `state_bytes` a
/// view's operator state when sampled.
pub fn render(
    published: &Published,
    health: &Health,
    history: &[Vec<Point>],
    state_bytes: &dyn Fn(&str) -> Option<u64>,
    now: f64,
    dlq: &crate::dlq::DeadLetters,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>denorm · {}</title><style>{STYLE}</style></head><body>\n",
        health.status
    );
    let _ = write!(
        out,
        "<header><h1>denorm</h1><span class=\"badge {status}\" id=\"health\">{status}</span>\
         <span>source position {position}</span><span>{views} views, {failed} failed</span>\
         <span class=\"muted\">reloads every {REFRESH_SECONDS} s</span></header>",
        status = health.status,
        position = health.source_position.map_or("–".to_string(), |p| p.to_string()),
        views = health.views,
        failed = health.failed_views.len(),
    );
    out.push('\n');
    out.push_str("<section class=\"source\"><h2>Source</h2><dl>");
    let _ = write!(out, "<dt>state</dt><dd>{}</dd>", escape(health.source.state));
    let _ = write!(out, "<dt>changes not yet applied</dt><dd>{}</dd>", health.source.lag_changes);
    if let Some(error) = &health.source.last_error {
        let _ = write!(out, "<dt>last error</dt><dd class=\"error\">{}</dd>", escape(error));
    }
    if let Some(r) = &health.source.replication {
        let _ = write!(
            out,
            "<dt>replication slot</dt><dd>{}</dd><dt>lag</dt><dd id=\"lag\">{} ({:.1} s)</dd>\
             <dt>retained WAL</dt><dd id=\"retained-wal\">{} of {} allowed</dd>",
            escape(&r.slot),
            human_bytes(r.lag_bytes),
            r.lag_seconds,
            human_bytes(r.retained_wal_bytes),
            human_bytes(r.max_retained_wal_bytes)
        );
    }
    let _ = write!(
        out,
        "<dt>dead-letter queue</dt><dd id=\"dlq\" data-count=\"{n}\"><a href=\"/dlq\">{n} entries</a> \
         (updates applied: {ratio:.4})</dd>",
        n = dlq.len(),
        ratio = dlq.success_ratio()
    );
    out.push_str("</dl>");
    if !health.sinks.is_empty() {
        out.push_str("<h2>Sinks</h2><dl class=\"sinks\">");
        for sink in &health.sinks {
            let (class, state) = match &sink.problem {
                None => ("ok", "in sync".to_string()),
                Some(problem) => ("failed", problem.clone()),
            };
            let _ = write!(
                out,
                "<dt>{}</dt><dd class=\"{class}\" id=\"sink-{}\">{}</dd>",
                escape(&sink.name),
                css_id(&sink.name),
                escape(&state)
            );
        }
        out.push_str("</dl>");
    }
    if !health.problems.is_empty() {
        out.push_str("<ul class=\"problems\">");
        for problem in &health.problems {
            let _ = write!(out, "<li>{}</li>", escape(problem));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>\n<main>\n");
    for (i, view) in published.views.iter().enumerate() {
        let summary = view_summary(view, &published.source, now);
        let points = history.get(i).map_or(&[][..], Vec::as_slice);
        view_card(&mut out, &summary, state_bytes(&summary.name), points, now);
    }
    out.push_str("</main></body></html>\n");
    out
}

fn view_card(out: &mut String, v: &ViewSummary, state_bytes: Option<u64>, points: &[Point], now: f64) {
    let id = css_id(&v.name);
    let _ = write!(
        out,
        "<article class=\"view {status}\" id=\"view-{id}\" data-status=\"{status}\">\
         <h2>{name} <span class=\"badge {status}\">{status}</span></h2>",
        status = v.status,
        name = escape(&v.name)
    );
    if let Some(error) = &v.error {
        let _ = write!(out, "<p class=\"error reason\">{}</p>", escape(error));
    }
    let latest_rate = points.last().filter(|p| now - p.at < 2.0 * BUCKET_SECONDS).map_or(0.0, |p| p.changes_per_second);
    let budget = v.max_staleness_seconds.map_or("none".to_string(), seconds);
    let sla = if v.max_staleness_seconds.is_none() {
        ""
    } else if v.within_sla {
        " <span class=\"ok\">within budget</span>"
    } else {
        " <span class=\"failed\">over budget</span>"
    };
    let _ = write!(
        out,
        "<dl><dt>rows</dt><dd>{}</dd><dt>state</dt><dd>{}</dd><dt>changes/s</dt><dd>{latest_rate:.1}</dd>\
         <dt>freshness</dt><dd>{}{sla}</dd><dt>budget</dt><dd>{budget}</dd><dt>tables</dt><dd>{}</dd>\
         <dt>drift</dt><dd class=\"{}\" id=\"drift-{id}\">{}</dd></dl>",
        v.rows,
        state_bytes.map_or("–".to_string(), human_bytes),
        seconds(v.freshness_seconds),
        escape(&v.tables.join(", ")),
        if v.drift_rows > 0 { "failed" } else { "ok" },
        if v.drift_rows > 0 {
            format!("{} rows differ from the source (run denorm reconcile --repair)", v.drift_rows)
        } else {
            "none found".to_string()
        }
    );
    freshness_chart(out, &id, points, v.max_staleness_seconds, now);
    rate_chart(out, &id, points, now);
    out.push_str("</article>\n");
}

/// The time axis: from the oldest point (at least [`MIN_SPAN`] ago, at
/// most the hour kept) to now, in seconds.
fn span(points: &[Point], now: f64) -> f64 {
    let oldest = points.first().map_or(now, |p| p.at);
    (now - oldest + BUCKET_SECONDS).clamp(MIN_SPAN, BUCKETS as f64 * BUCKET_SECONDS)
}

/// x of a time within the axis' span.
fn x_of(at: f64, now: f64, span: f64) -> f64 {
    LEFT + ((at - (now - span)) / span).clamp(0.0, 1.0) * (WIDTH - LEFT - 8.0)
}

/// y of a freshness on the log axis.
fn y_of(seconds: f64) -> f64 {
    let f = (seconds.clamp(Y_MIN, Y_MAX).log10() - Y_MIN.log10()) / (Y_MAX.log10() - Y_MIN.log10());
    (HEIGHT - BOTTOM) - f * (HEIGHT - BOTTOM - 8.0)
}

fn freshness_chart(out: &mut String, id: &str, points: &[Point], budget: Option<f64>, now: f64) {
    let _ = write!(
        out,
        "<figure><figcaption>freshness, last hour (p50, p99 per {BUCKET_SECONDS} s; log scale)</figcaption>\
         <svg class=\"chart freshness\" id=\"freshness-{id}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">"
    );
    for (value, label) in [(1e-3, "1 ms"), (1e-2, "10 ms"), (0.1, "100 ms"), (1.0, "1 s"), (10.0, "10 s")] {
        let y = y_of(value);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\">{label}</text>",
            WIDTH - 8.0,
            LEFT - 4.0,
            y + 3.0
        );
    }
    let span = span(points, now);
    axis_labels(out, span);
    if let Some(budget) = budget {
        let y = y_of(budget);
        let _ = write!(
            out,
            "<line class=\"budget\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"><title>budget {}</title></line>",
            WIDTH - 8.0,
            seconds(budget)
        );
    }
    for (class, pick) in [("p99", (|p: &Point| p.p99) as fn(&Point) -> Option<f64>), ("p50", |p: &Point| p.p50)] {
        let series: Vec<(f64, f64)> = points.iter().filter_map(|p| pick(p).map(|v| (p.at, v))).collect();
        series_path(out, class, &series, now, span, y_of);
    }
    out.push_str("</svg></figure>");
}

fn rate_chart(out: &mut String, id: &str, points: &[Point], now: f64) {
    let top = points.iter().map(|p| p.changes_per_second).fold(1.0, f64::max) * 1.1;
    let y = move |rate: f64| (HEIGHT - BOTTOM) - (rate / top).clamp(0.0, 1.0) * (HEIGHT - BOTTOM - 8.0);
    let _ = write!(
        out,
        "<figure><figcaption>output changes/s, last hour</figcaption>\
         <svg class=\"chart rate\" id=\"rate-{id}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">\
         <line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{:.1}\">{}</text>",
        WIDTH - 8.0,
        y(top / 1.1),
        y(top / 1.1),
        LEFT - 4.0,
        y(top / 1.1) + 3.0,
        compact(top / 1.1)
    );
    let span = span(points, now);
    axis_labels(out, span);
    let series: Vec<(f64, f64)> = points.iter().map(|p| (p.at, p.changes_per_second)).collect();
    series_path(out, "rate", &series, now, span, y);
    out.push_str("</svg></figure>");
}

fn axis_labels(out: &mut String, span: f64) {
    let y = HEIGHT - 4.0;
    let _ = write!(
        out,
        "<text class=\"tick start\" x=\"{LEFT}\" y=\"{y}\">−{:.0} min</text>\
         <text class=\"tick end\" x=\"{}\" y=\"{y}\">now</text>",
        span / 60.0,
        WIDTH - 8.0
    );
}

/// A polyline through the points and a circle on each, which carries its
/// time and value.
fn series_path(out: &mut String, class: &str, series: &[(f64, f64)], now: f64, span: f64, y: impl Fn(f64) -> f64) {
    if series.is_empty() {
        return;
    }
    let mut d = String::new();
    for (i, &(at, value)) in series.iter().enumerate() {
        let _ = write!(d, "{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, x_of(at, now, span), y(value));
    }
    let _ = write!(out, "<path class=\"{class}\" d=\"{d}\" data-points=\"{}\"/>", series.len());
    for &(at, value) in series {
        let _ = write!(
            out,
            "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" data-at=\"{at}\" data-value=\"{value}\"/>",
            x_of(at, now, span),
            y(value)
        );
    }
}

fn seconds(s: f64) -> String {
    if !s.is_finite() {
        "–".into()
    } else if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

fn compact(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// A view name as an HTML id (names are SQL identifiers; anything else becomes `_`).
fn css_id(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn escape(text: &str) -> String {
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

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}\
header{display:flex;gap:1.2em;align-items:baseline;padding:.8em 1.2em;background:#1d232b;color:#fff}\
header h1{margin:0;font-size:1.3em}.muted{opacity:.6}section,article{background:#fff;margin:1em;padding:.8em 1em;\
border-radius:6px;box-shadow:0 1px 2px #0002}main{display:grid;grid-template-columns:repeat(auto-fill,minmax(660px,1fr))}\
h2{font-size:1.1em;margin:.2em 0 .5em}dl{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:.2em 1em;margin:0}\
dt{color:#667}dd{margin:0}.badge{padding:.1em .5em;border-radius:1em;font-size:.8em;background:#ddd;color:#1d232b}\
.badge.ok{background:#c9f2d0}.badge.degraded,.badge.starting{background:#ffe8a8}.badge.failed{background:#ffc9c9}\
article.failed{border-left:4px solid #d33}.error{color:#b00}span.ok{color:#080}span.failed{color:#b00}\
figure{margin:.6em 0 0}figcaption{color:#667;font-size:.85em}svg.chart{width:100%;height:auto}\
.grid{stroke:#e4e6ea}.tick{font-size:9px;fill:#889;text-anchor:end}.tick.start{text-anchor:start}\
.budget{stroke:#d33;stroke-dasharray:4 3}path{fill:none;stroke-width:1.5}path.p99,circle.p99{stroke:#d9730d}\
path.p50,circle.p50{stroke:#2f6fdd}path.rate,circle.rate{stroke:#2a9d5c}circle{fill:#fff;stroke-width:1}\
.problems{color:#b00}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_and_sinks_are_shown() {
        use crate::state::{ColumnInfo, ViewInfo};
        use denorm_types::{Position, ScalarType};
        let info = ViewInfo {
            name: "billing".into(),
            columns: vec![ColumnInfo { name: "id".into(), ty: ScalarType::Int }],
            key: vec![0],
            ..Default::default()
        };
        let (mut publisher, reader) = crate::channel(vec![info]);
        publisher.publish(Position(1), &[]);
        let clean = reader.snapshot();
        let page = render(&clean, &crate::json::health(&clean), &[], &|_| None, 10.0, reader.dead_letters());
        assert!(page.contains("id=\"drift-billing\">none found"), "{page}");
        assert!(!page.contains("<h2>Sinks</h2>"), "no sinks configured, no section");

        publisher.set_drift(0, 10, 3);
        let published = reader.snapshot();
        let mut health = crate::json::health(&published);
        health.sinks.push(crate::json::SinkHealth { name: "app_db".into(), problem: None });
        health
            .sinks
            .push(crate::json::SinkHealth { name: "cache".into(), problem: Some("behind <catching up>".into()) });
        let page = render(&published, &health, &[], &|_| None, 10.0, reader.dead_letters());
        assert!(page.contains("<dd class=\"failed\" id=\"drift-billing\">3 rows differ"), "{page}");
        assert!(page.contains("<dd class=\"ok\" id=\"sink-app_db\">in sync</dd>"), "{page}");
        assert!(page.contains("<dd class=\"failed\" id=\"sink-cache\">behind &lt;catching up&gt;</dd>"), "{page}");
    }

    #[test]
    fn text_is_escaped_and_ids_are_safe() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(css_id("a b<c"), "a_b_c");
    }

    #[test]
    fn a_series_is_a_path_and_a_circle_per_point() {
        let now = 100_000.0;
        let mut out = String::new();
        series_path(&mut out, "p99", &[(now - 20.0, 0.01), (now - 10.0, 1.0)], now, 3600.0, y_of);
        assert!(out.starts_with("<path class=\"p99\" d=\"M"), "{out}");
        assert!(out.contains("data-points=\"2\""));
        assert_eq!(out.matches("<circle").count(), 2);
        assert!(y_of(1.0) < y_of(0.01), "slower is higher");
        assert!(x_of(now, now, 3600.0) > x_of(now - 1800.0, now, 3600.0));
        let mut empty = String::new();
        series_path(&mut empty, "p50", &[], now, 3600.0, y_of);
        assert!(empty.is_empty());
    }
}
