//! Names and counts of resources, as users write them: resource and group
//! names, `NAME=AMOUNT`, lists of GPU device ids. They come from outside
//! (flags, files, requests), so every one is bounded here, once, for the
//! job settings, the scheduler and the agent.

use std::collections::BTreeMap;
use std::fmt;

/// The most GPUs one worker may offer, or one task ask for.
pub const MAX_GPUS: u32 = 1024;
/// The most named resources one worker may offer, or one task ask for.
pub const MAX_RESOURCES: usize = 64;
/// The longest name of a resource or group, and of a GPU's device id.
pub const MAX_NAME: usize = 64;
/// The largest amount of one named resource.
pub const MAX_AMOUNT: u64 = 1 << 40;

/// Why a name, a count or a list of GPUs is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is not accepted: expected {accepted}")]
pub struct ResourceError {
    /// The field.
    pub field: &'static str,
    /// What was given (cut short when long).
    pub value: String,
    /// The accepted form.
    pub accepted: String,
}

impl ResourceError {
    fn new(field: &'static str, value: impl fmt::Display, accepted: impl Into<String>) -> Self {
        let mut value = value.to_string();
        if value.len() > 80 {
            let cut = (0..=80)
                .rev()
                .find(|i| value.is_char_boundary(*i))
                .unwrap_or(0);
            value.truncate(cut);
            value.push('…');
        }
        ResourceError {
            field,
            value,
            accepted: accepted.into(),
        }
    }
}

/// The accepted form of resource and group names.
pub const NAME_FORM: &str =
    "a name of 1 to 64 letters, digits, '_', '-' or '.', starting with a letter";

/// Checks a resource or group name.
pub fn check_name(field: &'static str, name: &str) -> Result<(), ResourceError> {
    let ok = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    match ok {
        true => Ok(()),
        false => Err(ResourceError::new(field, name, NAME_FORM)),
    }
}

/// Checks a set of named resources: how many, their names, their amounts.
pub fn check_resources(
    field: &'static str,
    resources: &BTreeMap<String, u64>,
) -> Result<(), ResourceError> {
    if resources.len() > MAX_RESOURCES {
        let accepted = format!("at most {MAX_RESOURCES} named resources");
        return Err(ResourceError::new(field, resources.len(), accepted));
    }
    for (name, amount) in resources {
        check_name(field, name)?;
        if *amount == 0 || *amount > MAX_AMOUNT {
            let accepted = format!("an amount of {name} from 1 to {MAX_AMOUNT}");
            return Err(ResourceError::new(field, amount, accepted));
        }
    }
    Ok(())
}

/// Parses `NAME=AMOUNT` (as `--resource` takes it).
pub fn parse_resource(text: &str) -> Result<(String, u64), ResourceError> {
    let accepted =
        format!("NAME=AMOUNT, e.g. licence=2, NAME {NAME_FORM}, AMOUNT 1 to {MAX_AMOUNT}");
    let refused = || ResourceError::new("resource", text, accepted.clone());
    let (name, amount) = text.split_once('=').ok_or_else(refused)?;
    check_name("resource", name).map_err(|_| refused())?;
    let amount: u64 = amount
        .parse()
        .ok()
        .filter(|a| (1..=MAX_AMOUNT).contains(a))
        .ok_or_else(refused)?;
    Ok((name.to_string(), amount))
}

/// Parses a list of GPU device ids as `CUDA_VISIBLE_DEVICES` holds them
/// (`0,1`, or UUIDs); empty means none.
pub fn parse_gpus(text: &str) -> Result<Vec<String>, ResourceError> {
    let accepted = format!(
        "a comma-separated list of at most {MAX_GPUS} device ids of letters, digits, '-' or ':'"
    );
    let ids: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let ok = ids.len() <= MAX_GPUS as usize
        && ids.iter().all(|id| {
            id.len() <= MAX_NAME
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':'))
        });
    let mut seen = std::collections::BTreeSet::new();
    match ok && ids.iter().all(|id| seen.insert(id)) {
        true => Ok(ids),
        false => Err(ResourceError::new("gpus", text, accepted)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_amounts_and_gpu_lists_are_bounded() {
        assert!(check_name("group", "gpu-a100.x_1").is_ok());
        for bad in ["", "1gpu", "a b", "a;rm", &"a".repeat(65)] {
            let e = check_name("group", bad).unwrap_err();
            assert_eq!(e.field, "group");
            assert!(e.to_string().contains("starting with a letter"), "{e}");
        }
        assert_eq!(parse_resource("licence=2").unwrap(), ("licence".into(), 2));
        for bad in [
            "licence",
            "licence=0",
            "licence=-1",
            "=2",
            "l=99999999999999999",
        ] {
            let e = parse_resource(bad).unwrap_err();
            assert!(e.to_string().contains("NAME=AMOUNT"), "{bad}: {e}");
        }
        assert_eq!(parse_gpus("0,1").unwrap(), ["0", "1"]);
        assert_eq!(parse_gpus("GPU-8f3a:1").unwrap(), ["GPU-8f3a:1"]);
        assert!(parse_gpus("").unwrap().is_empty());
        assert!(parse_gpus("0,0").is_err(), "a device twice");
        assert!(parse_gpus("0;1").is_err());
        let many = (0..=MAX_GPUS).map(|i| i.to_string()).collect::<Vec<_>>();
        assert!(parse_gpus(&many.join(",")).is_err());
        let mut r = BTreeMap::new();
        r.insert("disk".to_string(), 0);
        assert!(check_resources("resources", &r).is_err());
    }
}
