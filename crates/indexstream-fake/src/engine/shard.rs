//! One primary shard: the write side (versions, sequence numbers, checkpoints, in-flight and
//! not-yet-refreshed operations) and the search side (what the last refresh made visible).
//!
//! The two sides are what makes the fake worth testing against: a write is assigned a
//! `_seq_no` at once and is readable by a realtime GET, but `_search` and `_count` only see it
//! after this shard's next refresh. A write can also be held "in flight" (a visibility fault):
//! it then holds the local checkpoint back until it completes, as a slow concurrent write does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use std::time::Duration;

use tokio::time::Instant;

// The Fx hash for the id maps: the fake serves loopback tests and benchmarks (no hash
// flooding to fear), and SipHash showed up in profiles of bulk indexing.
use super::mapping::{FieldId, FieldVal};
use super::sortkey::SortKey;
use rustc_hash::FxHashMap;

/// A document version as stored in the index.
#[derive(Debug)]
pub struct StoredDoc {
    pub id: Arc<str>,
    pub routing: Option<Arc<str>>,
    pub seq_no: u64,
    pub primary_term: u64,
    pub version: u64,
    /// The `_source` exactly as it was sent.
    pub source: Arc<str>,
    pub fields: Box<[(FieldId, FieldVal)]>,
}

impl StoredDoc {
    pub fn values(&self, field: FieldId) -> impl Iterator<Item = &FieldVal> {
        self.fields
            .iter()
            .filter(move |(f, _)| *f == field)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Index(Arc<StoredDoc>),
    Delete { id: Arc<str>, seq_no: u64 },
}

impl Op {
    pub fn seq_no(&self) -> u64 {
        match self {
            Op::Index(d) => d.seq_no,
            Op::Delete { seq_no, .. } => *seq_no,
        }
    }

    fn id(&self) -> &Arc<str> {
        match self {
            Op::Index(d) => &d.id,
            Op::Delete { id, .. } => id,
        }
    }
}

/// The latest version of an id on the write side (a tombstone when `doc` is `None`).
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub seq_no: u64,
    pub primary_term: u64,
    pub version: u64,
    pub doc: Option<Arc<StoredDoc>>,
}

/// Position of a document in the shard's search side, in index order (like a Lucene doc id).
pub type DocId = u32;

/// Refresh generation: a search reads the documents visible at one generation.
pub type Gen = u64;

#[derive(Debug)]
struct Slot {
    doc: Arc<StoredDoc>,
    from_gen: Gen,
    until_gen: Gen,
}

/// An ordered index of one field's values, built the first time a search sorts on the field.
#[derive(Debug, Default)]
pub struct FieldIndex {
    pub entries: BTreeSet<(SortKey, DocId)>,
    /// Documents (live or awaiting collection) with more than one value or none: while any
    /// exist the index cannot drive a sorted scan on its own.
    pub irregular: usize,
}

#[derive(Debug)]
pub struct Shard {
    pub num: u32,
    pub primary_term: u64,
    versions: FxHashMap<Arc<str>, VersionEntry>,
    next_seq_no: u64,
    local_checkpoint: i64,
    completed_above: BTreeSet<u64>,
    in_flight: Vec<(Instant, Op)>,
    pending: Vec<Op>,
    pub refresh_total: u64,
    pub external_refresh_total: u64,
    /// Updates that changed nothing (`indexing.noop_update_total`).
    pub noop_updates: u64,
    pub next_refresh_at: Option<Instant>,
    /// When a search last read this shard (for search-idle: see [`Shard::searched`]).
    pub last_searched: Instant,
    /// `?refresh=wait_for` writes waiting for this shard's next refresh: a search-idle shard
    /// still refreshes on schedule for them, as OpenSearch's refresh listeners make it.
    pub refresh_listeners: usize,
    pub gen: Gen,
    slots: Vec<Option<Slot>>,
    applied: FxHashMap<Arc<str>, (u64, Option<DocId>)>,
    seq_index: BTreeMap<u64, DocId>,
    field_indexes: HashMap<FieldId, FieldIndex>,
    live_count: usize,
    graveyard: Vec<DocId>,
    held_gens: BTreeMap<Gen, usize>,
    pub commit_id: String,
}

impl Shard {
    pub fn new(num: u32, commit_id: String) -> Self {
        Shard {
            num,
            primary_term: 1,
            versions: FxHashMap::default(),
            next_seq_no: 0,
            local_checkpoint: -1,
            completed_above: BTreeSet::new(),
            in_flight: Vec::new(),
            pending: Vec::new(),
            refresh_total: 0,
            external_refresh_total: 0,
            noop_updates: 0,
            next_refresh_at: None,
            last_searched: Instant::now(),
            refresh_listeners: 0,
            gen: 0,
            slots: Vec::new(),
            applied: FxHashMap::default(),
            seq_index: BTreeMap::new(),
            field_indexes: HashMap::new(),
            live_count: 0,
            graveyard: Vec::new(),
            held_gens: BTreeMap::new(),
            commit_id,
        }
    }

