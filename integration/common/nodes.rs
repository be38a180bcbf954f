//! Nodes in a test's hands: one it killed (`slurm/local-cluster
//! kill-node`) comes back; a job of `urgent` takes nodes whole, preempting
//! what runs there on `scavenger`.

use std::process::Command;

use drover::slurm::JobId;

/// Submits a job of `urgent` for `secs` seconds that takes whole the nodes
/// `place` names (sbatch's `-w node2`, or `-N 2`): it preempts whatever
/// runs on `scavenger` there.
pub fn urgent_job(place: &[&str], secs: u32) -> JobId {
    let sleep = format!("sleep {secs}");
    let mut args = vec!["--parsable", "-p", "urgent"];
    args.extend_from_slice(place);
    args.extend([
        "--exclusive",
        "-J",
        "drover-urgent",
        "-o",
        "/dev/null",
        "--wrap",
        &sleep,
    ]);
    let id = super::slurm_cmd("sbatch", &args);
    JobId::new(id.trim().parse().unwrap())
}

/// `urgent_job` on every node of the partition.
pub fn urgent_job_on_every_node(secs: u32) -> JobId {
    let nodes = super::slurm_cmd("sinfo", &["-h", "-p", "urgent", "-o", "%D"]);
    urgent_job(&["-N", nodes.trim()], secs)
}

/// Brings a killed node back, whatever happens in the test.
pub struct ReviveNode(pub u32);

impl Drop for ReviveNode {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/local-cluster");
        let out = Command::new("timeout")
            .args(["180", script, "revive-node", &self.0.to_string()])
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!(
                    "revive-node {} failed: {}",
                    self.0,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
