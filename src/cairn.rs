//! The handle an application holds: a probed store, a node id, a clock, and a seeded random
//! source, from which every feature is reached.

use std::sync::Arc;

use object_store::ObjectStore;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestOptions, Manifests, Strategy};
use crate::store::probe::Capabilities;
use crate::store::protocol::ProtocolRecord;
use crate::store::{url, Key, Name, Store, StoreOptions, WriteId};

/// How the manifest strategy is chosen. Either way the prefix's protocol record
/// ([`crate::store::protocol`]) has the last word: the strategy is a property of the prefix,
/// fixed by the first node, never of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrategyChoice {
    /// Use the strategy the prefix's protocol record names; where there is no record yet,
    /// probe the store (etag CAS where `If-Match` works, else the version chain) and record
    /// the choice. Default.
    #[default]
    Probe,
    /// Require this strategy: refused with [`crate::Error::ProtocolMismatch`] when the
    /// prefix records another one; where there is no record yet, the store is probed and
    /// must support it (else [`crate::Error::StoreRefused`]), then it is recorded.
    Fixed(Strategy),
}

/// Builds a [`Cairn`].
#[derive(Debug)]
pub struct CairnBuilder {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    node: Option<Name>,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
    strategy: StrategyChoice,
    store_options: StoreOptions,
    manifest_options: ManifestOptions,
    observer: bool,
    /// The strategy an observer reads with on a prefix without a protocol record.
    unprobed: Strategy,
}

impl CairnBuilder {
    /// A handle that only looks (listing, showing, diagnosing): it never writes. It never
    /// creates the prefix's protocol record, so an observer can never decide the protocol
    /// for the fleet, and it never probes (the probe writes a scratch object). Where there
    /// is no record yet, nothing has coordinated through the prefix: the observer reads with
    /// the configured strategy, or with the one a probe picks on this kind of store (the
    /// version chain on a local directory, etag CAS elsewhere), and finds nothing.
    pub fn observer(mut self) -> Self {
        self.observer = true;
        self
    }

    /// Every key lives below this prefix of the store. Default: the store's root.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This node's id, written into every manifest. Default: the host name
    /// ([`default_node_id`]).
    pub fn node(mut self, node: impl Into<String>) -> Result<Self> {
        self.node = Some(Name::new(node)?);
        Ok(self)
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the random source (write ids, jitter), making runs reproducible.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How to choose the manifest strategy.
    pub fn strategy(mut self, choice: StrategyChoice) -> Self {
        self.strategy = choice;
        self
    }

    /// Store-layer tuning.
    pub fn store_options(mut self, options: StoreOptions) -> Self {
        self.store_options = options;
        self
    }

    /// Manifest-layer tuning.
    pub fn manifest_options(mut self, options: ManifestOptions) -> Self {
        self.manifest_options = options;
        self
    }

    /// Reads the prefix's protocol record (one GET) and returns the handle. Where there is
    /// no record yet, probes the store and creates it first.
    pub async fn build(self) -> Result<Cairn> {
        let age = self.manifest_options.gc_min_age;
        if !crate::store::protocol::GC_MIN_AGE_RANGE.contains(&age) {
            return Err(Error::Config(format!(
                "gc_min_age {age:?} is out of range: at most {} days",
                crate::store::protocol::GC_MIN_AGE_RANGE.end().as_secs() / 86_400
            )));
        }
        let store = Store::new(self.store, &self.prefix, self.store_options)?;
        let mut rng = match self.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let node = match self.node {
            Some(n) => n,
            None => default_node_id(),
        };
        let configured = match self.strategy {
            StrategyChoice::Fixed(s) => Some(s),
            StrategyChoice::Probe => None,
        };
        let (strategy, protocol, capabilities) = match store.read_protocol().await? {
            Some(p) => (p.admit(configured)?, Some(p), None),
            // An observer never decides the protocol and never writes, not even the probe's
            // scratch object: with no record, nothing has coordinated here yet.
            None if self.observer => (configured.unwrap_or(self.unprobed), None, None),
            None => {
                let caps = store.probe(&mut rng).await?;
                let wanted = configured.unwrap_or_else(|| Strategy::for_capabilities(&caps));
                // Never record a protocol the store cannot run.
                refuse_unsupported(wanted, &caps, "this node is configured for")?;
                let id = WriteId::random(&mut rng);
                let mine =
                    ProtocolRecord::new(wanted, node.as_str(), self.clock.now(), Some(&caps), id)
                        .with_gc_min_age(self.manifest_options.gc_min_age);
                let p = store.create_protocol(&mine).await?;
                let s = p.admit(configured)?;
                // Another node may have recorded first, from its own probe: this store must
                // run that protocol too.
                refuse_unsupported(s, &caps, "this prefix uses")?;
                (s, Some(p), Some(caps))
            }
        };
        let mut options = self.manifest_options;
        // The chain's collection age is the prefix's: every node collects and trusts its
        // knowledge of a head by the recorded one (see `manifest::chain`).
        if let Some(recorded) = protocol
            .as_ref()
            .map(ProtocolRecord::gc_min_age)
            .transpose()?
        {
            options.gc_min_age = recorded.unwrap_or(options.gc_min_age);
        }
        let manifests = Manifests::new(store, node.to_string(), self.clock, rng, strategy, options);
        Ok(Cairn {
            manifests: Arc::new(manifests),
            node,
            capabilities,
            protocol,
        })
    }
}

/// [`Error::StoreRefused`] unless a store with `caps` can run `strategy`.
fn refuse_unsupported(strategy: Strategy, caps: &Capabilities, why: &str) -> Result<()> {
    if strategy.supported_by(caps) {
        return Ok(());
    }
    let failed: Vec<String> = caps
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    Err(Error::StoreRefused {
        check: "protocol record",
        detail: format!(
            "{why} {strategy} but this store does not support it ({})",
            failed.join("; ")
        ),
    })
}

/// A node's connection to the shared bucket.
#[derive(Debug, Clone)]
pub struct Cairn {
    manifests: Arc<Manifests>,
    node: Name,
    capabilities: Option<Capabilities>,
    protocol: Option<ProtocolRecord>,
}

impl Cairn {
    /// Starts building a handle on an object store the application already holds.
    pub fn builder(store: Arc<dyn ObjectStore>) -> CairnBuilder {
        CairnBuilder {
            store,
            prefix: String::new(),
            node: None,
            clock: Arc::new(SystemClock),
            seed: None,
            strategy: StrategyChoice::Probe,
            store_options: StoreOptions::default(),
            manifest_options: ManifestOptions::default(),
            observer: false,
            unprobed: Strategy::EtagCas,
        }
    }

