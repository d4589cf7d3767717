//! The version chain strategy: one immutable object a version, `…/v/<version:020>.json`,
//! written with create-if-absent.
//!
//! **The first version's slot.** A chain's first version is stored in slot 1
//! (`…/v/00000000000000000001.json`) whatever its number, and every later version `k` at
//! slot `k`. The number of a first version is a floor drawn from time
//! ([`crate::clock::floor`]), so that a chain whose every object vanished and is created
//! again numbers above its earlier incarnation; but two nodes creating one chain at once
//! draw different floors, and only a shared key makes create-if-absent pick one winner. So
//! the first version is written where every creator writes it, slot 1, as chains from
//! earlier releases (numbered from 1) have it too: an old and a new node racing to create
//! a chain still collide. A slot `k ≥ 2` must hold version `k`; slot 1 holds any version.
//! Listings therefore order by version, not by slot: when slot 1 is listed beside others it
//! is read to place it ([`ordered`]). Normally its number is below theirs (it is the
//! oldest); it is above them only when versions of an earlier incarnation were written
//! after the chain vanished and was created again (a stale writer), and those are then
//! below it, as the floor intends.
//!
//! **Why a verify.** Create-if-absent makes each version number a single winner. But a
//! writer that stayed stale long enough for garbage collection to delete the version after
//! the one it read could re-create that number below newer versions. So after a create,
//! a writer that cannot rule that out lists the versions after its own: if there is a
//! newer one, it reads the next version; if that one names our write as its predecessor,
//! another writer built on ours and our transition stands, otherwise ours is an orphan below
//! the head: a conflict. Orphans are never the newest version, so readers never see them,
//! and collection removes them.
//!
//! # When no listing is needed
//!
//! Write `F = gc_min_age / 2` ("fresh"). A client *knows version n as the head at t* when,
//! at the local monotonic instant `t` taken just before a request, that request showed n
//! as the newest version: a listing with nothing above n, a GET of version n + 1 answered
//! 404 (while knowing n from less than F before), or its own create of n on a predecessor
//! known from less than F before. Then:
//!
//! 1. **The newest version never goes down.** Only collection deletes versions (release and
//!    every other transition write new versions; nothing on the safety path deletes), and a
//!    collector never deletes the newest [`ManifestOptions::gc_keep`] (≥ 1) of its own
//!    listing, which nobody can have deleted since (by induction). So every version ever
//!    stored above n was created after t: at t the newest was n.
//! 2. **No version above n appears without n + 1 first.** A writer of version k holds a
//!    snapshot of k − 1, which was stored at some point; by 1, for k − 1 > n that was after
//!    t. So if anything above n exists at a later instant, an incarnation of n + 1 was
//!    created after t.
//! 3. **That n + 1 cannot have been collected before t + F.** Collection deletes a version
//!    only when its `last_modified` is older than `min(collector's clock, newest last_modified
//!    in the collector's listing) − gc_min_age`. The second term is the store's own clock, so
//!    a collector whose clock runs ahead cannot delete early; what is left is the store's
//!    clock error between two of its timestamps (a step, drift, a timestamp taken when a
//!    request started rather than when it became visible, at most a request's length) and
//!    the rate error of this client's monotonic clock, and the timestamps' resolution (S3:
//!    whole seconds). The margin `gc_min_age − F`, 5 min at the default 10 min, covers
//!    these many times over; NTP keeps the clock errors under a second.
//!
//! Hence, within F of t: (a) a create of n + 1 that succeeds is the head, with nothing
//! above it, so the writer needs no verify listing (**one request a transition**; one GET
//! more for a write that starts something, see "When objects vanish"), and it
//! knows n + 1 as the head from just before its create; (b) a GET of n + 1 answered 404
//! proves nothing was written above n (**revalidation and reload are one GET**), and renews
//! the knowledge; (c) when n + 1 is there it is the one legitimate incarnation, and a
//! listing *after* it finds the head. Collection deletes oldest first and stops at the
//! first version too young to go, so the versions it leaves are a contiguous run up to the
//! head (orphans aside): a listing's newest is the head, and a version vanishing between a
//! listing and its read means a newer one exists.
//!
//! # When objects vanish
//!
//! The proof rests on 1: only collection deletes versions. A lifecycle rule, a restore or an
//! operator's `rm` breaks it: a writer whose knowledge is fresh keeps creating `n + 1`,
//! `n + 2`, … into empty slots while another node, finding the chain empty, creates it
//! again in slot 1 at a floor above `n` ([`crate::clock::floor`]). Cold readers, which list,
//! see the new incarnation (its numbers are higher); the stale writer would not, as long as
//! each 404 and each of its own creates renewed its knowledge. So knowledge derived without a
//! listing (a 404, a create on fresh knowledge) never claims an instant later than F after
//! the last listing it descends from (`Head::cap`): a writer lists at least once every 2F,
//! one listing per 5 min at the default, and from then on loses to the new incarnation.
//! Within that bound the stale writer's transitions land below the new head, and its numbers
//! (a fencing token) are below the new incarnation's, so a fenced resource refuses it.
//!
//! That bound suffices for writes that *continue* a claim the writer holds (a renewal, a
//! heartbeat, a release: [`super::Manifest::continue_claim`]): they hand out nothing new.
//! Every other write (an acquisition, a turn claim, a record or stream update) would hand
//! out a number or report a write that readers never see, so after its create in slot
//! `k ≥ 2` it reads slot 1 (one GET): a first version numbered above `k` there is a chain
//! created again above ours, and our write is a conflict (`created_again_above`). A chain
//! created again after that read lists first (a creator that knows the chain as empty from
//! before our create skips the listing, but then draws a floor above our number), so a
//! number handed out later is always the higher one.
//!
//! Knowledge older than F (a node that slept, a cold start) takes the listing paths, which
//! need no timing assumption. A node configured with a shorter `gc_min_age` than the rest of
//! the fleet weakens the bound for everyone: it is a fleet-wide setting.
//!
//! [`ManifestOptions::gc_keep`]: super::ManifestOptions::gc_keep

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::envelope::{decode_raw, RawBody, Seen};
use super::listing::Found;
use super::protocol::{Call, Draft, Header, Protocol, Wrote};
use super::{listed_number, RawManifest, Revalidated, Snapshot, Strategy};
use crate::clock::sub_saturating;
use crate::error::{Error, Result};
use crate::store::{keys, CreateOutcome, Key, Listed, Object, WriteId};

