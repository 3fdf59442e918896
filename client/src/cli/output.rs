//! Writing results: aligned tables for people, JSON for scripts.

use std::io::Write;

use crate::ClientError;

/// Rows under a header, printed with columns aligned.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text: columns two spaces apart, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let width = widths.get(i).copied().unwrap_or(0);
                for _ in cell.chars().count()..width {
                    line.push(' ');
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to stdout.
pub fn print(text: &str) -> Result<(), ClientError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| ClientError::Local {
            what: "could not write to stdout".to_string(),
            source,
        })
}

/// Writes `value` to stdout as pretty JSON.
pub fn print_json(value: &serde_json::Value) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ClientError::Invalid(format!("could not write JSON: {e}")))?;
    print(&format!("{text}\n"))
}

/// A list of broker ids as Kafka's tools print it: `1,2,3` (`-` for none,
/// so that a table keeps its columns).
pub fn ids(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_string();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_lines_have_no_trailing_spaces() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide-cell".into(), "1".into()]);
        t.row(vec!["x".into(), "".into()]);
        assert_eq!(t.render(), "A          LONGER\nwide-cell  1\nx\n");
    }

    #[test]
    fn broker_id_lists_are_comma_separated_and_never_empty() {
        assert_eq!(ids(&[1, 2, 3]), "1,2,3");
        assert_eq!(ids(&[]), "-");
    }
}
