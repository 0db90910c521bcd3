//! OpenSearch's document routing: `shard = floorMod(murmur3(routing), routing_num_shards) / factor`,
//! where the routing string is hashed as its UTF-16 code units in little-endian byte order
//! (`Murmur3HashFunction` in OpenSearch) and `routing_num_shards` defaults to the number of
//! shards times a power of two that lets the index be split up to 1024 shards.

/// MurmurHash3 x86 32-bit with seed 0.
pub fn murmur3_32(data: &[u8]) -> i32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let mut k: u32 = 0;
    if tail.len() >= 3 {
        k ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        k ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        k ^= tail[0] as u32;
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

/// Hash of a routing value the way OpenSearch hashes it (UTF-16 LE bytes).
pub fn routing_hash(routing: &str) -> i32 {
    let mut bytes = Vec::with_capacity(routing.len() * 2);
    for unit in routing.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    murmur3_32(&bytes)
}

/// The default `index.number_of_routing_shards` for an index created with `shards` shards.
pub fn default_routing_shards(shards: u32) -> u32 {
    let log2_shards = 32 - (shards.max(1) - 1).leading_zeros();
    let splits = 10i64 - log2_shards as i64;
    shards * (1u32 << splits.max(1))
}

pub fn shard_for(routing: &str, shards: u32) -> u32 {
    let routing_shards = default_routing_shards(shards) as i64;
    let factor = routing_shards / shards as i64;
    let hash = routing_hash(routing) as i64;
    (hash.rem_euclid(routing_shards) / factor) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference vectors of MurmurHash3_x86_32 with seed 0 (from the algorithm's public test suite).
    #[test]
    fn murmur3_matches_reference_vectors() {
        assert_eq!(murmur3_32(b""), 0);
        assert_eq!(murmur3_32(b"\x00\x00\x00\x00") as u32, 0x2362_f9de);
        assert_eq!(murmur3_32(b"Hello, world!") as u32, 0xc036_3e43);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog") as u32,
            0x2e4f_f723
        );
    }

    #[test]
    fn routing_shards_allow_splitting_to_1024() {
        assert_eq!(default_routing_shards(1), 1024);
        assert_eq!(default_routing_shards(3), 768);
        assert_eq!(default_routing_shards(5), 640);
    }

    #[test]
    fn every_id_lands_on_a_valid_shard_and_spreads() {
        let mut counts = [0u32; 3];
        for i in 0..3000 {
            let shard = shard_for(&i.to_string(), 3);
            counts[shard as usize] += 1;
        }
        for c in counts {
            assert!(c > 800, "uneven spread {counts:?}");
        }
    }
}
