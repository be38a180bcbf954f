//! Where the control API's requests go: the reconcile loop of the pool, or
//! of each group of a pool with groups. Which one a request means is a pure
//! decision, made here.

use tokio::sync::mpsc;

use super::ControlRequest;
use crate::config::PerJob;

/// One pool (or group) listening for control requests.
#[derive(Debug)]
pub(crate) struct Control {
    /// Its group, in a pool with groups.
    pub group: Option<String>,
    pub tx: mpsc::UnboundedSender<ControlRequest>,
    /// What one job holds, to turn workers into jobs.
    pub per_job: PerJob,
}

/// Every listener, in the order the groups were declared.
#[derive(Default)]
pub(crate) struct Controls(Vec<Control>);

/// Why a request names no listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// The scheduler serves no pool.
    NoCluster,
    /// A pool with groups was asked without naming one.
    GroupNeeded(Vec<String>),
    /// The group named is not one of the pool's.
    NoSuchGroup { asked: String, groups: Vec<String> },
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::NoCluster => f.write_str("this scheduler serves no cluster"),
            RouteError::GroupNeeded(groups) => write!(
                f,
                "group: this pool has groups {}; name one (--group NAME)",
                groups.join(", ")
            ),
            RouteError::NoSuchGroup { asked, groups } => write!(
                f,
                "group: `{asked}` is not one of this pool's groups; accepted: {}",
                groups.join(", ")
            ),
        }
    }
}

impl Controls {
    /// Adds a listener (a group that attaches again replaces its old one).
    pub fn attach(&mut self, control: Control) {
        self.0.retain(|c| c.group != control.group);
        self.0.push(control);
    }

    /// The listener `group` means: a pool without groups takes requests
    /// naming none; a pool with groups needs one of its names.
    pub fn route(&self, group: Option<&str>) -> Result<&Control, RouteError> {
        let groups = || -> Vec<String> { self.0.iter().filter_map(|c| c.group.clone()).collect() };
        match (group, self.0.as_slice()) {
            (_, []) => Err(RouteError::NoCluster),
            (None, [only]) => Ok(only),
            (None, _) => Err(RouteError::GroupNeeded(groups())),
            (Some(g), all) => all
                .iter()
                .find(|c| c.group.as_deref() == Some(g))
                .ok_or_else(|| RouteError::NoSuchGroup {
                    asked: g.to_string(),
                    groups: groups(),
                }),
        }
    }

    /// The first listener: the one a close goes to.
    pub fn first(&self) -> Option<&Control> {
        self.0.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(group: Option<&str>) -> Control {
        Control {
            group: group.map(String::from),
            tx: mpsc::unbounded_channel().0,
            per_job: PerJob {
                workers: 1,
                cores: 1,
                memory: 1,
            },
        }
    }

    #[test]
    fn requests_name_a_group_only_when_the_pool_has_groups() {
        let mut plain = Controls::default();
        assert_eq!(plain.route(None).err(), Some(RouteError::NoCluster));
        plain.attach(control(None));
        assert!(plain.route(None).is_ok());
        let mut grouped = Controls::default();
        grouped.attach(control(Some("cpu")));
        grouped.attach(control(Some("gpu")));
        assert_eq!(
            grouped.route(Some("gpu")).unwrap().group.as_deref(),
            Some("gpu")
        );
        let e = grouped.route(None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "group: this pool has groups cpu, gpu; name one (--group NAME)"
        );
        let e = grouped.route(Some("big")).unwrap_err();
        assert!(e
            .to_string()
            .contains("`big` is not one of this pool's groups; accepted: cpu, gpu"));
        grouped.attach(control(Some("cpu")));
        assert_eq!(
            grouped.first().unwrap().group.as_deref(),
            Some("gpu"),
            "cpu attached again, last"
        );
    }
}
