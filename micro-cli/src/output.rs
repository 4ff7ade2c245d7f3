//! Printing: aligned tables for people, JSON for programs.

use std::io::Write;

use serde::Serialize;

use crate::Failure;

/// Columns padded to their widest cell, separated by two spaces, with a header line: easy
/// to read, and easy to cut with `awk`.
#[derive(Debug)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[c].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to stdout and flushes it.
///
/// # Errors
/// [`Failure::Closed`] when the reader went away.
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Prints `value` as indented JSON.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| micro::Error::internal("micro.cli", e))?;
    print(&format!("{text}\n"))
}

/// `-` for an empty cell, so that columns stay countable.
pub(crate) fn or_dash(text: impl Into<String>) -> String {
    let text = text.into();
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// `k=v` pairs, sorted, space-separated.
pub(crate) fn pairs(map: &std::collections::HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    or_dash(pairs.join(","))
}

/// Seconds as `3d4h`, `2h5m`, `4m10s` or `12.3s`.
pub(crate) fn uptime(secs: f64) -> String {
    let whole = secs as u64;
    let (d, h, m, s) = (
        whole / 86_400,
        whole / 3600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{secs:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(&["NAME", "NODES"]);
        t.row(vec!["greeter".into(), "2".into()]);
        t.row(vec!["a".into(), "10".into()]);
        assert_eq!(t.render(), "NAME     NODES\ngreeter  2\na        10\n");
    }

    #[test]
    fn uptimes_read_well() {
        assert_eq!(uptime(12.34), "12.3s");
        assert_eq!(uptime(250.0), "4m10s");
        assert_eq!(uptime(7500.0), "2h5m");
        assert_eq!(uptime(3.0 * 86_400.0 + 4.0 * 3600.0), "3d4h");
    }
}