/// Objects larger than this are not kept in [`Heads`] (their knowledge still is, without the
/// bytes: revalidation and writes stay at the floor, a reload reads them again).
const CACHED_OBJECT_BYTES: usize = 64 << 10;
/// At most this many manifests are remembered; the stalest are forgotten first.
const CACHED_HEADS: usize = 4096;

/// The version chain strategy, with what this client knows of each chain's head. One per
/// [`super::Manifests`], shared by all its handles.
#[derive(Debug, Default)]
pub(super) struct VersionChain {
    heads: Heads,
}

impl Protocol for VersionChain {
    fn strategy(&self) -> Strategy {
        Strategy::VersionChain
    }

    fn load<'a>(&'a self, m: &'a RawManifest) -> Call<'a, Option<Snapshot<RawBody>>> {
        Box::pin(self.load(m))
    }

    fn write<'a>(&'a self, m: &'a RawManifest, next: Draft<'a>) -> Call<'a, Wrote> {
        Box::pin(self.write(m, next))
    }

    fn revalidate<'a>(
        &'a self,
        m: &'a RawManifest,
        known: Header<'a>,
    ) -> Call<'a, Revalidated<RawBody>> {
        Box::pin(self.revalidate(m, known))
    }

    fn collect<'a>(&'a self, m: &'a RawManifest, keep: usize, dry_run: bool) -> Call<'a, Vec<Key>> {
        Box::pin(self.collect(m, keep, dry_run))
    }

    fn keys_up_to<'a>(&'a self, m: &'a RawManifest, head: u64) -> Call<'a, Option<Vec<Key>>> {
        Box::pin(keys_up_to(m, head))
    }

    fn forget(&self, m: &RawManifest) {
        self.heads.forget(&m.base);
    }

    fn history<'a>(&'a self, m: &'a RawManifest) -> Call<'a, Vec<Snapshot<RawBody>>> {
        Box::pin(history(m))
    }

    fn read_listed<'a>(
        &'a self,
        m: &'a RawManifest,
        found: &'a Found,
        listed_at: Instant,
        first_at_most: Option<u64>,
    ) -> Call<'a, Option<Snapshot<RawBody>>> {
        Box::pin(self.read_listed(m, found, listed_at, first_at_most))
    }

    /// A GET of the version's own key (`None` once collected).
    fn version<'a>(
        &'a self,
        m: &'a RawManifest,
        version: u64,
    ) -> Call<'a, Option<Snapshot<RawBody>>> {
        Box::pin(async move {
            if let Some((s, _)) = read_version(m, version).await? {
                // Slot 1 holds a chain's first version whatever its number.
                return Ok(Some(s).filter(|s| s.version == version));
            }
            // The first version of a chain lives in slot 1 whatever its number.
            if version == FIRST_SLOT {
                return Ok(None);
            }
            Ok(read_version(m, FIRST_SLOT)
                .await?
                .map(|(s, _)| s)
                .filter(|s| s.version == version))
        })
    }
}

