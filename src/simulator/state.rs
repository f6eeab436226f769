//! The simulator's mutable state: setup, faults and request counters, behind one lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::lock::lock;

use super::fault::{Api, Fault};
use super::keyless::Issued;
use super::pools::SimulatedPool;
use super::setup::{KeyConfig, SimulatedCounts, SimulatorSetup};

/// Distinct counter rows kept; past this, new combinations are folded into one overflow row so
/// that a client sending random access key ids cannot grow memory without bound.
const MAX_COUNTER_ROWS: usize = 10_000;

/// Selects requests to count. Unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestFilter {
    /// Only this API.
    #[serde(default)]
    pub api: Option<Api>,
    /// Only this project (from the path, or the IAM name filter for IAM calls).
    #[serde(default)]
    pub project: Option<String>,
    /// Only this workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Only requests that named this access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Only answers with this status (0 for requests left unanswered by a hang).
    #[serde(default)]
    pub status: Option<u16>,
    /// Only requests whose User-Agent contains this text (a replica's identity, say).
    #[serde(default)]
    pub user_agent_containing: Option<String>,
}

impl RequestFilter {
    /// Everything on one API.
    pub fn api(api: Api) -> Self {
        Self {
            api: Some(api),
            ..Self::default()
        }
    }

    /// Only answers with `status`.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Only this project.
    #[must_use]
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Only this workspace.
    #[must_use]
    pub fn with_workspace(mut self, workspace: impl Into<String>) -> Self {
        self.workspace = Some(workspace.into());
        self
    }

    /// Only requests whose User-Agent contains `text`.
    #[must_use]
    pub fn with_user_agent_containing(mut self, text: impl Into<String>) -> Self {
        self.user_agent_containing = Some(text.into());
        self
    }

    fn matches(&self, row: &RequestKey) -> bool {
        let scope = |want: &Option<String>, got: &Option<String>| {
            want.as_ref().is_none_or(|w| Some(w) == got.as_ref())
        };
        self.api.is_none_or(|a| a == row.api)
            && scope(&self.project, &row.project)
            && scope(&self.workspace, &row.workspace)
            && scope(&self.access_key_id, &row.access_key_id)
            && self.status.is_none_or(|s| s == row.status)
            && self.user_agent_containing.as_ref().is_none_or(|want| {
                row.user_agent
                    .as_ref()
                    .is_some_and(|agent| agent.contains(want.as_str()))
            })
    }
}

/// One counter row: what was asked and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestKey {
    /// The API.
    pub api: Api,
    /// The project.
    pub project: Option<String>,
    /// The workspace.
    pub workspace: Option<String>,
    /// The access key id the request named.
    pub access_key_id: Option<String>,
    /// The status answered (0: never answered).
    pub status: u16,
    /// The User-Agent sent, if any.
    pub user_agent: Option<String>,
}

/// A counter row with its count, as the admin API lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    /// What was asked and answered.
    #[serde(flatten)]
    pub key: RequestKey,
    /// How many times.
    pub count: u64,
}

/// Request counters, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatorStats {
    /// Every request served, admin API excluded.
    pub total: u64,
    /// Requests being handled now.
    pub in_flight: u64,
    /// The most requests handled at once since the last reset.
    pub max_in_flight: u64,
    /// Totals by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Totals by API.
    pub by_api: BTreeMap<String, u64>,
    /// Statistics calls by project.
    pub by_project: BTreeMap<String, u64>,
    /// Statistics calls by `project/workspace`.
    pub by_workspace: BTreeMap<String, u64>,
    /// Totals by access key id.
    pub by_access_key: BTreeMap<String, u64>,
    /// Every counter row.
    pub requests: Vec<RequestCount>,
}

/// A fault with its id and remaining uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveFault {
    /// The id to delete it by.
    pub id: u64,
    /// The fault; `times` counts down as it is used.
    #[serde(flatten)]
    pub fault: Fault,
}

