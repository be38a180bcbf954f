//! What a process costs, read from `/proc`: the benchmarks measure the
//! scheduler (and peers' servers) as separate processes so that the load
//! generator's own memory and CPU never count.

/// Resident memory of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// CPU time `pid` has used, (user, system), in clock ticks (`USER_HZ`,
/// 100 a second on Linux).
pub fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: fields are counted after its ')'.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state field as 3.
    (fields[11].parse().unwrap(), fields[12].parse().unwrap())
}

/// Clock ticks a second in `/proc/PID/stat`.
pub const USER_HZ: f64 = 100.0;

/// The share of one core `pid` uses over `window`, in percent.
pub async fn cpu_percent_over(pid: u32, window: std::time::Duration) -> f64 {
    let (u0, s0) = cpu_ticks(pid);
    let t0 = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let (u1, s1) = cpu_ticks(pid);
    ((u1 - u0) + (s1 - s0)) as f64 / USER_HZ / t0.elapsed().as_secs_f64() * 100.0
}