/// What this client last knew of each manifest's newest version, and when: the source of
/// the listing-free paths.
#[derive(Debug, Default)]
struct Heads(Mutex<HashMap<Key, Head>>, Mutex<HashMap<Key, Instant>>);

#[derive(Debug, Clone)]
struct Head {
    /// When it was known to be the newest (monotonic, before the request that showed it),
    /// at most `cap`.
    seen: Instant,
    /// The latest `seen` that knowledge derived without a listing may claim: F after the
    /// last listing it descends from (module docs, "When objects vanish").
    cap: Instant,
    /// 0: the manifest had no version.
    version: u64,
    write_id: String,
    /// The stored object, to serve a reload without reading it again.
    object: Option<Object>,
}

impl Heads {
    fn get(&self, base: &Key) -> Option<Head> {
        self.lock().get(base).cloned()
    }

    /// Remembers `head`, unless what is remembered was seen later (every entry is a true
    /// fact about its instant; the latest is the most useful, and never a lower version).
    fn put(&self, base: &Key, head: Head) {
        let mut map = self.lock();
        if map.get(base).is_some_and(|h| h.seen > head.seen) {
            return;
        }
        if map.len() >= CACHED_HEADS && !map.contains_key(base) {
            if let Some(stalest) = map
                .iter()
                .min_by_key(|(_, h)| h.seen)
                .map(|(k, _)| k.clone())
            {
                map.remove(&stalest);
            }
        }
        map.insert(base.clone(), head);
    }

    /// Renews the knowledge of `version`/`write_id` as the head at `seen`, keeping the
    /// cached object when it is the same version. `listed`: a listing showed it, and derived
    /// knowledge may claim up to this instant; `None`: derived knowledge (a 404), which
    /// claims no later than the cap it has.
    fn renew(
        &self,
        base: &Key,
        version: u64,
        write_id: &str,
        seen: Instant,
        listed: Option<Instant>,
    ) {
        let mut map = self.lock();
        if let Some(h) = map.get_mut(base) {
            if h.version == version && h.write_id == write_id {
                if let Some(cap) = listed {
                    h.cap = h.cap.max(cap);
                }
                h.seen = h.seen.max(seen.min(h.cap));
                return;
            }
        }
        drop(map);
        let cap = listed.unwrap_or(seen);
        self.put(
            base,
            Head {
                seen: seen.min(cap),
                cap,
                version,
                write_id: write_id.to_string(),
                object: None,
            },
        );
    }

    /// Whether collection may find something to delete in `base` at `now`: not before the
    /// oldest version its last pass kept for its age is old enough. Only saves listings;
    /// safety never depends on it.
    fn collection_due(&self, base: &Key, now: Instant) -> bool {
        let due = self.1.lock().unwrap_or_else(|e| e.into_inner());
        due.get(base).is_none_or(|&at| now >= at)
    }

    fn collect_after(&self, base: &Key, at: Instant) {
        let mut due = self.1.lock().unwrap_or_else(|e| e.into_inner());
        if due.len() >= CACHED_HEADS {
            due.clear();
        }
        due.insert(base.clone(), at);
    }