    /// Starts building a handle on the store a URL names (`s3://bucket/prefix`,
    /// `file:///path`, `memory://`).
    pub async fn open(store_url: &str) -> Result<CairnBuilder> {
        Ok(Self::opened(url::open(store_url).await?))
    }

    /// Starts building a handle on a store opened with [`url::open_with`]; requests name
    /// its endpoint in errors.
    pub fn opened(opened: url::Opened) -> CairnBuilder {
        let mut b = Self::builder(opened.store).prefix(opened.prefix);
        b.store_options.endpoint = opened.endpoint;
        // A local directory has no If-Match: its probe always picks the version chain.
        if opened.kind == "local filesystem" {
            b.unprobed = Strategy::VersionChain;
        }
        b
    }

    /// This node's id.
    pub fn node(&self) -> &Name {
        &self.node
    }

    /// The manifest strategy in force.
    pub fn strategy(&self) -> Strategy {
        self.manifests.strategy()
    }

    /// What this handle's probe found (`None` when the prefix's protocol record already
    /// existed, so no probe was needed).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The prefix's protocol record this handle obeys (`None` only for an
    /// [observer](CairnBuilder::observer) on a prefix that has none yet).
    pub fn protocol(&self) -> Option<&ProtocolRecord> {
        self.protocol.as_ref()
    }

    /// The manifest layer, for features built on it.
    pub fn manifests(&self) -> &Arc<Manifests> {
        &self.manifests
    }

    /// The store layer.
    pub fn store(&self) -> &Store {
        self.manifests.store()
    }

    /// The lock client, with these lease options.
    pub fn locks(&self, options: crate::lease::LeaseOptions) -> Result<crate::lease::Locks> {
        crate::lease::Locks::new(Arc::clone(&self.manifests), options)
    }

    /// The streams client.
    pub fn streams(&self) -> crate::stream::Streams {
        crate::stream::Streams::new(Arc::clone(&self.manifests))
    }

    /// The versioned records client.
    pub fn records(&self) -> crate::record::Records {
        crate::record::Records::new(Arc::clone(&self.manifests))
    }

    /// The turns client, with these options.
    pub fn turns(&self, options: crate::turn::TurnOptions) -> crate::turn::Turns {
        crate::turn::Turns::new(Arc::clone(&self.manifests), options)
    }

    /// The membership client, with these options.
    pub fn membership(&self, options: crate::member::MemberOptions) -> crate::member::Membership {
        crate::member::Membership::new(Arc::clone(&self.manifests), options)
    }

    /// The event log client.
    pub fn event_log(&self) -> crate::log::EventLog {
        crate::log::EventLog::new(Arc::clone(&self.manifests))
    }

    /// A handle on the manifest of `kind` at `base`.
    pub fn manifest<T: Serialize + DeserializeOwned + Clone + Send + Sync>(
        &self,
        kind: &'static str,
        base: Key,
    ) -> Manifest<T> {
        self.manifests.open(kind, base)
    }
}

/// This host's name, reduced to the characters a name allows (`node` when it has none):
/// the same across restarts, so a restarted process is recognised as the same node. Several
/// processes on one host that coordinate with each other need ids of their own
/// ([`node_id_with_pid`], or an explicit id).
pub fn default_node_id() -> Name {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    Name::new(clean).unwrap_or_else(|_| fallback_node())
}

/// `<node>-<pid>`: a node id of this process's own, for several processes on one host.
pub fn node_id_with_pid(node: &Name) -> Result<Name> {
    Name::new(format!("{node}-{}", std::process::id()))
}

// A literal that passes every rule of `Name::new`: this cannot fail on any input.
#[allow(clippy::expect_used)]
fn fallback_node() -> Name {
    Name::new("node").expect("literal name is valid")
}
