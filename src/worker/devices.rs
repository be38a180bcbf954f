//! Which of a worker's GPUs each running task holds. The scheduler counts
//! GPUs; the worker picks the devices, so that two tasks never share one,
//! and gives each task `CUDA_VISIBLE_DEVICES` naming exactly its own.

use std::sync::Arc;

use parking_lot::Mutex;

/// The environment variable CUDA (and most GPU libraries) read.
pub const VISIBLE: &str = "CUDA_VISIBLE_DEVICES";

/// The GPUs of a worker not held by a task.
#[derive(Debug, Clone, Default)]
pub struct Devices {
    /// Whether the worker has GPUs at all.
    any: bool,
    free: Arc<Mutex<Vec<String>>>,
}

/// Devices a task holds; they go back when it is dropped.
#[derive(Debug)]
pub struct Lease {
    ids: Vec<String>,
    free: Arc<Mutex<Vec<String>>>,
}

impl Devices {
    pub fn new(ids: Vec<String>) -> Devices {
        Devices {
            any: !ids.is_empty(),
            free: Arc::new(Mutex::new(ids)),
        }
    }

    /// Takes `n` free devices, lowest first; `None` when fewer are free.
    pub fn take(&self, n: u32) -> Option<Lease> {
        let mut free = self.free.lock();
        let n = n as usize;
        if n > free.len() {
            return None;
        }
        let ids = free.drain(..n).collect();
        Some(Lease {
            ids,
            free: self.free.clone(),
        })
    }

    /// What a task's `CUDA_VISIBLE_DEVICES` should be: its own devices, or
    /// empty on a GPU worker for a task that holds none (so it cannot
    /// take a device another task holds); `None` on a worker without GPUs,
    /// which leaves the variable as the job has it.
    pub fn visible(&self, lease: &Lease) -> Option<String> {
        self.any.then(|| lease.ids.join(","))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut free = self.free.lock();
        free.append(&mut self.ids);
        free.sort_by(|a, b| natural(a).cmp(&natural(b)));
    }
}

/// Sort key that puts `2` before `10`.
fn natural(id: &str) -> (usize, &str) {
    (id.len(), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_get_their_own_devices_and_give_them_back() {
        let d = Devices::new(["0", "1", "2"].map(String::from).to_vec());
        let a = d.take(2).unwrap();
        assert_eq!(d.visible(&a).as_deref(), Some("0,1"));
        assert!(d.take(2).is_none(), "one left");
        let none = d.take(0).unwrap();
        assert_eq!(
            d.visible(&none).as_deref(),
            Some(""),
            "a CPU task sees no GPU"
        );
        drop(a);
        assert_eq!(d.visible(&d.take(3).unwrap()).as_deref(), Some("0,1,2"));
        let cpu_only = Devices::new(Vec::new());
        assert_eq!(cpu_only.visible(&cpu_only.take(0).unwrap()), None);
    }
}
