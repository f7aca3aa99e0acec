//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` package
//! does it (kube-rs 5 has no lease helper): every round reads the Lease; a replica takes it when
//! it does not exist, has no holder, or has not changed for its `leaseDurationSeconds` as
//! measured on this replica's own clock (the record's `renewTime` is never compared with local
//! time, so clock skew between nodes does not matter); the holder renews it every round. Every
//! write carries the `resourceVersion` it read, so of two replicas racing for the same Lease the
//! API server accepts one write and answers the other `409 Conflict`.
//!
//! The Lease also carries, in an annotation, the URL at which its holder serves its allocation
//! snapshot: followers find the leader's address where they find its identity, with no extra
//! RBAC and no lookup of its pod.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// What the election does to its Lease (`get`, `create` once, `update` to renew, take over and
/// release): the RBAC of `examples/k8s/01-rbac.yaml` grants exactly these (a test checks).
pub const VERBS: [&str; 3] = ["get", "create", "update"];

/// The annotation holding the holder's snapshot URL.
pub const SNAPSHOT_URL: &str = "target-allocator.opentelemetry.io/snapshot-url";

/// Who takes part in the election, and its timing.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (`holderIdentity` when it leads).
    pub identity: String,
    /// How long a Lease that stopped changing stays the holder's (whole seconds: the Lease
    /// stores seconds).
    pub lease_duration: Duration,
    /// Where this replica serves its snapshot while it leads.
    pub snapshot_url: String,
}

/// What one round saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// This replica holds the Lease (it created, took over or renewed it this round).
    Leader,
    /// Another replica holds the Lease (`url`: where it serves its snapshot, if it says).
    Follower { holder: String, url: Option<String> },
    /// Nobody holds a valid Lease, but this replica did not contend (see [`Elector::round`]).
    Vacant,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The last `resourceVersion` read, and when this replica first saw it.
    observed: Option<(String, Instant)>,
}

/// The Lease was changed by someone else between our read and our write.
fn lost_race(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

impl Elector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Elector {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// The Lease spec this replica writes: held by it, renewed now.
    fn spec(&self, acquire_time: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(self.settings.lease_duration.as_secs() as i32),
            acquire_time: Some(acquire_time.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(SNAPSHOT_URL.to_owned(), self.settings.snapshot_url.clone())])
    }

    /// One round: read the Lease, then create, take over or renew it when this replica may.
    /// `contend` false: observe only (a replica without the leader's snapshot lets one that has
    /// it take a vacant Lease first).
    pub async fn round(&mut self, contend: bool) -> Result<Round, kube::Error> {
        let name = self.settings.name.clone();
        let Some(lease) = self.api.get_opt(&name).await? else {
            if !contend {
                return Ok(Round::Vacant);
            }
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(self.settings.namespace.clone()),
                    annotations: Some(self.annotations()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(Round::Leader)
                }
                Err(e) if lost_race(&e) => Ok(Round::Vacant),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.settings.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .map_or(self.settings.lease_duration, |s| {
                Duration::from_secs(s as u64)
            });
        let unchanged_for = self
            .observed
            .as_ref()
            .map_or(Duration::ZERO, |o| o.1.elapsed());
        let valid = holder.is_some() && unchanged_for < duration;
        if !mine && valid {
            return Ok(Round::Follower {
                holder: holder.unwrap_or_default(),
                url: lease
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(SNAPSHOT_URL))
                    .cloned(),
            });
        }
        // Not contending, even for a Lease in our name: a restarted process with the same
        // identity has lost the state it led with, so it lets the Lease expire for a replica
        // that has it (or takes it later, contending, when there is none).
        if !contend {
            return Ok(Round::Vacant);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let spec = if mine {
            self.spec(spec.acquire_time.clone(), transitions)
        } else {
            self.spec(None, transitions.saturating_add(1))
        };
        let mut updated = lease.clone();
        updated.spec = Some(spec);
        updated
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(self.annotations());
        // `lease.metadata.resource_version` is kept: the server refuses the write if anyone
        // wrote since our read.
        match self
            .api
            .replace(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                self.observe(&written);
                Ok(Round::Leader)
            }
            Err(e) if lost_race(&e) => Ok(Round::Vacant),
            Err(e) => Err(e),
        }
    }

    /// Remember the Lease's version, restarting the expiry clock when it changed.
    fn observe(&mut self, lease: &Lease) {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|o| o.0 != rv) {
            self.observed = Some((rv, Instant::now()));
        }
    }

    /// How long the Lease has been seen unchanged (zero before the first read).
    pub fn unchanged_for(&self) -> Duration {
        self.observed
            .as_ref()
            .map_or(Duration::ZERO, |o| o.1.elapsed())
    }

    /// Give the Lease up (on shutdown, while holding it): no holder and a one-second duration,
    /// as client-go's `ReleaseOnCancel` writes it, so another replica takes it at its next
    /// round instead of waiting for the Lease to expire. Only if this replica still holds it.
    pub async fn release(&mut self) -> Result<bool, kube::Error> {
        let name = self.settings.name.clone();
        let Some(mut lease) = self.api.get_opt(&name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        if let Some(a) = lease.metadata.annotations.as_mut() {
            a.remove(SNAPSHOT_URL);
        }
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if lost_race(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
