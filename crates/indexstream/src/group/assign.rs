//! Sticky, balanced assignment of a group's partitions to its members (the first building block
//! of several members per group, issue 17; nothing calls it yet).
//!
//! Each member gets `floor(P/M)` or `ceil(P/M)` of the `P` partitions, and a change of members
//! moves only the partitions it must: those of members that left, and the excess of members
//! above their share. The members that get the larger share are the ones holding the most
//! already, so that as many partitions as possible stay where they are. The result depends only
//! on its inputs (no clock, no randomness): every member computing it from the same view of the
//! group gets the same answer.

use std::collections::{BTreeMap, BTreeSet};

/// Who holds each partition after a change of members.
///
/// `partitions` are the group's partitions now; `members` the live members (none: nothing is
/// assigned); `current` the owner each partition had, if any (owners that are not in
/// `members`, and partitions that are not in `partitions`, are ignored).
pub fn assign<P, M>(
    partitions: &BTreeSet<P>,
    members: &BTreeSet<M>,
    current: &BTreeMap<P, M>,
) -> BTreeMap<P, M>
where
    P: Ord + Clone,
    M: Ord + Clone,
{
    let mut out = BTreeMap::new();
    if members.is_empty() || partitions.is_empty() {
        return out;
    }
    let n = members.len();
    let (base, extra) = (partitions.len() / n, partitions.len() % n);
    // What each live member holds now, in partition order.
    let mut held: BTreeMap<&M, Vec<&P>> = members.iter().map(|m| (m, Vec::new())).collect();
    for p in partitions {
        if let Some(list) = current.get(p).and_then(|m| held.get_mut(m)) {
            list.push(p);
        }
    }
    // The larger shares go to the members holding the most (ties: the smaller member id).
    let mut by_count: Vec<&M> = members.iter().collect();
    by_count.sort_by(|a, b| held[*b].len().cmp(&held[*a].len()).then(a.cmp(b)));
    let quota: BTreeMap<&M, usize> = by_count
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, base + usize::from(i < extra)))
        .collect();
    let mut taken: BTreeSet<&P> = BTreeSet::new();
    for (m, list) in &held {
        for p in list.iter().take(quota[m]) {
            out.insert((*p).clone(), (*m).clone());
            taken.insert(*p);
        }
    }
    // The rest, in partition order, to the members below their share, in member order.
    let mut free = partitions.iter().filter(|p| !taken.contains(p));
    for m in members {
        let kept = held[m].len().min(quota[m]);
        for p in free.by_ref().take(quota[m] - kept) {
            out.insert(p.clone(), m.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(v: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
        v.into_iter().collect()
    }

    #[test]
    fn a_member_joining_takes_only_what_balances_the_group() {
        let parts = set(0..6);
        let two = set([1, 2]);
        let first = assign(&parts, &two, &BTreeMap::new());
        assert_eq!(first.values().filter(|m| **m == 1).count(), 3);
        let three = set([1, 2, 3]);
        let second = assign(&parts, &three, &first);
        let moved = parts.iter().filter(|p| first[p] != second[p]).count();
        assert_eq!(moved, 2, "{first:?} -> {second:?}");
        assert!(second
            .values()
            .all(|m| second.values().filter(|x| *x == m).count() == 2));
    }

    #[test]
    fn a_member_leaving_hands_over_only_its_own() {
        let parts = set(0..6);
        let three = set([1, 2, 3]);
        let before = assign(&parts, &three, &BTreeMap::new());
        let after = assign(&parts, &set([1, 3]), &before);
        for p in &parts {
            if before[p] != 2 {
                assert_eq!(
                    before[p], after[p],
                    "partition {p} of a member that stayed moved"
                );
            }
        }
    }

    #[test]
    fn no_members_or_no_partitions_assign_nothing() {
        assert!(assign(&set(0..3), &BTreeSet::<u32>::new(), &BTreeMap::new()).is_empty());
        assert!(assign(&BTreeSet::<u32>::new(), &set([1]), &BTreeMap::new()).is_empty());
    }

    proptest! {
        /// Every partition has one live owner; every member holds floor or ceil; as many
        /// partitions as any balanced assignment could keep stay where they were; and an
        /// assignment given again to the same members does not change.
        #[test]
        fn balanced_sticky_and_stable(
            partitions in proptest::collection::btree_set(0u32..40, 0..40),
            members in proptest::collection::btree_set(0u32..8, 1..8),
            owners in proptest::collection::vec(proptest::option::of(0u32..10), 40),
        ) {
            let current: BTreeMap<u32, u32> = partitions
                .iter()
                .zip(&owners)
                .filter_map(|(p, o)| o.map(|o| (*p, o)))
                .collect();
            let got = assign(&partitions, &members, &current);
            prop_assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), partitions.clone());
            prop_assert!(got.values().all(|m| members.contains(m)));
            let (n, p) = (members.len(), partitions.len());
            let (floor, ceil) = (p / n, p.div_ceil(n));
            for m in &members {
                let c = got.values().filter(|x| *x == m).count();
                prop_assert!(c == floor || c == ceil, "member {} holds {}", m, c);
            }
            // The most a balanced assignment can keep: each live member keeps up to floor,
            // and `p % n` of those holding more keep one more.
            let held = |m: &u32| current.iter().filter(|(q, o)| partitions.contains(q) && *o == m).count();
            let above = members.iter().filter(|m| held(m) > floor).count();
            let best = members.iter().map(|m| held(m).min(floor)).sum::<usize>() + above.min(p % n);
            let kept = got.iter().filter(|(q, m)| current.get(q) == Some(m)).count();
            prop_assert_eq!(kept, best);
            prop_assert_eq!(assign(&partitions, &members, &got), got);
        }
    }
}
