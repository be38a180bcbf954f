//! A node the test killed (`slurm/local-cluster kill-node`) comes back.

use std::process::Command;

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
