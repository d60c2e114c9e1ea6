//! Where a new partition's replicas go: spread evenly over the unfenced
//! brokers, racks alternating (Kafka's rack-aware assignment idea), the
//! first replica the leader, and each partition's list shifted by one so
//! leaders spread too. Pure: the caller passes where to start.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("replication factor {wanted} is larger than the {available} available brokers")]
    ReplicationFactor { wanted: i32, available: usize },
}

/// Brokers ordered so that neighbours are on different racks where racks
/// allow: rack by rack, one broker from each in turn.
fn rack_alternating(brokers: &[(i32, Option<String>)]) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(rack.as_deref()).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let mut ordered = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while ordered.len() < brokers.len() {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                ordered.push(*id);
            }
        }
        round += 1;
    }
    ordered
}

/// Replica lists for partitions `first..first + count`; `start` rotates the
/// starting broker (the caller passes the number of partitions already
/// placed, so leaders spread across topics too).
pub fn assign(
    brokers: &[(i32, Option<String>)],
    first: i32,
    count: i32,
    replication_factor: i32,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let ordered = rack_alternating(brokers);
    let n = ordered.len();
    if replication_factor < 1 || replication_factor as usize > n {
        return Err(PlacementError::ReplicationFactor {
            wanted: replication_factor,
            available: n,
        });
    }
    // Consecutive brokers of the rack-alternating order: distinct, and on
    // different racks where there are enough.
    Ok((first..first + count)
        .map(|p| {
            let base = start + p as usize;
            (0..replication_factor as usize)
                .map(|j| ordered[(base + j) % n])
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(n: i32) -> Vec<(i32, Option<String>)> {
        (1..=n).map(|id| (id, None)).collect()
    }

    #[test]
    fn three_partitions_rf3_on_three_brokers_have_three_leaders() {
        let placed = assign(&brokers(3), 0, 3, 3, 0).expect("fits");
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3]);
        for replicas in &placed {
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 2, 3]);
        }
    }

    #[test]
    fn replicas_are_distinct_and_leaders_even() {
        for n in 1..=6 {
            for rf in 1..=n {
                let placed = assign(&brokers(n), 0, 60, rf, 7).expect("fits");
                let mut leaders = BTreeMap::new();
                for replicas in &placed {
                    assert_eq!(replicas.len(), rf as usize);
                    let mut sorted = replicas.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(sorted.len(), rf as usize, "{replicas:?}");
                    *leaders.entry(replicas[0]).or_insert(0) += 1;
                }
                let (min, max) = (leaders.values().min(), leaders.values().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{leaders:?}");
            }
        }
    }

    #[test]
    fn racks_alternate() {
        let racked = vec![
            (1, Some("a".to_string())),
            (2, Some("a".to_string())),
            (3, Some("b".to_string())),
            (4, Some("b".to_string())),
        ];
        for replicas in assign(&racked, 0, 8, 2, 0).expect("fits") {
            let rack = |id: i32| if id <= 2 { "a" } else { "b" };
            assert_ne!(rack(replicas[0]), rack(replicas[1]), "{replicas:?}");
        }
    }

    #[test]
    fn too_large_a_factor_is_refused() {
        assert_eq!(
            assign(&brokers(2), 0, 1, 3, 0),
            Err(PlacementError::ReplicationFactor {
                wanted: 3,
                available: 2
            })
        );
    }
}
