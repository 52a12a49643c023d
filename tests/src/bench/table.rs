//! The one table `vault-bench` prints, and what every measurement hands it:
//! a [`Section`] of header lines, warnings and rows, in the table's seven
//! columns. The measurements' modules build their own rows; the helpers
//! they share (a failed row, a first line, MiB) live here so that each
//! formats a failure or a size the same way.

use super::stats::render;

/// One row of the table, one cell per column of [`COLUMNS`].
pub type Row = Vec<String>;

/// The table's columns.
pub const COLUMNS: [&str; 7] = [
    "measurement",
    "case",
    "figure",
    "p50 µs",
    "p99 µs",
    "max µs",
    "notes",
];

/// The columns aligned right: the figure and the latencies.
const RIGHT_ALIGNED: [usize; 4] = [2, 3, 4, 5];

/// What one measurement adds to the output: lines above the table that say
/// how it was made, warnings about its figures, and its rows.
#[derive(Debug, Default)]
pub struct Section {
    pub header: Vec<String>,
    pub warnings: Vec<String>,
    pub rows: Vec<Row>,
}

impl Section {
    /// Just rows.
    pub fn of_rows(rows: Vec<Row>) -> Section {
        Section {
            rows,
            ..Section::default()
        }
    }

    /// The one row of measurement `what` when it failed.
    pub fn failed(what: &str, error: &anyhow::Error) -> Section {
        Section::of_rows(vec![failed_row(what, error)])
    }
}

/// The table of `rows`, with its header and rule, one line per row.
pub fn render_table(rows: &[Row]) -> String {
    render(&COLUMNS, rows, &RIGHT_ALIGNED)
}

/// A row without latencies: `what`, `case`, `figure` and `notes`.
pub fn plain_row(what: &str, case: &str, figure: String, notes: String) -> Row {
    vec![
        what.into(),
        case.into(),
        figure,
        String::new(),
        String::new(),
        String::new(),
        notes,
    ]
}

/// The row of measurement `what` that could not be made, with the first
/// line of why.
pub fn failed_row(what: &str, error: &anyhow::Error) -> Row {
    plain_row(what, "", "failed".into(), first_line(&format!("{error:#}")))
}

/// The first line of `text`, at most 160 characters: a note, not a report.
pub fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect()
}

/// KiB as MiB, one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// "met" or "NOT met", for a figure held against a goal.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(mib(15_360), "15.0 MiB");
        assert_eq!(first_line("one\ntwo"), "one");
        assert_eq!(first_line(&"x".repeat(200)).len(), 160);
        let row = failed_row("6 transfer", &anyhow::anyhow!("broke\nbadly"));
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!((row[2].as_str(), row[6].as_str()), ("failed", "broke"));
    }
}