    fn forget(&self, base: &Key) {
        self.lock().remove(base);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Head>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long knowledge of a head is trusted without a listing: half of `gc_min_age`.
fn fresh_for(gc_min_age: Duration) -> Duration {
    crate::clock::divide(gc_min_age, 2)
}

fn now(m: &RawManifest) -> Instant {
    m.ctx.clock.monotonic()
}

fn is_fresh(m: &RawManifest, seen: Instant) -> bool {
    now(m).saturating_duration_since(seen) < fresh_for(m.ctx.options.gc_min_age)
}

/// The cap of knowledge rooted in a listing made at `listed` (see [`Head::cap`]).
fn cap_after(m: &RawManifest, listed: Instant) -> Instant {
    crate::clock::after(listed, fresh_for(m.ctx.options.gc_min_age))
}

/// The slot of a chain's first version, whatever its number (see the module docs).
const FIRST_SLOT: u64 = 1;

/// The key a version is written at: slot 1 for a chain's first version, else its number.
fn slot_key(m: &RawManifest, version: u64, first: bool) -> Key {
    keys::chain_version(&m.base, if first { FIRST_SLOT } else { version })
}

/// Slot numbers stored, ascending, from a listing of the chain folder (a slot is a version's
/// number, except slot 1: [`ordered`]). A key whose number is above `u64::MAX` is
/// [`Error::Corrupt`].
fn versions(listed: &[Listed]) -> Result<Vec<(u64, &Listed)>> {
    let mut v = Vec::with_capacity(listed.len());
    for l in listed {
        if let Some(n) = listed_number(&l.key)? {
            v.push((n, l));
        }
    }
    v.sort_by_key(|(n, _)| *n);
    Ok(v)
}

/// Versions stored, ascending by version, from a listing of the whole chain folder: slots
/// as numbered, except that slot 1, listed beside others, is read for its number (one GET,
/// only while a chain's first version is kept). Slot 1 listed alone stays numbered 1 here:
/// there is nothing to order it against, and whoever wants its number reads it. A slot 1
/// collected between the listing and the read had newer versions, so it is left out.
async fn ordered<'l>(m: &RawManifest, listed: &'l [Listed]) -> Result<Vec<(u64, &'l Listed)>> {
    let mut all = versions(listed)?;
    let has_first = all.first().is_some_and(|(slot, _)| *slot == FIRST_SLOT);
    if !has_first || all.len() < 2 {
        return Ok(all);
    }
    let first = read_version(m, FIRST_SLOT).await?.map(|(s, _)| s.version);
    all = all
        .into_iter()
        .filter_map(|(slot, l)| match (slot == FIRST_SLOT, first) {
            (false, _) => Some((slot, l)),
            (true, Some(version)) => Some((version, l)),
            (true, None) => None,
        })
        .collect();
    all.sort_by_key(|(n, _)| *n);
    Ok(all)
}

impl VersionChain {
    /// When this client last knew `s` as the head: its own mark, or a later one in [`Heads`].
    fn seen_of(&self, m: &RawManifest, s: Header<'_>) -> Option<Instant> {
        let cached = self
            .heads
            .get(&m.base)
            .filter(|h| h.version == s.version && h.write_id == s.write_id)
            .map(|h| h.seen);
        s.seen.0.max(cached)
    }

    /// Remembers `version`/`write_id` (stored as `object`) as the head at `seen`, claimed no
    /// later than `cap`: the mark to put on it.
    fn know(
        &self,
        m: &RawManifest,
        version: u64,
        write_id: &str,
        object: Option<Object>,
        seen: Instant,
        cap: Instant,
    ) -> Seen {
        let object = object.filter(|o| o.bytes.len() <= CACHED_OBJECT_BYTES);
        let seen = seen.min(cap);
        self.heads.put(
            &m.base,
            Head {
                seen,
                cap,
                version,
                write_id: write_id.to_string(),
                object,
            },
        );
        Seen(Some(seen))
    }

    async fn load(&self, m: &RawManifest) -> Result<Option<Snapshot<RawBody>>> {
        if let Some(h) = self.heads.get(&m.base).filter(|h| is_fresh(m, h.seen)) {
            if h.version == 0 {
                return self.successor(m, 0).await.map(|s| s.unwrap_or(None));
            }
            if let Some(obj) = &h.object {
                match self.successor(m, h.version).await? {
                    Some(newer) => return Ok(newer),
                    None => {
                        let mut s = decode_raw(m.kind, obj)?;
                        s.seen = Seen(self.heads.get(&m.base).map(|h| h.seen));
                        return Ok(Some(s));
                    }
                }
            }
        }
        self.load_listed(m).await
    }

