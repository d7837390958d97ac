//! The printed report: a Markdown table of measurements with ratios (ours / theirs), and the
//! targets the product is held to.

use std::fmt::Write;

/// One row of the ratio table. `None` is a measurement that a system does not have.
#[derive(Debug, Clone)]
pub struct Row {
    pub measure: String,
    pub unit: &'static str,
    pub ours: Option<f64>,
    pub clickhouse: Option<f64>,
    pub duckdb: Option<f64>,
    /// Whether a larger value is better (throughput) or worse (latency, size).
    pub higher_is_better: bool,
}

impl Row {
    pub fn new(measure: impl Into<String>, unit: &'static str, higher_is_better: bool) -> Row {
        Row {
            measure: measure.into(),
            unit,
            ours: None,
            clickhouse: None,
            duckdb: None,
            higher_is_better,
        }
    }

    pub fn ours(mut self, v: f64) -> Row {
        self.ours = Some(v);
        self
    }

    pub fn ch(mut self, v: Option<f64>) -> Row {
        self.clickhouse = v;
        self
    }

    pub fn duck(mut self, v: Option<f64>) -> Row {
        self.duckdb = v;
        self
    }
}

/// A number with three significant digits and thousands separators.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        format!("{v:.3}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), num)
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b != 0.0 => num(a / b),
        _ => "-".into(),
    }
}

/// The ratio table as Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| measure | unit | better | ocp-metrics | ClickHouse | DuckDB | ours / ClickHouse | ours / DuckDB |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.measure,
            r.unit,
            if r.higher_is_better {
                "higher"
            } else {
                "lower"
            },
            cell(r.ours),
            cell(r.clickhouse),
            cell(r.duckdb),
            ratio(r.ours, r.clickhouse),
            ratio(r.ours, r.duckdb),
        );
    }
    out
}

/// One target and whether the run met it.
#[derive(Debug, Clone)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: Option<bool>,
}

pub fn targets(ts: &[Target]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| target | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    for t in ts {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "n/a",
        };
        let _ = writeln!(out, "| {} | {} | {} |", t.what, t.measured, met);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(312_456.4), "312,456");
        assert_eq!(num(1_000.0), "1,000");
        assert_eq!(num(999.4), "999");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(num(-12_345.0), "-12,345");
    }

    #[test]
    fn table_has_ratios() {
        let rows = vec![
            Row::new("q", "ms", false)
                .ours(1.0)
                .ch(Some(100.0))
                .duck(None),
        ];
        let t = table(&rows);
        assert!(
            t.contains("| q | ms | lower | 1.00 | 100 | - | 0.010 | - |"),
            "{t}"
        );
    }
}
