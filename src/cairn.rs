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
use crate::store::protocol::{
    ProtocolRecord, ProtocolWatch, WatchOptions, PROTOCOL_FORMAT, SURVEY_PAGE,
};
use crate::store::{url, Key, Name, Store, StoreOptions, WriteId};

/// How the manifest strategy is chosen. Either way the prefix's protocol record
/// (`src/store/protocol.rs`) has the last word: the strategy is a property of the prefix,
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
    recreate: bool,
    watch: WatchOptions,
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

    /// The operator's repair of a prefix whose protocol record was deleted
    /// ([`Error::ProtocolRecordMissing`]): where there is no record, re-creates it instead
    /// of refusing. The strategy is the one configured ([`CairnBuilder::strategy`]), which
    /// the objects present must not contradict ([`Error::ProtocolContradicted`]); with
    /// [`StrategyChoice::Probe`], the one their key shapes show, or where none does, the
    /// probe's. The whole prefix is listed to see them (one LIST per thousand objects), and
    /// the store is probed as for a new prefix. Where a record exists, this changes nothing
    /// (a different configured strategy is still [`Error::ProtocolMismatch`]).
    ///
    /// Running nodes of the prefix keep coordinating across the repair when the record says
    /// what they obey (the same strategy and, on the version chain, the same `gc_min_age`:
    /// set [`ManifestOptions::gc_min_age`] to the prefix's); else they stop with
    /// [`Error::ProtocolChanged`].
    pub fn recreate_protocol(mut self) -> Self {
        self.recreate = true;
        self
    }

    /// When the handle revalidates the prefix's protocol record while it runs
    /// (`src/store/protocol.rs`).
    pub fn protocol_watch(mut self, options: WatchOptions) -> Self {
        self.watch = options;
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
    /// no record yet, looks at the prefix (one LIST): an empty one is new, and the store is
    /// probed and the record created first; one holding coordination objects lost its
    /// record, and the node refuses with [`Error::ProtocolRecordMissing`] (unless
    /// [`CairnBuilder::recreate_protocol`]).
    ///
    /// # Cancel safety
    ///
    /// Dropping it leaves at most the probe's scratch objects under `_probe/` and, on a new
    /// prefix, a protocol record that the next build reads as any node's.
    pub async fn build(self) -> Result<Cairn> {
        let age = self.manifest_options.gc_min_age;
        if !crate::store::protocol::GC_MIN_AGE_RANGE.contains(&age) {
            return Err(Error::Config(format!(
                "gc_min_age {age:?} is out of range: at most {} days",
                crate::store::protocol::GC_MIN_AGE_RANGE.end().as_secs() / 86_400
            )));
        }
        let store = Store::new(self.store, &self.prefix, self.store_options)?
            .with_clock(self.clock.clone());
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
        let mut missing = None;
        let mut found = store.read_protocol_tagged().await?;
        if found.is_none() && !self.recreate {
            // No record: has anything coordinated here? One LIST, on this path only.
            let survey = store.survey(Some(SURVEY_PAGE)).await?;
            if let Some(first) = survey.first.clone() {
                if self.observer {
                    // An observer decides nothing: it reads with what the objects show.
                    tracing::warn!(
                        found = %first,
                        "this prefix has no protocol record yet holds coordination objects"
                    );
                    let shown = survey.strategy(None).ok().flatten();
                    missing = Some((first, shown, survey.format()));
                } else {
                    // The first node may have recorded and coordinated since our GET.
                    found = store.read_protocol_tagged().await?;
                    if found.is_none() {
                        return Err(Error::ProtocolRecordMissing {
                            key: crate::store::keys::protocol().to_string(),
                            found: first.to_string(),
                        });
                    }
                }
            }
        }
        let (strategy, record, capabilities) = match found {
            Some((p, etag)) => (p.admit(configured)?, Some((p, etag)), None),
            // An observer never decides the protocol and never writes, not even the probe's
            // scratch object: with no record, nothing has coordinated here yet, or (when
            // objects were found) it reads with the strategy their key shapes show.
            None if self.observer => {
                let shown = missing.as_ref().and_then(|(_, s, _)| *s);
                (shown.or(configured).unwrap_or(self.unprobed), None, None)
            }
            None => {
                // A new prefix, or the operator's repair (`recreate_protocol`): then the
                // objects present must not contradict the strategy recorded.
                // So must its format: nodes that heartbeat under `members/` keep doing so.
                let (shown, format) = if self.recreate {
                    let survey = store.survey(None).await?;
                    (survey.strategy(configured)?, survey.format())
                } else {
                    (None, PROTOCOL_FORMAT)
                };
                let caps = store.probe_with(&mut rng).await?;
                let wanted = configured
                    .or(shown)
                    .unwrap_or_else(|| Strategy::for_capabilities(&caps));
                // Never record a protocol the store cannot run.
                refuse_unsupported(wanted, &caps, "this node is configured for")?;
                let id = WriteId::random(&mut rng);
                let mine =
                    ProtocolRecord::new(wanted, node.as_str(), self.clock.now(), Some(&caps), id)
                        .with_gc_min_age(self.manifest_options.gc_min_age)
                        .with_format(format);
                let (p, etag) = store.create_protocol_tagged(&mine).await?;
                let s = p.admit(configured)?;
                // Another node may have recorded first, from its own probe: this store must
                // run that protocol too.
                refuse_unsupported(s, &caps, "this prefix uses")?;
                (s, Some((p, etag)), Some(caps))
            }
        };
        let protocol = match record {
            Some((p, etag)) => {
                // The store's `If-Match` form, as the prefix's record says it: no search at
                // the first replace (see `store::protocol`).
                if let Some(form) = p.if_match_form {
                    store.adopt_if_match_form(form);
                }
                // Only a handle that coordinates watches the record it obeys.
                if !self.observer {
                    store.watch_protocol(ProtocolWatch::new(
                        p.clone(),
                        etag,
                        Arc::clone(&self.clock),
                        self.watch,
                    ));
                    // A record of an earlier build, found while this node probed (it lost
                    // the race to create one): this node completes it with the form found.
                    let probed = capabilities.as_ref().filter(|c| c.replace_if_match);
                    if let (None, Some(form)) =
                        (p.if_match_form, probed.and_then(|c| c.if_match_form))
                    {
                        let seed = WriteId::random(&mut rng);
                        store.complete_protocol(form, &seed).await;
                    }
                }
                Some(p)
            }
            None => None,
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
        // Where nodes heartbeat: the record's format says; an observer without a record reads
        // where the objects show them.
        let format = match (&protocol, &missing) {
            (Some(p), _) => p.format,
            (None, Some((_, _, format))) => *format,
            (None, None) => PROTOCOL_FORMAT,
        };
        let manifests = Manifests::new(store, node.to_string(), self.clock, rng, strategy, options)
            .with_format(format);
        Ok(Cairn {
            manifests: Arc::new(manifests),
            node,
            capabilities,
            protocol,
            missing: missing.map(|(k, _, _)| k),
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
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    protocol: Option<ProtocolRecord>,
    missing: Option<Key>,
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
            recreate: false,
            watch: WatchOptions::default(),
        }
    }

    /// Starts building a handle on the store a URL names (`s3://bucket/prefix`,
    /// `file:///path`, `memory://`). A `file://` directory that does not exist is
    /// [`Error::NoStore`] (nothing is created): [`Cairn::open_with`] with
    /// [`url::OpenOptions::create`] creates it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: opening reads the environment and, for `file://`, the directory; nothing is
    /// written.
    pub async fn open(store_url: &str) -> Result<CairnBuilder> {
        Ok(Self::opened(url::open(store_url).await?))
    }

    /// [`Cairn::open`] as `options` say (create a missing `file://` directory, the request
    /// timeout of an `s3://` store).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Cairn::open`]; with [`url::OpenOptions::create`] a dropped call may
    /// have created the `file://` directory.
    pub async fn open_with(store_url: &str, options: &url::OpenOptions) -> Result<CairnBuilder> {
        Ok(Self::opened(url::open_with(store_url, options).await?))
    }

    /// Starts building a handle on a store opened with [`url::open_with`]; requests name
    /// its endpoint in errors.
    pub fn opened(opened: url::Opened) -> CairnBuilder {
        let mut b = Self::builder(opened.store).prefix(opened.prefix);
        b.store_options.endpoint = opened.endpoint;
        // A local directory has no If-Match: its probe always picks the version chain.
        if opened.kind == url::StoreKind::LocalFilesystem {
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
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn protocol(&self) -> Option<&ProtocolRecord> {
        self.protocol.as_ref()
    }

    /// For an [observer](CairnBuilder::observer) on a prefix whose protocol record is
    /// missing although coordination objects are present: one of them (the record was
    /// deleted; see [`Error::ProtocolRecordMissing`]). The observer reads with the strategy
    /// their key shapes show.
    pub fn protocol_missing(&self) -> Option<&Key> {
        self.missing.as_ref()
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
    pub fn locks(&self, options: crate::lock::LockOptions) -> Result<crate::lock::Locks> {
        crate::lock::Locks::new(Arc::clone(&self.manifests), options)
    }

    /// The streams client.
    pub fn streams(&self) -> crate::stream::Streams {
        crate::stream::Streams::new(Arc::clone(&self.manifests))
    }

    /// The versioned records client.
    pub fn records(&self) -> crate::record::Records {
        crate::record::Records::new(Arc::clone(&self.manifests))
    }

    /// The fenced object `app/<name>/` ([`crate::fenced`]): the embedder's own small value,
    /// written only under a fencing token no lower than any that has written it. No request.
    pub fn fenced<T: Serialize + DeserializeOwned + Clone + Send + Sync>(
        &self,
        name: &Name,
    ) -> crate::fenced::Fenced<T> {
        crate::fenced::Fenced::new(&self.manifests, name)
    }

    /// The turns client, with these options.
    pub fn turns(&self, options: crate::turn::TurnOptions) -> crate::turn::Turns {
        crate::turn::Turns::new(Arc::clone(&self.manifests), options)
    }

    /// The membership client, with these options.
    pub fn nodes(&self, options: crate::node::NodeOptions) -> crate::node::Nodes {
        crate::node::Nodes::new(Arc::clone(&self.manifests), options)
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