    /// From knowledge of version `n` as the head less than F ago (0: no version): a GET of
    /// version n + 1. `None`: it is absent, so n is still the head (the knowledge is renewed).
    /// `Some(head)`: the manifest changed; here is its newest version.
    async fn successor(
        &self,
        m: &RawManifest,
        n: u64,
    ) -> Result<Option<Option<Snapshot<RawBody>>>> {
        // Nothing is ever written after u64::MAX.
        let Some(next) = n.checked_add(1) else {
            return Ok(None);
        };
        let seen = now(m);
        match read_version(m, next).await? {
            None => {
                if let Some(h) = self.heads.get(&m.base).filter(|h| h.version == n) {
                    self.heads
                        .renew(&m.base, h.version, &h.write_id, seen, None);
                }
                Ok(None)
            }
            Some((s, obj)) => self.newest_from(m, s, obj).await.map(Some),
        }
    }

    /// The head, given that `s` (read as `obj`) is stored and nothing above it is older than
    /// it: a listing of what comes after it, and a read of the newest there, if any.
    async fn newest_from(
        &self,
        m: &RawManifest,
        mut s: Snapshot<RawBody>,
        obj: Object,
    ) -> Result<Option<Snapshot<RawBody>>> {
        let folder = keys::chain_folder(&m.base);
        let seen = now(m);
        // After the version's number (for a first version in slot 1, after its floor: slots
        // between are an earlier incarnation's, below it).
        let after = keys::chain_version(&m.base, s.version);
        let newer = m.ctx.store.list_after(&folder, &after).await?;
        match versions(&newer)?.last() {
            None => {
                s.seen = self.know(
                    m,
                    s.version,
                    &s.write_id,
                    Some(obj),
                    seen,
                    cap_after(m, seen),
                );
                Ok(Some(s))
            }
            Some(&(head, _)) => match read_version(m, head).await? {
                Some((mut h, obj)) => {
                    h.seen = self.know(
                        m,
                        h.version,
                        &h.write_id,
                        Some(obj),
                        seen,
                        cap_after(m, seen),
                    );
                    Ok(Some(h))
                }
                None => self.load_listed(m).await,
            },
        }
    }

    /// The head a family listing made at `listed_at` showed (see `listing.rs`): its highest
    /// slot, or slot 1 when that holds a higher version (read only when it is listed beside
    /// higher slots and `first_at_most` does not already place it below them). What it
    /// reads is known as the head from `listed_at`, as after [`Self::load_listed`]'s listing.
    /// A head gone since the listing (collected: newer versions exist), or below a version
    /// this client already knows, is loaded the ordinary way.
    async fn read_listed(
        &self,
        m: &RawManifest,
        found: &Found,
        listed_at: Instant,
        first_at_most: Option<u64>,
    ) -> Result<Option<Snapshot<RawBody>>> {
        let Some(slot) = listed_number(&found.head.key)? else {
            return self.load(m).await;
        };
        let known = self.heads.get(&m.base).map(|h| h.version);
        let mut head = None;
        if found.first.is_some() && first_at_most.is_none_or(|v| v >= slot) {
            head = read_version(m, FIRST_SLOT)
                .await?
                .filter(|(s, _)| s.version > slot);
        }
        if head.is_none() {
            head = read_version(m, slot).await?;
        }
        match head {
            Some((mut s, obj)) if known.is_none_or(|k| k <= s.version) => {
                s.seen = self.know(
                    m,
                    s.version,
                    &s.write_id,
                    Some(obj),
                    listed_at,
                    cap_after(m, listed_at),
                );
                Ok(Some(s))
            }
            _ => self.load(m).await,
        }
    }

    /// The cold load: a listing of the whole chain and a read of its newest version.
    async fn load_listed(&self, m: &RawManifest) -> Result<Option<Snapshot<RawBody>>> {
        let folder = keys::chain_folder(&m.base);
        // The head can vanish between the listing and the read only if collection removed it,
        // which it does only to versions with newer ones: list again.
        for _ in 0..3 {
            let seen = now(m);
            let listed = m.ctx.store.list(&folder).await?;
            let Some(head) = ordered(m, &listed)
                .await?
                .last()
                .map(|(_, l)| listed_number(&l.key))
                .transpose()?
                .flatten()
            else {
                self.heads.put(
                    &m.base,
                    Head {
                        seen,
                        cap: cap_after(m, seen),
                        version: 0,
                        write_id: String::new(),
                        object: None,
                    },
                );
                return Ok(None);
            };
            if let Some((mut s, obj)) = read_version(m, head).await? {
                s.seen = self.know(
                    m,
                    s.version,
                    &s.write_id,
                    Some(obj),
                    seen,
                    cap_after(m, seen),
                );
                return Ok(Some(s));
            }
        }
        Err(Error::Unavailable {
            operation: "read",
            key: folder.to_string(),
            source: object_store::Error::Generic {
                store: "cairn",
                source: "the newest version kept disappearing between listing and reading".into(),
            },
        })
    }

