//! Tasks that ask for GPUs, on the real local Slurm: its last node declares
//! two stand-in GPUs (`slurm/local-cluster`'s gres.conf), Slurm allocates
//! them to a worker job and names them in `CUDA_VISIBLE_DEVICES`, and the
//! worker hands each task its own.

mod common;

use std::time::Duration;

use common::{exclusive, local_slurm, log_dir, test_job};
use drover::tasks::TaskState;

fn submit(file: &std::path::Path, args: &[&str], script: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("submit")
        .args(args)
        .arg("--scheduler-file")
        .arg(file)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_tasks_each_get_their_own_device_and_take_turns_for_them() {
    let Some(slurm) = local_slurm("gpu_tasks") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    // One 4-core worker holding both GPUs: four 1-core, 1-GPU tasks would
    // all fit its cores, but only two GPUs are there.
    let job = test_job("drover-gpus", 4, logs.path()).gres("gpu:2");
    let cluster = common::running_pool(job, slurm, 1).await;
    let worker = &cluster.status().jobs[0].workers[0];
    assert_eq!(
        worker.offer.gpus,
        ["0", "1"],
        "Slurm's allocation, as the worker took it"
    );
    let file = cluster.scheduler_file().to_path_buf();
    let stamp = "date +%s%N; echo \"gpus=$CUDA_VISIBLE_DEVICES\"; sleep 0.5; date +%s%N";
    let out = submit(&file, &["--gpus", "1", "--array", "0-3"], stamp);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A CPU task on the GPU worker sees none of the GPUs.
    let cpu = submit(
        &file,
        &["--name", "cpu"],
        "echo \"gpus=[$CUDA_VISIBLE_DEVICES]\"",
    );
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    // More GPUs than a worker has: refused at submission, saying so.
    let refused = submit(&file, &["--gpus", "3"], "true");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(said.contains("3 GPUs") && said.contains("2 GPUs"), "{said}");
    let done = cluster
        .client()
        .wait_tasks(None, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(done.len(), 5, "the refused task was never queued");
    let mut spans = Vec::new();
    for t in &done {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        let out = &t.output.as_ref().unwrap().stdout;
        if t.name.as_deref() == Some("cpu") {
            assert_eq!(out.trim(), "gpus=[]", "a task without GPUs sees none");
            continue;
        }
        let lines: Vec<&str> = out.lines().collect();
        let device = lines[1].strip_prefix("gpus=").unwrap().to_string();
        assert!(device == "0" || device == "1", "one device each: {out}");
        let at = |l: &str| l.trim().parse::<u128>().unwrap();
        spans.push((at(lines[0]), at(lines[2]), device));
    }
    // At every moment, the tasks running hold different devices, and at
    // most two run: no two tasks on one device overlap in time (tasks that
    // each overlap a third one may still have run one after the other),
    // and at no task's start are more than two running.
    spans.sort();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let overlap = b.0 < a.1 && a.0 < b.1;
            assert!(
                !(overlap && a.2 == b.2),
                "two tasks shared GPU {}: {spans:?}",
                a.2
            );
        }
        let running = spans.iter().filter(|b| b.0 <= a.0 && a.0 < b.1).count();
        assert!(running <= 2, "more than two at once: {spans:?}");
    }
    cluster.close().await.unwrap();
}
