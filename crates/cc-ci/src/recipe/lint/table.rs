//! The table abra prints for `abra recipe lint`, as plain text.

use super::{LintReport, Outcome};

impl LintReport {
    /// The table abra prints (columns ref | rule | severity | satisfied |
    /// skipped | resolve), as aligned plain text: `yes`/`no` where abra
    /// prints ✅/❌, `-` where it prints `-`. Then one line per finding that
    /// failed, was skipped or carries a detail, and, when an error-level
    /// rule failed, abra's closing warning `critical errors present in
    /// <recipe> config` (the words after "present" are a recollection,
    /// docs/abra.md, "Lint rules").
    pub fn table(&self) -> String {
        let header = ["ref", "rule", "severity", "satisfied", "skipped", "resolve"].map(String::from);
        let rows: Vec<[String; 6]> = self
            .findings
            .iter()
            .map(|f| {
                let (satisfied, skipped) = match f.outcome {
                    Outcome::Satisfied => ("yes", "-"),
                    Outcome::Failed => ("no", "-"),
                    Outcome::Skipped(_) => ("-", "yes"),
                };
                [
                    f.rule.reference.to_string(),
                    f.rule.description.to_string(),
                    f.rule.severity.to_string(),
                    satisfied.to_string(),
                    skipped.to_string(),
                    f.rule.how_to_fix.to_string(),
                ]
            })
            .collect();
        let mut widths = [0usize; 6];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: &[String; 6]| {
            let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            format!("{}\n", cells.join(" | ").trim_end())
        };
        let mut out = format!("abra recipe lint {} (cc-ci's native rules)\n\n", self.recipe);
        out.push_str(&line(&header));
        let rule_line: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&format!("{}\n", rule_line.join("-+-")));
        for row in &rows {
            out.push_str(&line(row));
        }
        let notes: Vec<String> = self
            .findings
            .iter()
            .filter_map(|f| {
                let r = f.rule.reference;
                match (&f.outcome, &f.detail) {
                    (Outcome::Skipped(why), _) => Some(format!("{r} skipped: {why}")),
                    (Outcome::Failed, Some(d)) => Some(format!("{r} failed: {d}")),
                    (Outcome::Failed, None) => Some(format!("{r} failed")),
                    (Outcome::Satisfied, Some(d)) => Some(format!("{r}: {d}")),
                    (Outcome::Satisfied, None) => None,
                }
            })
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                out.push_str(&n);
                out.push('\n');
            }
        }
        if !self.passed() {
            out.push_str(&format!("\ncritical errors present in {} config\n", self.recipe));
        }
        out
    }
}
