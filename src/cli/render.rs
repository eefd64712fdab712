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

/// The width tables must fit: `COLUMNS`, else the terminal's when stdout is one. `None` (piped,
/// no `COLUMNS`): rows are not cut (lists in cells are still elided with `+N more`).
fn width() -> Option<usize> {
    crate::config::columns().or_else(|| {
        use std::io::IsTerminal as _;
        let out = std::io::stdout();
        if !out.is_terminal() {
            return None;
        }
        terminal_size::terminal_size_of(&out).map(|(terminal_size::Width(w), _)| usize::from(w))
    })
}

/// Column widths that fit `limit`: the widest column after the first gives a character at a
/// time, down to `MIN_COLUMN`.
fn fit_widths(mut widths: Vec<usize>, limit: usize) -> Vec<usize> {
    const MIN_COLUMN: usize = 12;
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(&widths) > limit {
        let Some((i, w)) = widths.iter().enumerate().skip(1).max_by_key(|(i, w)| (**w, usize::MAX - i)) else { break };
        if *w <= MIN_COLUMN {
            break;
        }
        widths[i] -= 1;
    }
    widths
}

/// `cell` in at most `w` characters: cut with `…`, keeping a `+N more` tail.
fn fit_cell(cell: &str, w: usize) -> String {
    if cell.chars().count() <= w {
        return cell.to_owned();
    }
    let (head, tail) = match cell.rfind(" +") {
        Some(i) if cell.ends_with(" more") => (&cell[..i], &cell[i..]),
        _ => (cell, ""),
    };
    let keep = w.saturating_sub(tail.chars().count() + 1);
    let cut: String = head.chars().take(keep).collect();
    format!("{cut}…{tail}")
}

/// A plain aligned table, fitted to the terminal's width (see `width`).
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    for l in table_lines(headers, rows, width()) {
        line(&l);
    }
}

fn table_lines(headers: &[&str], rows: &[Vec<String>], limit: Option<usize>) -> Vec<String> {
    if rows.is_empty() {
        return Vec::new();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    if let Some(limit) = limit {
        widths = fit_widths(widths, limit);
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let c = if limit.is_some() { fit_cell(c, w) } else { (*c).to_owned() };
            if i + 1 == cells.len() {
                s.push_str(&c);
            } else {
                let pad = w.saturating_sub(c.chars().count());
                s.push_str(&c);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![fmt_row(headers.to_vec())];
    out.extend(rows.iter().map(|row| fmt_row(row.iter().map(String::as_str).collect())));
    out
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
    use super::*;

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

    #[test]
    fn tables_fit_the_width_they_are_given_and_keep_the_more_tail() {
        let rows = vec![
            vec![
                "aws-bedrock/invoke".to_owned(),
                "POST".into(),
                "bedrock-runtime.us-east-1.amazonaws.com +33 more".into(),
            ],
            vec!["openai/models".to_owned(), "GET".into(), "api.openai.com".into()],
        ];
        let wide = table_lines(&["CAPABILITY", "METHODS", "HOSTS"], &rows, None);
        assert!(wide[1].ends_with("amazonaws.com +33 more"), "{wide:?}");
        for limit in [50, 60, 100] {
            let lines = table_lines(&["CAPABILITY", "METHODS", "HOSTS"], &rows, Some(limit));
            for l in &lines {
                assert!(l.chars().count() <= limit, "{limit}: {l}");
            }
            assert!(lines[1].ends_with(" +33 more"), "{limit}: {lines:?}");
            assert!(lines[1].starts_with("aws-bedrock/invoke"), "the first column is never cut");
        }
        assert_eq!(fit_cell("abcdef", 4), "abc…");
        assert_eq!(fit_cell("s3.amazonaws.com +69 more", 16), "s3.ama… +69 more");
    }
}
