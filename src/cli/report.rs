//! `drover report`: what a pool cost and what it used, in total and per
//! group, as a table or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::{presets::NOTHING, CellAlignment, Table};
use drover::client::SchedulerClient;
use drover::protocol::{Report, SchedulerFile, Usage};

use super::error::{CliResult, Context};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The pool's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
    /// Print JSON (`total` and `groups.NAME`), for scripts.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: ReportArgs) -> CliResult {
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let report = SchedulerClient::from_file(&file)
        .report()
        .await
        .context("asking the scheduler what the pool cost")?;
    match args.json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&report).context("printing the report")?
        ),
        false => print!("{}", text(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn hours(seconds: f64) -> String {
    format!("{:.3}", seconds / 3600.0)
}

fn row(name: &str, u: &Usage) -> Vec<String> {
    vec![
        drover::protocol::text::one_line(name, 60),
        u.jobs.to_string(),
        u.workers.to_string(),
        hours(u.allocated_core_seconds),
        hours(u.busy_core_seconds),
        format!("{:.0} %", 100.0 * u.idle_fraction),
        hours(u.allocated_gpu_seconds),
        hours(u.busy_gpu_seconds),
        hours(u.allocated_memory_gib_seconds),
        format!("{:.3}", u.billing_units),
        match u.energy_joules {
            Some(j) => format!("{:.1} kJ", j as f64 / 1000.0),
            None => "not measured".into(),
        },
    ]
}

/// The report as a table (a row per group, then the total) and the
/// source of its allocated figures.
fn text(r: &Report) -> String {
    if r.source == drover::protocol::ReportSource::Off {
        return format!("{}\n", r.summary());
    }
    let mut t = Table::new();
    t.load_style(NOTHING).set_header([
        "GROUP",
        "JOBS",
        "WORKERS",
        "CORE-H",
        "BUSY CORE-H",
        "IDLE",
        "GPU-H",
        "BUSY GPU-H",
        "GIB-H",
        "BILLING",
        "ENERGY",
    ]);
    for (name, usage) in &r.groups {
        t.add_row(row(name, usage));
    }
    t.add_row(row("total", &r.total));
    for i in 1..10 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let cooldown = match r.total.cooldown_idle_core_seconds {
        s if s > 0.0 => format!(
            "idle for adapt's cooldown: {} core-h (jobs a move down would have ended)\n",
            hours(s)
        ),
        _ => String::new(),
    };
    format!(
        "{t}\n{}\n{cooldown}allocated: from {}\n",
        r.total.summary(),
        r.source
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_group_then_the_total_and_where_allocations_came_from() {
        let usage = |cores: f64| Usage {
            jobs: 2,
            workers: 2,
            allocated_core_seconds: cores,
            busy_core_seconds: cores / 2.0,
            idle_fraction: 0.5,
            billing_units: 1.5,
            ..Usage::default()
        };
        let r = Report {
            at_ms: 1,
            source: drover::protocol::ReportSource::SlurmAccounting,
            total: usage(7_200.0),
            groups: [("cpu".to_string(), usage(3_600.0))].into(),
        };
        let out = text(&r);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].trim_start().starts_with("cpu"), "{out}");
        assert!(lines[2].trim_start().starts_with("total"), "{out}");
        assert!(
            lines[2].contains("2.000") && lines[2].contains("50 %"),
            "{out}"
        );
        assert!(lines[2].contains("not measured"), "{out}");
        assert!(
            out.contains("2 workers, 2.00 core-h allocated, 1.00 busy (50 %), 1.50 billing units")
        );
        assert!(
            out.contains("allocated: from Slurm's accounting (sacct)"),
            "{out}"
        );
        assert!(!out.contains("cooldown"), "none kept: {out}");
        let mut kept = r.clone();
        kept.total.cooldown_idle_core_seconds = 1_800.0;
        assert!(text(&kept).contains("idle for adapt's cooldown: 0.500 core-h"));
        let off = Report {
            source: drover::protocol::ReportSource::Off,
            ..Report::default()
        };
        assert_eq!(text(&off), "accounting is off\n");
    }
}
