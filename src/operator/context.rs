//! What every reconcile shares: the clients, the credential readers, the upstream budget, the
//! shared calls, the watches' memories, the event recorder and the metrics.

use std::num::NonZeroU32;
use std::sync::Arc;

use kube::runtime::events::{Recorder, Reporter};
use tracing::debug;

use crate::modelarts::ModelArtsClient;

use super::background::PollWakers;
use super::fairness::NamespaceSlots;
use super::keyless::{KeylessCredentials, OperatorIdentitySettings};
use super::memory::{Memories, WatchKey};
use super::metrics::{Metrics, WatchLabels};
use super::poll::{PoolListCalls, ProjectCalls, StatisticsCalls};
use super::secrets::SecretReader;
use super::target::{CredentialSource, WatchTarget};
use super::trust::EndpointPolicy;
use super::upstream::{Budget, Limits};

/// Operator settings that reconciles read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Which endpoints specs may name: plain HTTP, trusted and allowed hosts.
    pub endpoints: EndpointPolicy,
    /// The upstream budget per endpoint and access key.
    pub limits: Limits,
    /// Polls in flight at once per namespace, credential exchanges included.
    pub namespace_concurrency: NonZeroU32,
    /// Who publishes the events (this replica).
    pub reporter: Reporter,
    /// The operator's own identity and the namespaces that may use it.
    pub operator_identity: OperatorIdentitySettings,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub(crate) client: kube::Client,
    pub(crate) modelarts: ModelArtsClient,
    pub(crate) secrets: SecretReader,
    pub(crate) keyless: KeylessCredentials,
    pub(crate) budget: Budget,
    pub(crate) statistics: StatisticsCalls,
    /// Pool lists, shared like the statistics.
    pub(crate) pool_lists: PoolListCalls,
    /// The one project-id cache: answers reused for an hour per IAM endpoint, region and key.
    pub(crate) projects: ProjectCalls,
    pub(crate) memories: Memories,
    /// Each namespace's share of the polls in flight.
    pub(crate) namespace_slots: NamespaceSlots,
    /// Wakes the controllers for watches whose parked polls finished.
    pub(crate) wakers: PollWakers,
    pub(crate) recorder: Recorder,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: Settings,
}

impl Context {
    /// A context for reconciles.
    pub fn new(
        client: kube::Client,
        modelarts: ModelArtsClient,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            secrets: SecretReader::new(client.clone()),
            keyless: KeylessCredentials::new(
                client.clone(),
                modelarts.clone(),
                settings.operator_identity.clone(),
            ),
            recorder: Recorder::new(client.clone(), settings.reporter.clone()),
            budget: Budget::new(settings.limits),
            client,
            modelarts,
            statistics: StatisticsCalls::default(),
            pool_lists: PoolListCalls::default(),
            projects: ProjectCalls::default(),
            memories: Memories::default(),
            namespace_slots: NamespaceSlots::new(settings.namespace_concurrency),
            wakers: PollWakers::default(),
            metrics,
            settings,
        }
    }

    /// The hosts that a watch of `target` calls, the operator's identity services included
    /// when it uses them, so that their request series stay while it does.
    pub fn hosts_of(&self, target: &WatchTarget) -> Vec<String> {
        let mut hosts = target.hosts();
        if target.credentials == CredentialSource::OperatorIdentity {
            let identity = &self.settings.operator_identity;
            match &identity.pod_identity {
                Some(pod_identity) => hosts.push(pod_identity.url.endpoint.authority()),
                None => hosts.push(identity.metadata_endpoint.authority()),
            }
        }
        hosts
    }

    /// Forgets a deleted watch: its memory and its metric series. The one way a watch is
    /// forgotten, whether its deletion was seen by a reconcile or by the periodic sweep.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key: WatchKey = (namespace.to_owned(), name.to_owned());
        debug!(%namespace, %name, "watch deleted: forgetting it");
        self.memories.remove(&key);
        self.keyless.set_user(&key, None);
        self.metrics.forget_watch(&WatchLabels {
            namespace: key.0,
            name: key.1,
        });
    }

    /// Forgets every remembered watch for which `exists(namespace, name)` is false: watches
    /// deleted since (a deletion triggers no reconcile).
    pub fn forget_deleted(&self, exists: impl Fn(&str, &str) -> bool) {
        self.namespace_slots.sweep();
        self.budget.sweep(tokio::time::Instant::now());
        for (namespace, name) in self.memories.keys() {
            if !exists(&namespace, &name) {
                self.forget(&namespace, &name);
            }
        }
    }
}
