//! Comparable sort keys: one per sort clause per hit, and the keys of the ordered per-field indexes.

use std::cmp::Ordering;
use std::sync::Arc;

use super::mapping::FieldVal;

/// A value a document sorts by. Integers of every width (long, date millis, date_nanos,
/// unsigned_long, boolean, `_seq_no`) share `Int`; `Str(None)` is a missing string.
#[derive(Debug, Clone)]
pub enum SortKey {
    Int(i128),
    Float(f64),
    Str(Option<Arc<str>>),
}

impl SortKey {
    pub fn from_val(v: &FieldVal) -> SortKey {
        match v {
            FieldVal::Str(s) => SortKey::Str(Some(s.clone())),
            FieldVal::Int(i) => SortKey::Int(*i as i128),
            FieldVal::UInt(u) => SortKey::Int(*u as i128),
            FieldVal::Float(f) => SortKey::Float(*f),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Int(_) | SortKey::Float(_) => 0,
            SortKey::Str(_) => 1,
        }
    }
}

impl PartialEq for SortKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortKey::Int(a), SortKey::Int(b)) => a.cmp(b),
            (SortKey::Float(a), SortKey::Float(b)) => a.total_cmp(b),
            (SortKey::Int(a), SortKey::Float(b)) => (*a as f64).total_cmp(b),
            (SortKey::Float(a), SortKey::Int(b)) => a.total_cmp(&(*b as f64)),
            (SortKey::Str(a), SortKey::Str(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_numbers_compare_by_value() {
        assert!(SortKey::Int(2) > SortKey::Float(1.5));
        assert!(SortKey::Float(184.375) == SortKey::Float(184.375));
        assert!(SortKey::Int(u64::MAX as i128) > SortKey::Int(i64::MAX as i128));
        assert!(SortKey::Str(None) < SortKey::Str(Some(Arc::from("a"))));
    }
}