    // ---- write side ----

    pub fn version_of(&self, id: &str) -> Option<&VersionEntry> {
        self.versions.get(id)
    }

    pub fn next_seq_no(&mut self) -> u64 {
        let s = self.next_seq_no;
        self.next_seq_no += 1;
        s
    }

    pub fn max_seq_no(&self) -> i64 {
        self.next_seq_no as i64 - 1
    }

    pub fn local_checkpoint(&self) -> i64 {
        self.local_checkpoint
    }

    /// With one copy per shard (a single-node cluster) the global checkpoint is the primary's
    /// local checkpoint.
    pub fn global_checkpoint(&self) -> i64 {
        self.local_checkpoint
    }

    /// Records an operation that has been assigned `seq_no`: it completes now, or at `held_until`
    /// when a visibility fault holds it in flight.
    pub fn record(
        &mut self,
        id: Arc<str>,
        entry: VersionEntry,
        op: Op,
        held_until: Option<Instant>,
    ) {
        self.versions.insert(id, entry);
        match held_until {
            Some(at) => self.in_flight.push((at, op)),
            None => self.complete(op),
        }
    }

    fn complete(&mut self, op: Op) {
        let seq = op.seq_no();
        self.pending.push(op);
        if seq as i64 == self.local_checkpoint + 1 {
            self.local_checkpoint += 1;
            while self
                .completed_above
                .remove(&((self.local_checkpoint + 1) as u64))
            {
                self.local_checkpoint += 1;
            }
        } else {
            self.completed_above.insert(seq);
        }
    }

