//! `drover doctor` against the local Slurm: a healthy setup passes every
//! check; a wrong interface, an address the nodes cannot reach, an
//! unknown partition, a walltime above the partition's limit and a QOS
//! cap each get the right verdict and fix. Run on both backends.

mod common;

use common::{accounting_on, bridge, drover, local_slurm, slurm_cmd, unique};

/// `drover doctor ARGS`: its exit code and output.
fn doctor(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let out = drover(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!text.is_empty(), "doctor printed nothing; stderr: {err}");
    (out.status.code(), text)
}

/// The report's line for check `name` (`ok   name  detail`).
fn line<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| {
            l.get(5..)
                .is_some_and(|rest| rest.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no {name} check in:\n{report}"))
}

/// The fix printed under check `name`.
fn fix<'a>(report: &'a str, name: &str) -> &'a str {
    let lines: Vec<&str> = report.lines().collect();
    let at = lines.iter().position(|l| *l == line(report, name)).unwrap();
    lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("     "))
        .find_map(|l| l.trim().strip_prefix("fix: "))
        .unwrap_or_else(|| panic!("no fix for {name} in:\n{report}"))
}

#[test]
fn a_healthy_setup_passes_every_check_and_is_suggested_as_it_is() {
    if local_slurm("a_healthy_setup_passes_every_check").is_none() {
        return;
    }
    let (code, report) = doctor(&[
        "--interface",
        "ib0",
        "--scheduler-interface",
        &bridge(),
        "--account",
        "drover",
    ]);
    assert_eq!(code, Some(0), "{report}");
    // Over a data_parser slurmrestd, which names no default partition, the
    // partition check is skipped (and the verdict says so).
    let verdict = match common::over_rest() && common::slurm_release() != "22.05" {
        true => "verdict: 8 checks pass, 1 skipped",
        false => "verdict: all 9 checks pass",
    };
    assert!(report.contains(verdict), "{verdict:?} in:\n{report}");
    let release = format!("Slurm {}", common::slurm_release());
    assert!(line(&report, "slurm").contains(&release), "{report}");
    // What drover reads differently on this release, through this backend.
    let differs = match (common::over_rest(), common::slurm_release().as_str()) {
        (true, "22.05") => "job descriptions are sent as sbatch's text options",
        (true, _) => "job descriptions are sent typed",
        (false, "22.05") => "squeue -O exit_code prints a wait status",
        (false, _) => "squeue -O exit_code prints CODE:SIGNAL",
    };
    assert!(
        line(&report, "release").contains(differs),
        "{differs:?} in:\n{report}"
    );
    let through = match common::over_rest() {
        true => format!("reached through slurmrestd {} at", common::rest_version()),
        false => "reached through Slurm's commands".to_string(),
    };
    assert!(line(&report, "slurm").contains(&through), "{report}");
    assert!(
        line(&report, "accounting").contains("on (accounting_storage/slurmdbd"),
        "{report}"
    );
    assert!(
        line(&report, "network").contains(&format!("reached {}:", common::bridge_address())),
        "{report}"
    );
    assert!(
        line(&report, "interface").contains(&format!("has ib0 ({}", common::subnet_prefix())),
        "{report}"
    );
    assert!(report.contains("interface = \"ib0\""), "{report}");
    assert!(
        report.contains(&format!("scheduler-interface = \"{}\"", bridge())),
        "{report}"
    );
}

#[test]
fn a_wrong_interface_fails_with_the_nodes_interfaces_and_the_right_one() {
    if local_slurm("a_wrong_interface").is_none() {
        return;
    }
    let (code, report) = doctor(&["--interface", "eth9", "--scheduler-interface", &bridge()]);
    assert_eq!(code, Some(1), "{report}");
    let l = line(&report, "interface");
    assert!(
        l.starts_with("FAIL")
            && l.contains("no IPv4 address on `eth9`")
            && l.contains(&format!("ib0 ({}", common::subnet_prefix())),
        "{report}"
    );
    assert_eq!(fix(&report, "interface"), "interface = \"ib0\"");
    assert!(line(&report, "network").starts_with("ok"), "{report}");
    assert!(
        report.contains("interface = \"ib0\""),
        "the suggestion mends it: {report}"
    );
}