    async fn write(&self, m: &RawManifest, next: Draft<'_>) -> Result<Wrote> {
        let key = slot_key(m, next.version, next.after.is_none());
        let bytes = next.bytes;
        let id = WriteId::new(next.write_id.to_string());
        // Is what we build on known as the head from less than F ago? Then a successful create
        // is the head (proof in the module docs) and needs no verify.
        let mut fresh = match next.after {
            Some(c) => self.seen_of(m, c).is_some_and(|s| is_fresh(m, s)),
            None => self
                .heads
                .get(&m.base)
                .is_some_and(|h| h.version == 0 && is_fresh(m, h.seen)),
        };
        if next.after.is_none() && !fresh {
            // A first version goes into slot 1, which collection may have emptied under a
            // living chain; a verify listing after the create could not tell our version
            // from a chain created again. So a first version is written only onto a chain
            // known to be empty: list first (a cold load), and if it is, the create is the
            // head, as on fresh knowledge (a chain created since has its slot 1, which no
            // collection can have removed within F).
            if let Some(head) = self.load_listed(m).await? {
                return Ok(Wrote::Conflict(Some(head)));
            }
            fresh = true;
        }
        let sent = now(m);
        // What our version's knowledge may claim, when it comes from the fresh path: no more
        // than what it is derived from.
        let cap = match next.after {
            Some(c) => self
                .heads
                .get(&m.base)
                .filter(|h| h.version == c.version && h.write_id == c.write_id)
                .map(|h| h.cap)
                .or(c.seen.0),
            None => self
                .heads
                .get(&m.base)
                .filter(|h| h.version == 0)
                .map(|h| h.cap),
        }
        .unwrap_or(sent);
        match m.ctx.store.create(&key, bytes.clone(), &id).await? {
            // The version that beat us may itself be far behind the head: a writer that walked
            // up one version per attempt would need as many attempts as it is behind. Load the
            // head instead.
            CreateOutcome::Exists { current, .. } => {
                if let Some(obj) = current {
                    // Still check its envelope: a corrupt object in our slot is reported, not
                    // skipped. (Its body is decoded if it is the version handed back.)
                    let theirs = decode_raw(m.kind, &obj)?;
                    // On fresh knowledge the winner's version is the one legitimate incarnation
                    // of our number: the head is it or above it, one listing away.
                    if fresh && theirs.version == next.version {
                        return Ok(Wrote::Conflict(self.newest_from(m, theirs, obj).await?));
                    }
                }
                return Ok(Wrote::Conflict(self.load(m).await?));
            }
            CreateOutcome::Created { .. } => {}
        }
        if next.after.is_some() && !next.continues {
            if let Some(head) = self.created_again_above(m, next.version).await? {
                warn!(key = %key, ours = next.version, head = head.version, "the chain was created again above our write (its objects were deleted under us); treating as a conflict");
                self.heads.forget(&m.base);
                return Ok(Wrote::Conflict(Some(head)));
            }
        }
        let ours = Object {
            key: key.clone(),
            bytes,
            etag: None,
            version: None,
            last_modified: m.ctx.clock.now(),
        };
        let seen = if fresh {
            self.know(m, next.version, next.write_id, Some(ours), sent, cap)
        } else {
            // Verify: is there a newer version, and was it built on ours?
            let listed_at = now(m);
            // After our number: for a first version in slot 1, what lies between is an earlier
            // incarnation's, below ours.
            let newer = m
                .ctx
                .store
                .list_after(
                    &keys::chain_folder(&m.base),
                    &keys::chain_version(&m.base, next.version),
                )
                .await?;
            match versions(&newer)?.first() {
                None => self.know(
                    m,
                    next.version,
                    next.write_id,
                    Some(ours),
                    listed_at,
                    cap_after(m, listed_at),
                ),
                Some(&(after, _)) => {
                    let successor = read_version(m, after).await?;
                    // `after` is above our version, so ours is below u64::MAX; checked all the
                    // same.
                    let built_on_ours = next.version.checked_add(1) == Some(after)
                        && successor.as_ref().is_some_and(|(s, _)| {
                            s.previous_write_id.as_deref() == Some(next.write_id)
                        });
                    if !built_on_ours {
                        warn!(key = %key, newer = after, "stale write landed below newer versions; treating as a conflict");
                        self.heads.forget(&m.base);
                        return Ok(Wrote::Conflict(self.load(m).await?));
                    }
                    debug!(key = %key, "our version was already built upon");
                    self.heads.forget(&m.base);
                    // Not the head: no mark.
                    Seen::default()
                }
            }
        };
        let every = m.ctx.options.gc_every.max(1);
        if next.version.checked_rem(every) == Some(0) && self.heads.collection_due(&m.base, now(m))
        {
            if let Err(e) = self.collect_garbage(m).await {
                debug!(key = %m.base, error = %e, "garbage collection failed; will try again later");
            }
        }
        Ok(Wrote::Written {
            etag: None,
            object_version: None,
            seen,
        })
    }

