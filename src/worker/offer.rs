//! What a worker offers besides cores and memory: its GPUs (as Slurm
//! allocated them to the job, or as `--gpus` names them), the named
//! resources it is told it has, and its group; and each process's share
//! when a job runs several.

use std::collections::BTreeMap;

use crate::protocol::{check_name, check_resources, parse_gpus, Offer, ResourceError};

/// What Slurm puts in `CUDA_VISIBLE_DEVICES` for a job without GPU files.
const NO_DEVICES: &str = "NoDevFiles";

/// What this agent offers, from its arguments and Slurm's environment.
pub fn detect(args: &super::WorkerArgs) -> Result<Offer, ResourceError> {
    from_args(
        args.gpus.as_deref(),
        std::env::var(super::devices::VISIBLE).ok().as_deref(),
        &args.resources,
        args.group.as_deref(),
    )
}

/// The offer from the agent's arguments: `gpus` given on the command line
/// is checked strictly (a typo is the user's to fix); a malformed
/// `CUDA_VISIBLE_DEVICES` from the environment is warned about and
/// treated as no GPUs, so that a site's odd setting cannot stop the worker.
pub fn from_args(
    gpus: Option<&str>,
    env_gpus: Option<&str>,
    resources: &[(String, u64)],
    group: Option<&str>,
) -> Result<Offer, ResourceError> {
    let gpus = match (gpus, env_gpus) {
        (Some(list), _) => parse_gpus(list)?,
        (None, Some(NO_DEVICES) | None) => Vec::new(),
        (None, Some(list)) => parse_gpus(list).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring CUDA_VISIBLE_DEVICES: this worker offers no GPUs");
            Vec::new()
        }),
    };
    let mut named = BTreeMap::new();
    for (name, amount) in resources {
        let total = named.entry(name.clone()).or_insert(0u64);
        *total = total.saturating_add(*amount);
    }
    check_resources("resource", &named)?;
    if let Some(g) = group {
        check_name("group", g)?;
    }
    Ok(Offer {
        gpus,
        resources: named,
        group: group.map(String::from),
    })
}

/// Process `index` of `count`'s share: GPUs dealt out in contiguous runs
/// (the first processes get one more when they do not divide evenly), each
/// named resource divided evenly, rounded down (a process whose share is 0
/// does not offer it).
pub fn share(offer: &Offer, index: u32, count: u32) -> Offer {
    if count <= 1 {
        return offer.clone();
    }
    let (index, count) = (index as usize, count as usize);
    let n = offer.gpus.len();
    let start = index * (n / count) + index.min(n % count);
    let len = n / count + usize::from(index < n % count);
    Offer {
        gpus: offer.gpus[start.min(n)..(start + len).min(n)].to_vec(),
        resources: offer
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), v / count as u64))
            .filter(|(_, v)| *v > 0)
            .collect(),
        group: offer.group.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_come_from_the_flag_or_slurms_environment() {
        let o = from_args(None, Some("0,1"), &[], Some("gpu")).unwrap();
        assert_eq!(
            (o.gpus, o.group.as_deref()),
            (vec!["0".into(), "1".into()], Some("gpu"))
        );
        assert!(from_args(None, Some(NO_DEVICES), &[], None)
            .unwrap()
            .gpus
            .is_empty());
        assert!(from_args(None, Some("0;1"), &[], None)
            .unwrap()
            .gpus
            .is_empty());
        assert_eq!(
            from_args(Some("3"), Some("0,1"), &[], None).unwrap().gpus,
            ["3"]
        );
        let e = from_args(Some("0;1"), None, &[], None).unwrap_err();
        assert_eq!(e.field, "gpus");
        let e = from_args(None, None, &[], Some("no spaces")).unwrap_err();
        assert_eq!(e.field, "group");
        let twice = [("licence".to_string(), 1), ("licence".to_string(), 2)];
        assert_eq!(
            from_args(None, None, &twice, None).unwrap().resources["licence"],
            3
        );
    }

    #[test]
    fn processes_of_a_job_share_its_gpus_and_resources() {
        let offer = Offer {
            gpus: ["0", "1", "2"].map(String::from).to_vec(),
            resources: [("licence".to_string(), 3)].into(),
            group: Some("g".into()),
        };
        let shares: Vec<Offer> = (0..2).map(|i| share(&offer, i, 2)).collect();
        assert_eq!(shares[0].gpus, ["0", "1"]);
        assert_eq!(shares[1].gpus, ["2"]);
        assert_eq!(shares[1].resources["licence"], 1);
        assert_eq!(shares[1].group.as_deref(), Some("g"));
        let four: Vec<Offer> = (0..4).map(|i| share(&offer, i, 4)).collect();
        assert!(four[3].gpus.is_empty() && four[0].resources.is_empty());
        assert_eq!(share(&offer, 0, 1), offer);
    }
}