#[test]
fn an_address_the_nodes_cannot_reach_fails_with_the_one_they_can() {
    if local_slurm("an_address_the_nodes_cannot_reach").is_none() {
        return;
    }
    let (code, report) = doctor(&["--interface", "ib0", "--scheduler-host", "127.0.0.1"]);
    assert_eq!(code, Some(1), "{report}");
    let l = line(&report, "network");
    assert!(
        l.starts_with("FAIL") && l.contains("could not reach 127.0.0.1:"),
        "{report}"
    );
    assert!(
        fix(&report, "network").starts_with(&format!("scheduler-interface = \"{}\"", bridge())),
        "{report}"
    );
}

#[test]
fn an_unknown_partition_fails_with_slurms_words_and_no_probe_runs() {
    if local_slurm("an_unknown_partition").is_none() {
        return;
    }
    let (code, report) = doctor(&[
        "--queue",
        "nosuch",
        "--interface",
        "ib0",
        "--scheduler-interface",
        &bridge(),
    ]);
    assert_eq!(code, Some(1), "{report}");
    let l = line(&report, "partition");
    assert!(
        l.starts_with("FAIL")
            && l.contains(&format!(
                "no partition nosuch; partitions: {}",
                common::partition_list()
            )),
        "{report}"
    );
    assert_eq!(fix(&report, "partition"), "queue = \"batch\"");
    let words = match common::over_rest() {
        true => "Invalid partition name specified",
        false => "invalid partition specified: nosuch",
    };
    assert!(
        line(&report, "job script").starts_with("FAIL") && report.contains(words),
        "{report}"
    );
    assert!(line(&report, "network").starts_with("skip"), "{report}");
}

#[test]
fn limits_of_the_partition_and_a_qos_cap_are_told() {
    if local_slurm("limits_of_the_partition_and_a_qos_cap").is_none() {
        return;
    }
    let (code, report) = doctor(&["--queue", "small", "--walltime", "2h", "--no-probe"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        line(&report, "partition").contains("walltime 02:00:00 is above its time limit 01:00:00"),
        "{report}"
    );
    assert_eq!(fix(&report, "partition"), "walltime = \"01:00:00\"");
    assert!(report.contains("walltime = \"01:00:00\""), "{report}");
    if !accounting_on() {
        // No accounting: no association or QOS limit can hold, and doctor
        // says so rather than warning that sacctmgr failed.
        let (code, report) = doctor(&["--no-probe", "--interface", "ib0"]);
        let l = line(&report, "limits");
        assert!(
            l.starts_with("ok") && l.contains("accounting is off"),
            "{code:?} {report}"
        );
        return;
    }
    let qos = unique("drover-dq");
    slurm_cmd(
        "sacctmgr",
        &["-i", "add", "qos", &qos, "MaxSubmitJobsPerUser=4"],
    );
    slurm_cmd(
        "sacctmgr",
        &[
            "-i",
            "modify",
            "user",
            "root",
            "where",
            "account=drover",
            "set",
            &format!("qos+={qos}"),
        ],
    );
    let (code, report) = doctor(&[
        "--account",
        "drover",
        "--qos",
        &qos,
        "--no-probe",
        "--interface",
        "ib0",
        "--scheduler-interface",
        &bridge(),
    ]);
    slurm_cmd("sacctmgr", &["-i", "delete", "qos", &qos]);
    assert_eq!(code, Some(0), "{report}");
    let l = line(&report, "limits");
    assert!(
        l.contains(&format!("QOS {qos}")) && l.contains("at most 4 jobs submitted at once"),
        "{report}"
    );
}