    /// After our create of `version` in its own slot (k ≥ 2): is slot 1 holding a first
    /// version numbered above ours? Then the chain vanished under us (a lifecycle rule, an
    /// operator's `rm`: not collection, which never removes the newest) and another node
    /// created it again at a higher floor, so our version is an orphan below the new head
    /// and must not stand: a write that hands out a number (a fencing token, a turn) would
    /// otherwise hand out one below a number already handed out. One GET. A chain created
    /// again *after* this read finds ours when it lists (a creator lists unless it knows the
    /// chain as empty since before our create, and then it numbers above us): the later
    /// number is still the higher. `Some(head)`: the new head, as a cold load finds it.
    async fn created_again_above(
        &self,
        m: &RawManifest,
        version: u64,
    ) -> Result<Option<Snapshot<RawBody>>> {
        let Some((first, _)) = read_version(m, FIRST_SLOT).await? else {
            return Ok(None);
        };
        if first.version <= version {
            return Ok(None);
        }
        self.heads.forget(&m.base);
        match self.load_listed(m).await? {
            Some(head) => Ok(Some(head)),
            // Vanished again meanwhile: report what we read.
            None => Ok(Some(first)),
        }
    }

    async fn revalidate(&self, m: &RawManifest, known: Header<'_>) -> Result<Revalidated<RawBody>> {
        if self.seen_of(m, known).is_some_and(|s| is_fresh(m, s)) {
            let shared = self.heads.get(&m.base);
            if !shared.is_some_and(|h| h.version == known.version && h.write_id == known.write_id) {
                // Carry the knowledge over to the shared record, so that the 404 renews it.
                if let Some(seen) = known.seen.0 {
                    self.heads
                        .renew(&m.base, known.version, known.write_id, seen, None);
                }
            }
            return Ok(match self.successor(m, known.version).await? {
                None => Revalidated::Unchanged,
                Some(Some(s)) => Revalidated::Changed(s),
                Some(None) => Revalidated::Missing,
            });
        }
        let folder = keys::chain_folder(&m.base);
        let after = keys::chain_version(&m.base, known.version);
        let listed_at = now(m);
        let newer = m.ctx.store.list_after(&folder, &after).await?;
        if versions(&newer)?.is_empty() {
            // Nothing above `known`: no version above it was ever stored (the newest never goes
            // down), so it is the head, never collected, and now known as such.
            self.heads.renew(
                &m.base,
                known.version,
                known.write_id,
                listed_at,
                Some(cap_after(m, listed_at)),
            );
            return Ok(Revalidated::Unchanged);
        }
        Ok(match self.load_listed(m).await? {
            Some(s) => Revalidated::Changed(s),
            None => Revalidated::Missing,
        })
    }

