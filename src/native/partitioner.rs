//! librdkafka's key partitioners, computed on our side.
//!
//! A keyed record handed over with `RD_KAFKA_PARTITION_UA` costs
//! librdkafka a partition lookup under the topic's lock and a clock read;
//! once a worker knows a topic's partition count (`metadata.rs`) it
//! computes the partition with the same hash librdkafka's configured
//! `partitioner` would use, and hands the batch over to that partition
//! (`topic.rs`). The hashes are librdkafka's own (`rdcrc32.h`,
//! `rdmurmur2.c`, `rdfnv1a.c`, and `rd_kafka_msg_partitioner_*` in
//! `rdkafka_msg.c`), so a key lands where every librdkafka client puts it
//! (and, with `murmur2_random`, where the Java client puts it);
//! `tests/partitioning.rs` checks them against librdkafka's choice for
//! every partitioner name.

/// The hash a `partitioner` applies to a record's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyHash {
    /// `consistent`: CRC-32 (zlib's) of the key.
    Crc32,
    /// `consistent_random` (librdkafka's default): CRC-32 of a key, but an
    /// empty key is sticky, as a missing one.
    Crc32UnlessEmpty,
    /// `murmur2`, `murmur2_random`: Kafka's murmur2, as the Java client.
    Murmur2,
    /// `fnv1a`, `fnv1a_random`: FNV-1a, as Sarama.
    Fnv1a,
}

impl KeyHash {
    /// The hash of the `partitioner` named so; `None` for `random` (a key
    /// gets a random partition) and names librdkafka does not know.
    pub(crate) fn of_partitioner(name: &str) -> Option<Self> {
        match name {
            "consistent" => Some(KeyHash::Crc32),
            "consistent_random" => Some(KeyHash::Crc32UnlessEmpty),
            "murmur2" | "murmur2_random" => Some(KeyHash::Murmur2),
            "fnv1a" | "fnv1a_random" => Some(KeyHash::Fnv1a),
            _ => None,
        }
    }

    /// The partition (of `count`) librdkafka gives `key`; `None` where
    /// librdkafka would not hash it: an empty key under `consistent_random`
    /// is sticky (`rd_kafka_msg_partitioner`).
    pub(crate) fn partition(self, key: &[u8], count: i32) -> Option<i32> {
        let count = u32::try_from(count).ok().filter(|&c| c > 0)?;
        let hash = match self {
            KeyHash::Crc32UnlessEmpty if key.is_empty() => return None,
            KeyHash::Crc32 | KeyHash::Crc32UnlessEmpty => crc32(key),
            KeyHash::Murmur2 => murmur2(key) & 0x7fff_ffff,
            KeyHash::Fnv1a => fnv1a(key),
        };
        Some((hash % count) as i32)
    }
}

/// CRC-32 as zlib computes it (reflected, polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// Kafka's murmur2 (seed 0x9747b28c), little-endian words.
fn murmur2(bytes: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = 0x9747_b28c ^ bytes.len() as u32;
    let mut words = bytes.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// FNV-1a, 32-bit, made non-negative as a signed number the way
/// librdkafka (and Sarama) do.
fn fnv1a(bytes: &[u8]) -> u32 {
    let h = bytes.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (h as i32).wrapping_abs() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashes_match_librdkafkas_own_unit_tests() {
        // Expected values from librdkafka's unittest_murmur2, unittest_fnv1a
        // and zlib's crc32("123456789") check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(murmur2(b"kafka"), 0xd067_cf64);
        assert_eq!(murmur2(b"giberish123456789"), 0x8f55_2b0c);
        assert_eq!(murmur2(b"1234"), 0x9fc9_7b14);
        assert_eq!(murmur2(b""), 0x106e_08d9);
        assert_eq!(
            murmur2(b"PreAmbleWillBeRemoved,ThePrePartThatIs"),
            0x7842_4f1c
        );
        assert_eq!(fnv1a(b"kafka"), 0x0d33_c4e1);
        assert_eq!(fnv1a(b"giberish123456789"), 0x77a5_8295);
        assert_eq!(fnv1a(b"1234"), 0x023b_dd03);
        assert_eq!(fnv1a(b""), 0x7ee3_623b);
    }
}