    /// Completes in-flight operations whose hold has passed. Returns whether any did.
    pub fn release_due(&mut self, now: Instant) -> bool {
        if self.in_flight.is_empty() {
            return false;
        }
        let (due, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.in_flight = held;
        let any = !due.is_empty();
        for (_, op) in due {
            self.complete(op);
        }
        any
    }

    /// Whether the operation with `seq_no` is visible to search.
    pub fn is_searchable(&self, seq_no: u64) -> bool {
        !self.pending.iter().any(|op| op.seq_no() == seq_no)
            && !self.in_flight.iter().any(|(_, op)| op.seq_no() == seq_no)
    }

    pub fn has_unrefreshed(&self, id: &str) -> bool {
        self.pending.iter().any(|op| &**op.id() == id)
    }

    /// The refresh a realtime GET triggers when it reads a document not yet refreshed: it
    /// counts in `refresh.total` but not `external_total`, and makes nothing searchable.
    pub fn internal_refresh(&mut self) {
        self.refresh_total += 1;
    }

    // ---- search side ----

    /// Whether a refresh would make something new searchable (OpenSearch's `refreshNeeded`).
    pub fn refresh_needed(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A scheduled refresh, as OpenSearch runs one every `refresh_interval`: only when
    /// something changed since the last refresh (the refresh counters stand still otherwise),
    /// and not while the shard is search-idle (no search for `index.search.idle.after`, on an
    /// index without an explicit `refresh_interval`): such a shard refreshes when next searched.
    /// Returns whether it refreshed.
    pub fn scheduled_refresh(&mut self, now: Instant, idle_after: Option<Duration>) -> bool {
        if !self.refresh_needed() {
            return false;
        }
        let idle = idle_after.is_some_and(|after| now.duration_since(self.last_searched) >= after);
        if idle && self.refresh_listeners == 0 {
            return false;
        }
        self.refresh();
        true
    }

    /// A search reads this shard: a search-idle shard with changes refreshes first (OpenSearch
    /// makes the search wait for that refresh), and the shard is active again. Returns whether
    /// it refreshed.
    pub fn searched(&mut self, now: Instant, idle_after: Option<Duration>) -> bool {
        let idle = idle_after.is_some_and(|after| now.duration_since(self.last_searched) >= after);
        self.last_searched = now;
        if idle && self.refresh_needed() {
            self.refresh();
            return true;
        }
        false
    }

    /// A refresh: everything completed so far becomes searchable in a new generation.
    pub fn refresh(&mut self) {
        self.refresh_total += 1;
        self.external_refresh_total += 1;
        let ops = std::mem::take(&mut self.pending);
        if ops.is_empty() {
            return;
        }
        self.gen += 1;
        let gen = self.gen;
        for op in ops {
            let id = op.id().clone();
            let seq = op.seq_no();
            let previous = match self.applied.get(&id) {
                Some((applied_seq, _)) if *applied_seq > seq => continue,
                Some((_, prev)) => *prev,
                None => None,
            };
            if let Some(old) = previous {
                if let Some(slot) = self.slots[old as usize].as_mut() {
                    slot.until_gen = gen;
                    self.live_count -= 1;
                    self.graveyard.push(old);
                }
            }
            match op {
                Op::Index(doc) => {
                    let doc_id = self.slots.len() as DocId;
                    for (field, index) in self.field_indexes.iter_mut() {
                        add_to_index(index, *field, &doc, doc_id);
                    }
                    self.seq_index.insert(doc.seq_no, doc_id);
                    self.slots.push(Some(Slot {
                        doc,
                        from_gen: gen,
                        until_gen: Gen::MAX,
                    }));
                    self.applied.insert(id, (seq, Some(doc_id)));
                    self.live_count += 1;
                }
                Op::Delete { .. } => {
                    self.applied.insert(id, (seq, None));
                }
            }
        }
        self.collect_garbage();
    }

    fn collect_garbage(&mut self) {
        let oldest_held = self.held_gens.keys().next().copied();
        let graveyard = std::mem::take(&mut self.graveyard);
        for doc_id in graveyard {
            let Some(slot) = self.slots[doc_id as usize].as_ref() else {
                continue;
            };
            if oldest_held.is_some_and(|held| held < slot.until_gen) {
                self.graveyard.push(doc_id);
                continue;
            }
            let doc = slot.doc.clone();
            self.seq_index.remove(&doc.seq_no);
            for (field, index) in self.field_indexes.iter_mut() {
                remove_from_index(index, *field, &doc, doc_id);
            }
            self.slots[doc_id as usize] = None;
        }
    }

    /// Keeps generation `gen` readable (a point in time or a scroll) until `release`.
    pub fn hold(&mut self, gen: Gen) {
        *self.held_gens.entry(gen).or_default() += 1;
    }

    pub fn release(&mut self, gen: Gen) {
        if let Some(n) = self.held_gens.get_mut(&gen) {
            *n -= 1;
            if *n == 0 {
                self.held_gens.remove(&gen);
            }
        }
        self.collect_garbage();
    }

    pub fn live_count(&self) -> usize {
        self.live_count
    }

    pub fn doc_at(&self, doc_id: DocId, gen: Gen) -> Option<&Arc<StoredDoc>> {
        match self.slots.get(doc_id as usize) {
            Some(Some(slot)) if slot.from_gen <= gen && gen < slot.until_gen => Some(&slot.doc),
            _ => None,
        }
    }

    /// The searchable version of `id` at `gen` (a non-realtime GET).
    pub fn searchable_doc(&self, id: &str, gen: Gen) -> Option<&Arc<StoredDoc>> {
        match self.applied.get(id) {
            Some((_, Some(doc_id))) => self.doc_at(*doc_id, gen),
            _ => None,
        }
    }

    pub fn doc_ids(&self) -> std::ops::Range<DocId> {
        0..self.slots.len() as DocId
    }

    pub fn seq_range(
        &self,
        lo: Bound<u64>,
        hi: Bound<u64>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = (u64, DocId)> + '_> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (lo, hi)
        {
            if a > b
                || (a == b
                    && (matches!(lo, Bound::Excluded(_)) || matches!(hi, Bound::Excluded(_))))
            {
                return Box::new(std::iter::empty());
            }
        }
        let range = self.seq_index.range((lo, hi)).map(|(s, d)| (*s, *d));
        if descending {
            Box::new(range.rev())
        } else {
            Box::new(range)
        }
    }

    /// The ordered index of `field`, built on first use and kept up to date by every refresh.
    pub fn field_index(&mut self, field: FieldId) -> &FieldIndex {
        if !self.field_indexes.contains_key(&field) {
            let mut index = FieldIndex::default();
            for (doc_id, slot) in self.slots.iter().enumerate() {
                if let Some(slot) = slot {
                    add_to_index(&mut index, field, &slot.doc, doc_id as DocId);
                }
            }
            self.field_indexes.insert(field, index);
        }
        &self.field_indexes[&field]
    }

    pub fn existing_field_index(&self, field: FieldId) -> Option<&FieldIndex> {
        self.field_indexes.get(&field)
    }

    pub fn doc_count_at(&self, gen: Gen) -> usize {
        if gen == self.gen {
            return self.live_count;
        }
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.from_gen <= gen && gen < s.until_gen)
            .count()
    }

    pub fn deleted_docs(&self) -> usize {
        self.graveyard.len()
    }
}

fn add_to_index(index: &mut FieldIndex, field: FieldId, doc: &StoredDoc, doc_id: DocId) {
    let mut values = doc.values(field);
    match (values.next(), values.next()) {
        (Some(v), None) => {
            index.entries.insert((SortKey::from_val(v), doc_id));
        }
        _ => index.irregular += 1,
    }
}

fn remove_from_index(index: &mut FieldIndex, field: FieldId, doc: &StoredDoc, doc_id: DocId) {
    let mut values = doc.values(field);
    match (values.next(), values.next()) {
        (Some(v), None) => {
            index.entries.remove(&(SortKey::from_val(v), doc_id));
        }
        _ => index.irregular -= 1,
    }
}