    /// Deletes old versions, oldest first: never the newest `gc_keep`, and, from the oldest up,
    /// only while a version's `last_modified` is older than `gc_min_age` before both this
    /// node's clock and the newest `last_modified` listed (the store's own clock, so a node
    /// whose clock runs ahead does not delete early). It stops at the first version too young,
    /// so what is left is a contiguous run up to the head.
    ///
    /// When it stops at a version too young, it notes when that version will be old enough
    /// (versions above it are younger still, orphans aside), and [`Self::write`] starts no pass
    /// before: a fast writer lists its chain about once per `gc_min_age`, not every
    /// `gc_every` versions.
    async fn collect_garbage(&self, m: &RawManifest) -> Result<usize> {
        Ok(self.collect(m, m.ctx.options.gc_keep, false).await?.len())
    }

    /// [`Self::collect_garbage`] keeping the newest `keep` (at least 1) versions: the keys deleted
    /// (or, with `dry_run`, the keys that would be), oldest first. The `gc_min_age` bound holds
    /// whatever `keep` is, so the proof above is untouched: the newest version is never
    /// deleted, and no version younger than `gc_min_age` is.
    async fn collect(&self, m: &RawManifest, keep: usize, dry_run: bool) -> Result<Vec<Key>> {
        let opts = &m.ctx.options;
        let started = now(m);
        let listed = m.ctx.store.list(&keys::chain_folder(&m.base)).await?;
        let all = ordered(m, &listed).await?;
        let keep = keep.max(1);
        let candidates = all.iter().take(all.len().saturating_sub(keep));
        let store_now = all
            .iter()
            .map(|(_, l)| l.last_modified)
            .max()
            .unwrap_or_default();
        let cutoff = sub_saturating(m.ctx.clock.now().min(store_now), opts.gc_min_age);
        let mut deleted = Vec::new();
        // Nothing kept for its age: the versions kept by count may be old, so the next pass is
        // due as soon as writes push them out of the newest `gc_keep`.
        let mut wait = Duration::ZERO;
        for (_, l) in candidates {
            if l.last_modified > cutoff {
                wait = l
                    .last_modified
                    .signed_duration_since(cutoff)
                    .to_std()
                    .unwrap_or(opts.gc_min_age);
                break;
            }
            if !dry_run {
                // One at a time, in order: a version is deleted only after every older one.
                m.ctx.store.delete(&l.key).await?;
            }
            deleted.push(l.key.clone());
        }
        if !dry_run {
            self.heads.collect_after(
                &m.base,
                crate::clock::after(started, wait.min(opts.gc_min_age)),
            );
        }
        debug!(key = %m.base, deleted = deleted.len(), dry_run, "collected old versions");
        Ok(deleted)
    }
}

/// The version stored in `slot`: version `slot`, or for slot 1 a chain's first version,
/// whatever its number.
async fn read_version(m: &RawManifest, slot: u64) -> Result<Option<(Snapshot<RawBody>, Object)>> {
    let version = slot;
    let key = keys::chain_version(&m.base, slot);
    let Some(obj) = m.ctx.store.read(&key).await? else {
        return Ok(None);
    };
    let s = decode_raw(m.kind, &obj)?;
    let first = slot == FIRST_SLOT && s.version >= 1 && s.previous_write_id.is_none();
    if s.version != version && !first {
        return Err(Error::Corrupt {
            key: key.to_string(),
            reason: format!(
                "holds version {} at the key of version {version}",
                s.version
            ),
        });
    }
    Ok(Some((s, obj)))
}

/// Every stored version's key up to and including `head` (oldest first), or `None` when
/// a version above `head` exists (the manifest moved on).
async fn keys_up_to(m: &RawManifest, head: u64) -> Result<Option<Vec<Key>>> {
    let listed = m.ctx.store.list(&keys::chain_folder(&m.base)).await?;
    let all = ordered(m, &listed).await?;
    if all.iter().any(|(n, _)| *n > head) {
        return Ok(None);
    }
    Ok(Some(all.into_iter().map(|(_, l)| l.key.clone()).collect()))
}

async fn history(m: &RawManifest) -> Result<Vec<Snapshot<RawBody>>> {
    let listed = m.ctx.store.list(&keys::chain_folder(&m.base)).await?;
    let mut out = Vec::new();
    for (_, l) in ordered(m, &listed).await? {
        let Some(slot) = listed_number(&l.key)? else {
            continue;
        };
        if let Some((s, _)) = read_version(m, slot).await? {
            out.push(s);
        }
    }
    Ok(out)
}
