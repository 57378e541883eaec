//! The figures of one run: a table for people and the same rows as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Row {
    /// Which part of the suite (`ingest`, `propagation`, …).
    pub(crate) part: String,
    /// What was measured.
    pub(crate) measure: String,
    /// The figure.
    pub(crate) value: f64,
    /// Its unit (`posts/s`, `ms`, `bytes`, …).
    pub(crate) unit: String,
    /// What to read it against: a target, or the same figure for another
    /// implementation (Negentropy) or a lower bound (raw verification).
    pub(crate) reference: Option<Reference>,
    /// How it was measured, when the measure's name does not say.
    pub(crate) note: String,
}

/// A figure to compare a row with.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Reference {
    /// What it is (`target`, `negentropy`, …).
    pub(crate) label: String,
    /// Its value, in the row's unit; `None` for a target that is a text.
    pub(crate) value: Option<f64>,
    /// A target or comparison written out (`< 128`, `≥ 1.5`).
    pub(crate) text: String,
}

/// The machine the figures were taken on.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Machine {
    /// Logical CPUs.
    pub(crate) nproc: usize,
    /// CPU model from /proc/cpuinfo.
    pub(crate) cpu: String,
    /// Memory, MiB.
    pub(crate) mem_mib: u64,
    /// Kernel release.
    pub(crate) kernel: String,
    /// Load averages (1, 5, 15 min) when the run started: other work on
    /// the machine skews every figure.
    pub(crate) load_at_start: String,
    /// Load averages when the run ended.
    pub(crate) load_at_end: String,
    /// `release` or `debug`.
    pub(crate) profile: String,
}

impl Machine {
    /// Reads what Linux says about this machine.
    pub(crate) fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu,
            mem_mib: mem_kib / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            load_at_start: loadavg(),
            load_at_end: String::new(),
            profile: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
        }
    }
}

/// The load averages, as /proc/loadavg gives them.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// `full` or `smoke`.
    pub(crate) mode: String,
    /// Where it ran.
    pub(crate) machine: Machine,
    /// The figures, in the order measured.
    pub(crate) rows: Vec<Row>,
    /// Parts that did not complete, with the reason.
    pub(crate) failures: Vec<String>,
    /// Wall time of the whole run, s.
    pub(crate) elapsed_s: f64,
}

impl Report {
    /// An empty report.
    pub(crate) fn new(mode: &str) -> Report {
        Report {
            mode: mode.to_string(),
            machine: Machine::probe(),
            rows: Vec::new(),
            failures: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// Adds a figure.
    pub(crate) fn add(&mut self, part: &str, measure: &str, value: f64, unit: &str) -> &mut Row {
        self.rows.push(Row {
            part: part.to_string(),
            measure: measure.to_string(),
            value,
            unit: unit.to_string(),
            reference: None,
            note: String::new(),
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    /// Writes the rows as JSON.
    pub(crate) fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// The table, as printed.
    pub(crate) fn table(&self) -> String {
        let headers = ["part", "measure", "value", "reference", "note"];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                let reference = r
                    .reference
                    .as_ref()
                    .map(|x| match x.value {
                        Some(v) => format!("{}: {} {}", x.label, number(v), r.unit),
                        None => format!("{}: {}", x.label, x.text),
                    })
                    .unwrap_or_default();
                [
                    r.part.clone(),
                    r.measure.clone(),
                    format!("{} {}", number(r.value), r.unit),
                    reference,
                    r.note.clone(),
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "mutual-bench ({} run, {} build) on {} × {}, {} MiB, Linux {}; load {} → {}; {:.0} s",
            self.mode,
            m.profile,
            m.nproc,
            m.cpu,
            m.mem_mib,
            m.kernel,
            m.load_at_start,
            m.load_at_end,
            self.elapsed_s
        );
        let line = |out: &mut String, row: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in row.iter().zip(widths.iter()).enumerate() {
                // Right-align the value column, left-align the rest.
                let pad = w.saturating_sub(c.chars().count());
                if i == 2 {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
                s.push_str(" | ");
            }
            let _ = writeln!(out, "{}", s.trim_end_matches([' ', '|']));
        };
        line(&mut out, &headers.map(String::from));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &rule);
        let mut last_part = String::new();
        for (row, r) in cells.iter().zip(self.rows.iter()) {
            if !last_part.is_empty() && r.part != last_part {
                line(&mut out, &rule);
            }
            last_part = r.part.clone();
            line(&mut out, row);
        }
        if self.failures.is_empty() {
            let _ = writeln!(out, "every part completed");
        } else {
            for f in &self.failures {
                let _ = writeln!(out, "FAILED: {f}");
            }
        }
        out
    }
}

impl Row {
    /// Sets the reference figure.
    pub(crate) fn vs(&mut self, label: &str, value: f64) -> &mut Row {
        self.reference = Some(Reference {
            label: label.to_string(),
            value: Some(value),
            text: String::new(),
        });
        self
    }

    /// Sets a target written as text (`≥ 1.5`).
    pub(crate) fn target(&mut self, text: &str) -> &mut Row {
        self.reference = Some(Reference {
            label: "target".into(),
            value: None,
            text: text.to_string(),
        });
        self
    }

    /// Sets the note.
    pub(crate) fn note(&mut self, note: impl Into<String>) -> &mut Row {
        self.note = note.into();
        self
    }
}

/// A number as people read it: thousands grouped, few decimals.
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a >= 1000.0 {
        let mut digits = format!("{:.0}", a);
        let mut grouped = String::new();
        while digits.len() > 3 {
            let tail = digits.split_off(digits.len() - 3);
            grouped = format!(",{tail}{grouped}");
        }
        format!("{}{digits}{grouped}", if v < 0.0 { "-" } else { "" })
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.5), "0.50");
        assert_eq!(number(42.0), "42");
    }
}
