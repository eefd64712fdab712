//! Output: human tables by default, one JSON document with `--json`. The only module that prints.

use std::io::Write as _;

use serde::Serialize;

/// How to print results.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints `value` as pretty JSON.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => line(&text),
            Err(e) => eprint_line(&format!("error: cannot render JSON: {e}")),
        }
    }

    /// Prints JSON when `--json` (or `verbose`) is set, otherwise calls `human`.
    pub fn show<T: Serialize + ?Sized>(&self, value: &T, verbose: bool, human: impl FnOnce()) {
        if self.json || verbose { self.json(value) } else { human() }
    }
}

/// One line on stdout. A closed pipe ends quietly.
pub fn line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{text}").is_err() {
        std::process::exit(0);
    }
}

/// Raw bytes on stdout (response bodies).
pub fn raw(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(bytes).and_then(|()| stdout.flush()).is_err() {
        std::process::exit(0);
    }
}

pub fn eprint_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A plain aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    line(&fmt_row(headers.to_vec()));
    for row in rows {
        line(&fmt_row(row.iter().map(String::as_str).collect()));
    }
}

/// A list as one table cell of at most about `max` characters: as many items as fit, then
/// `+N more` (`--json` / `-v` show them all).
pub fn list_cell(items: &[String], max: usize) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let more = items.len() - i;
        let sep = if out.is_empty() { "" } else { "," };
        let tail = if more > 1 { format!(" +{} more", more - 1).len() } else { 0 };
        if !out.is_empty() && out.chars().count() + sep.len() + item.chars().count() + tail > max {
            out.push_str(&format!(" +{more} more"));
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
    }
    out
}

/// `scope` column text.
pub fn scope_text(scope: &str, ws: &Option<String>, group: &Option<String>) -> String {
    match (scope, ws, group) {
        ("workspace", Some(w), _) => format!("workspace:{w}"),
        ("group", Some(w), Some(g)) => format!("group:{w}/{g}"),
        (s, _, _) => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::list_cell;

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let hosts: Vec<String> = (0..30).map(|i| format!("service-{i}.us-east-1.amazonaws.com")).collect();
        let cell = list_cell(&hosts, 40);
        assert!(cell.chars().count() <= 50, "{cell}");
        assert!(cell.starts_with("service-0.us-east-1.amazonaws.com") && cell.ends_with(" +29 more"), "{cell}");
        assert_eq!(list_cell(&["a".into(), "b".into()], 40), "a,b");
        assert_eq!(list_cell(&[], 40), "");
        let one_long = vec!["x".repeat(60)];
        assert_eq!(list_cell(&one_long, 40), "x".repeat(60), "one item is shown whole");
    }
}
