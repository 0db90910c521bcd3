//! A set of sequence numbers stored as disjoint ranges: what the exact-mode reader has already
//! delivered above its safe point. Reads are mostly contiguous, so a catch-up of a million
//! documents is a handful of ranges, not a million entries.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet {
    /// start -> end, both inclusive, disjoint and not adjacent.
    ranges: BTreeMap<i64, i64>,
    /// How many values the set holds.
    len: u64,
}

impl IntervalSet {
    pub fn contains(&self, x: i64) -> bool {
        self.ranges
            .range(..=x)
            .next_back()
            .is_some_and(|(_, end)| *end >= x)
    }

    pub fn insert(&mut self, x: i64) {
        if self.contains(x) {
            return;
        }
        self.len += 1;
        let before = self.ranges.range(..x).next_back().map(|(s, e)| (*s, *e));
        let after = self.ranges.get(&(x + 1)).copied();
        match (before, after) {
            (Some((s, e)), Some(e2)) if e == x - 1 => {
                self.ranges.remove(&(x + 1));
                self.ranges.insert(s, e2);
            }
            (Some((s, e)), _) if e == x - 1 => {
                self.ranges.insert(s, x);
            }
            (_, Some(e2)) => {
                self.ranges.remove(&(x + 1));
                self.ranges.insert(x, e2);
            }
            _ => {
                self.ranges.insert(x, x);
            }
        }
    }

    /// Forgets every value at or below `x`.
    pub fn remove_through(&mut self, x: i64) {
        let keys: Vec<i64> = self.ranges.range(..=x).map(|(s, _)| *s).collect();
        for s in keys {
            if let Some(e) = self.ranges.remove(&s) {
                if e > x {
                    self.ranges.insert(x + 1, e);
                    self.len -= (x + 1 - s) as u64;
                } else {
                    self.len -= (e - s + 1) as u64;
                }
            }
        }
    }

    /// The ranges in `(lo, hi]` not in the set, as inclusive `(start, end)` pairs.
    pub fn gaps(&self, lo: i64, hi: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut next = lo + 1;
        if let Some((_, e)) = self.ranges.range(..next).next_back() {
            if *e >= next {
                next = *e + 1;
            }
        }
        if next > hi {
            return out;
        }
        for (s, e) in self.ranges.range(next..=hi) {
            if *s > next {
                out.push((next, *s - 1));
            }
            next = next.max(*e + 1);
        }
        if next <= hi {
            out.push((next, hi));
        }
        out
    }

    /// Adds every value of `[start, end]`.
    pub fn insert_range(&mut self, start: i64, end: i64) {
        if start > end {
            return;
        }
        // Absorb every range touching [start - 1, end + 1].
        let (mut lo, mut hi) = (start, end);
        let touching: Vec<(i64, i64)> = self
            .ranges
            .range(..=end.saturating_add(1))
            .rev()
            .take_while(|(_, e)| **e >= start.saturating_sub(1))
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            self.len -= (e - s + 1) as u64;
            lo = lo.min(s);
            hi = hi.max(e);
        }
        self.ranges.insert(lo, hi);
        self.len += (hi - lo + 1) as u64;
    }

    /// Forgets every value of `[start, end]`.
    pub fn remove_range(&mut self, start: i64, end: i64) {
        if start > end {
            return;
        }
        let overlapping: Vec<(i64, i64)> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.ranges.remove(&s);
            self.len -= (e - s + 1) as u64;
            if s < start {
                self.ranges.insert(s, start - 1);
                self.len += (start - s) as u64;
            }
            if e > end {
                self.ranges.insert(end + 1, e);
                self.len += (e - end) as u64;
            }
        }
    }

    /// The ranges, in order, as inclusive `(start, end)` pairs.
    pub fn ranges(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ranges.iter().map(|(s, e)| (*s, *e))
    }

    #[cfg(test)]
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    pub fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// The interval set behaves like a plain set, and its gaps are exactly the missing values.
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((0i64..200, any::<bool>()), 0..300), lo in -1i64..100, span in 0i64..150, cut in -1i64..200) {
            let mut set = IntervalSet::default();
            let mut model = BTreeSet::new();
            for (x, _) in &ops {
                set.insert(*x);
                model.insert(*x);
            }
            set.remove_through(cut);
            model.retain(|x| *x > cut);
            for x in -2..210 {
                prop_assert_eq!(set.contains(x), model.contains(&x));
            }
            prop_assert_eq!(set.len(), model.len() as u64);
            let hi = lo + span;
            let gaps: BTreeSet<i64> = set.gaps(lo, hi).into_iter().flat_map(|(a, b)| a..=b).collect();
            let want: BTreeSet<i64> = ((lo + 1)..=hi).filter(|x| !model.contains(x)).collect();
            prop_assert_eq!(gaps, want);
        }
    }

    proptest! {
        /// Adding and removing whole ranges, mixed with single values, matches a plain set;
        /// the ranges stay disjoint, ordered and not adjacent.
        #[test]
        fn range_operations_behave_like_a_set(ops in proptest::collection::vec((0u8..3, 0i64..150, 0i64..20), 0..200)) {
            let mut set = IntervalSet::default();
            let mut model = BTreeSet::new();
            for (op, a, len) in ops {
                let b = a + len;
                match op {
                    0 => { set.insert(a); model.insert(a); }
                    1 => { set.insert_range(a, b); model.extend(a..=b); }
                    _ => { set.remove_range(a, b); model.retain(|x| *x < a || *x > b); }
                }
            }
            for x in -2..200 {
                prop_assert_eq!(set.contains(x), model.contains(&x));
            }
            prop_assert_eq!(set.len(), model.len() as u64);
            let ranges: Vec<(i64, i64)> = set.ranges().collect();
            for w in ranges.windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0, "{:?} are adjacent or overlap", w);
            }
        }
    }

    #[test]
    fn contiguous_reads_stay_one_range() {
        let mut s = IntervalSet::default();
        for x in 0..100_000 {
            s.insert(x);
        }
        assert_eq!(s.range_count(), 1);
    }
}
