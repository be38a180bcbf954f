//! The page's cost panel: what the pool cost and used so far (the same
//! report `drover report` prints), a row per group and the total.

use serde::Serialize;

use crate::protocol::{Report, Usage};

/// The panel as the template shows it.
#[derive(Debug, Serialize)]
pub(crate) struct CostView {
    /// The pool's one line (`3 workers, 0.12 core-h allocated, ...`).
    pub summary: String,
    /// Where the allocated figures came from.
    pub source: String,
    /// A row per group, then the total.
    pub rows: Vec<CostRow>,
}

/// One row of the panel.
#[derive(Debug, Serialize)]
pub(crate) struct CostRow {
    pub name: String,
    pub core_hours: String,
    pub busy_core_hours: String,
    pub idle: String,
    pub gpu_hours: String,
    pub billing: String,
    pub energy: String,
}

fn row(name: &str, u: &Usage) -> CostRow {
    let hours = |s: f64| format!("{:.3}", s / 3600.0);
    CostRow {
        name: name.to_string(),
        core_hours: hours(u.allocated_core_seconds),
        busy_core_hours: hours(u.busy_core_seconds),
        idle: format!("{:.0} %", 100.0 * u.idle_fraction),
        gpu_hours: hours(u.allocated_gpu_seconds),
        billing: format!("{:.3}", u.billing_units),
        energy: match u.energy_joules {
            Some(j) => format!("{:.1} kJ", j as f64 / 1000.0),
            None => "not measured".into(),
        },
    }
}

/// The panel of `report`.
pub(crate) fn cost_view(report: &Report) -> CostView {
    let mut rows: Vec<CostRow> = report.groups.iter().map(|(n, u)| row(n, u)).collect();
    rows.push(row("total", &report.total));
    CostView {
        summary: report.total.summary(),
        source: report.source.to_string(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_group_then_the_total() {
        let usage = Usage {
            workers: 2,
            allocated_core_seconds: 7_200.0,
            busy_core_seconds: 1_800.0,
            idle_fraction: 0.75,
            billing_units: 4.0,
            ..Usage::default()
        };
        let report = Report {
            total: usage.clone(),
            groups: [("gpu".to_string(), usage)].into(),
            ..Report::default()
        };
        let v = cost_view(&report);
        let names: Vec<&str> = v.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["gpu", "total"]);
        assert_eq!(
            (v.rows[1].core_hours.as_str(), v.rows[1].idle.as_str()),
            ("2.000", "75 %")
        );
        assert_eq!(v.rows[1].energy, "not measured");
        assert!(v.summary.starts_with("2 workers, 2.00 core-h allocated"));
    }
}