#[derive(Debug, Default)]
struct Inner {
    setup: SimulatorSetup,
    faults: Vec<ActiveFault>,
    next_fault_id: u64,
    counters: BTreeMap<RequestKey, u64>,
    /// The latest requests and when they were answered, oldest first, at most
    /// [`MAX_RECENT_REQUESTS`]: for tests of when requests come, not only how many.
    recent: VecDeque<(RequestKey, Instant)>,
    in_flight: u64,
    max_in_flight: u64,
    /// IAM tokens and temporary credentials issued through the keyless endpoints. They outlive
    /// setup replacements and resets, as credentials IAM issued outlive configuration changes.
    issued: Issued,
}

/// How many requests [`State::request_times`] remembers.
const MAX_RECENT_REQUESTS: usize = 4096;

/// The shared state. Never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct State {
    inner: Mutex<Inner>,
}

/// What the statistics API answers for a (project, workspace).
pub(crate) enum Lookup<T> {
    Found(T),
    NoProject,
    NoWorkspace,
}

impl State {
    pub fn new(setup: SimulatorSetup) -> Self {
        Self {
            inner: Mutex::new(Inner {
                setup,
                ..Inner::default()
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut lock(&self.inner))
    }

    pub fn setup(&self) -> SimulatorSetup {
        self.with(|i| i.setup.clone())
    }

    /// Reads part of the setup without cloning all of it.
    pub fn read_setup<T>(&self, f: impl FnOnce(&SimulatorSetup) -> T) -> T {
        self.with(|i| f(&i.setup))
    }

    /// Reads or adds issued tokens and credentials.
    pub fn issued<T>(&self, f: impl FnOnce(&mut Issued) -> T) -> T {
        self.with(|i| f(&mut i.issued))
    }

    pub fn replace_setup(&self, setup: SimulatorSetup) {
        self.with(|i| i.setup = setup);
    }

    pub fn key(&self, access_key_id: &str) -> Option<KeyConfig> {
        self.with(|i| {
            i.setup
                .credentials
                .iter()
                .find(|k| k.access_key_id == access_key_id)
                .cloned()
        })
    }

    pub fn lookup(&self, project: &str, workspace: &str) -> Lookup<SimulatedCounts> {
        self.with(
            |i| match i.setup.projects.iter().find(|p| p.id == project) {
                None => Lookup::NoProject,
                Some(p) => match p.workspaces.get(workspace) {
                    Some(c) => Lookup::Found(*c),
                    None => Lookup::NoWorkspace,
                },
            },
        )
    }

    /// The pools of a workspace (none when it has no entry), if the workspace exists.
    pub fn lookup_pools(&self, project: &str, workspace: &str) -> Lookup<Vec<SimulatedPool>> {
        self.with(
            |i| match i.setup.projects.iter().find(|p| p.id == project) {
                None => Lookup::NoProject,
                Some(p) if !p.workspaces.contains_key(workspace) => Lookup::NoWorkspace,
                Some(p) => Lookup::Found(p.pools.get(workspace).cloned().unwrap_or_default()),
            },
        )
    }

    /// Sets the pools of a workspace; false (and nothing set) when the workspace has no counts.
    pub fn set_pools(&self, project: &str, workspace: &str, pools: Vec<SimulatedPool>) -> bool {
        self.with(|i| {
            match i
                .setup
                .projects
                .iter_mut()
                .find(|p| p.id == project && p.workspaces.contains_key(workspace))
            {
                Some(p) => {
                    p.pools.insert(workspace.to_owned(), pools);
                    true
                }
                None => false,
            }
        })
    }

    /// `(id, region)` of the projects named `name` (all projects when `None`).
    pub fn projects_named(&self, name: Option<&str>) -> Vec<(String, String)> {
        self.with(|i| {
            i.setup
                .projects
                .iter()
                .filter_map(|p| {
                    let region = p.region.clone()?;
                    name.is_none_or(|n| n == region)
                        .then(|| (p.id.clone(), region))
                })
                .collect()
        })
    }

    pub fn set_counts(&self, project: &str, workspace: &str, counts: SimulatedCounts) {
        self.with(|i| {
            let projects = &mut i.setup.projects;
            let index = match projects.iter().position(|p| p.id == project) {
                Some(index) => index,
                None => {
                    projects.push(super::setup::ProjectConfig {
                        id: project.to_owned(),
                        ..Default::default()
                    });
                    projects.len() - 1
                }
            };
            projects[index]
                .workspaces
                .insert(workspace.to_owned(), counts);
        });
    }

    pub fn remove_counts(&self, project: &str, workspace: &str) -> bool {
        self.with(|i| {
            i.setup
                .projects
                .iter_mut()
                .find(|p| p.id == project)
                .is_some_and(|p| p.workspaces.remove(workspace).is_some())
        })
    }

    pub fn inject(&self, fault: Fault) -> u64 {
        self.with(|i| {
            i.next_fault_id += 1;
            let id = i.next_fault_id;
            i.faults.push(ActiveFault { id, fault });
            id
        })
    }

    pub fn faults(&self) -> Vec<ActiveFault> {
        self.with(|i| i.faults.clone())
    }

    pub fn clear_faults(&self) {
        self.with(|i| i.faults.clear());
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.with(|i| {
            let before = i.faults.len();
            i.faults.retain(|f| f.id != id);
            before != i.faults.len()
        })
    }

    /// Takes one use of the first fault matching the request.
    pub fn take_fault(
        &self,
        api: Api,
        project: Option<&str>,
        workspace: Option<&str>,
        access_key_id: Option<&str>,
    ) -> Option<Fault> {
        self.with(|i| {
            let index = i
                .faults
                .iter()
                .position(|f| f.fault.matches(api, project, workspace, access_key_id))?;
            let active = &mut i.faults[index];
            let fault = active.fault.clone();
            match &mut active.fault.times {
                Some(n) if *n <= 1 => {
                    i.faults.remove(index);
                }
                Some(n) => *n -= 1,
                None => {}
            }
            Some(fault)
        })
    }

    pub fn record(&self, mut key: RequestKey) {
        self.with(|i| {
            if !i.counters.contains_key(&key) && i.counters.len() >= MAX_COUNTER_ROWS {
                key = RequestKey {
                    api: key.api,
                    project: None,
                    workspace: None,
                    access_key_id: Some("(overflow)".to_owned()),
                    status: key.status,
                    user_agent: None,
                };
            }
            if i.recent.len() == MAX_RECENT_REQUESTS {
                i.recent.pop_front();
            }
            i.recent.push_back((key.clone(), Instant::now()));
            *i.counters.entry(key).or_default() += 1;
        });
    }

    /// When the latest requests matching `filter` were answered, oldest first.
    pub fn request_times(&self, filter: &RequestFilter) -> Vec<Instant> {
        self.with(|i| {
            i.recent
                .iter()
                .filter(|(key, _)| filter.matches(key))
                .map(|(_, at)| *at)
                .collect()
        })
    }

    pub fn enter(&self) {
        self.with(|i| {
            i.in_flight += 1;
            i.max_in_flight = i.max_in_flight.max(i.in_flight);
        });
    }

    pub fn leave(&self) {
        self.with(|i| i.in_flight = i.in_flight.saturating_sub(1));
    }

    pub fn count(&self, filter: &RequestFilter) -> u64 {
        self.with(|i| {
            i.counters
                .iter()
                .filter(|(k, _)| filter.matches(k))
                .map(|(_, n)| n)
                .sum()
        })
    }

    pub fn stats(&self) -> SimulatorStats {
        self.with(|i| {
            let mut stats = SimulatorStats {
                in_flight: i.in_flight,
                max_in_flight: i.max_in_flight,
                ..SimulatorStats::default()
            };
            for (key, &n) in &i.counters {
                stats.total += n;
                *stats.by_status.entry(key.status).or_default() += n;
                *stats.by_api.entry(key.api.as_str().to_owned()).or_default() += n;
                if key.api == Api::Statistics
                    && let Some(p) = &key.project
                {
                    *stats.by_project.entry(p.clone()).or_default() += n;
                    if let Some(w) = &key.workspace {
                        *stats.by_workspace.entry(format!("{p}/{w}")).or_default() += n;
                    }
                }
                if let Some(ak) = &key.access_key_id {
                    *stats.by_access_key.entry(ak.clone()).or_default() += n;
                }
                stats.requests.push(RequestCount {
                    key: key.clone(),
                    count: n,
                });
            }
            stats
        })
    }

    /// Clears counters and faults; the setup (keys, projects, counts) stays.
    pub fn reset(&self) {
        self.with(|i| {
            i.counters.clear();
            i.recent.clear();
            i.faults.clear();
            i.max_in_flight = i.in_flight;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::fault::FaultKind;

    fn key(status: u16, project: &str) -> RequestKey {
        RequestKey {
            api: Api::Statistics,
            project: Some(project.to_owned()),
            workspace: Some("0".to_owned()),
            access_key_id: Some("AK".to_owned()),
            status,
            user_agent: Some("poolwatch/test (replica-1)".to_owned()),
        }
    }

    #[test]
    fn counted_faults_expire_after_their_uses() {
        let state = State::new(SimulatorSetup::demo());
        state.inject(Fault::status(500).times(2));
        for _ in 0..2 {
            assert!(
                state
                    .take_fault(Api::Statistics, None, None, None)
                    .is_some()
            );
        }
        assert!(
            state
                .take_fault(Api::Statistics, None, None, None)
                .is_none()
        );
        state.inject(Fault::new(FaultKind::Hang));
        for _ in 0..5 {
            assert!(state.take_fault(Api::Iam, None, None, None).is_some());
        }
        state.clear_faults();
        assert!(state.faults().is_empty());
    }

    #[test]
    fn counters_filter_and_summarise() {
        let state = State::new(SimulatorSetup::demo());
        state.record(key(200, "p"));
        state.record(key(200, "p"));
        state.record(key(429, "q"));
        assert_eq!(state.count(&RequestFilter::default()), 3);
        assert_eq!(state.count(&RequestFilter::default().with_status(429)), 1);
        assert_eq!(state.count(&RequestFilter::default().with_project("p")), 2);
        let stats = state.stats();
        assert_eq!(stats.total, 3);
        assert_eq!(stats.by_workspace.get("p/0"), Some(&2));
        state.reset();
        assert_eq!(state.stats().total, 0);
    }

    #[test]
    fn counter_rows_are_bounded() {
        let state = State::new(SimulatorSetup::default());
        for n in 0..(MAX_COUNTER_ROWS + 50) {
            state.record(RequestKey {
                access_key_id: Some(format!("AK{n}")),
                ..key(401, "p")
            });
        }
        let stats = state.stats();
        assert_eq!(stats.total, (MAX_COUNTER_ROWS + 50) as u64);
        assert!(stats.requests.len() <= MAX_COUNTER_ROWS + 1);
    }

    #[test]
    fn set_counts_creates_missing_projects() {
        let state = State::new(SimulatorSetup::default());
        state.set_counts("new", "w", SimulatedCounts::new(1, 2, 3, 4, 5));
        assert!(matches!(state.lookup("new", "w"), Lookup::Found(c) if c.failed == Some(3)));
        assert!(matches!(state.lookup("new", "x"), Lookup::NoWorkspace));
        assert!(matches!(state.lookup("old", "w"), Lookup::NoProject));
        assert!(state.remove_counts("new", "w"));
    }
}
